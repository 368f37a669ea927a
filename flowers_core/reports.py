"""Every benchmark report, declared once: where it lives under the artifacts folder, the command that
writes it, and how it is written and read. The benchmarks (``flowers_core.bench``) write them; the tables
(``flowers_core.tables``), the app's pages and ``tools.summary`` read them. Adding a benchmark adds one
``Report`` here."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .artifacts import ArtifactMissing, artifacts_dir


@dataclass(frozen=True)
class Report:
    path: str  # relative to the artifacts folder
    command: str  # what writes it
    what: str  # one line for people

    def file(self, root=None, output: str | Path | None = None) -> Path:
        """Where the report goes: ``output`` when given, else ``path`` under the artifacts folder."""
        return Path(output) if output else artifacts_dir(root) / self.path

    def read(self, root=None) -> dict:
        """The report, or ArtifactMissing naming the command that writes it."""
        path = self.file(root)
        if not path.is_file():
            raise ArtifactMissing(f"{path} is missing ({self.what}); produce it with `{self.command}`.")
        return json.loads(path.read_text())

    def read_or_none(self, root=None, output: str | Path | None = None) -> dict | None:
        path = self.file(root, output)
        return json.loads(path.read_text()) if path.is_file() else None

    def write(self, result: dict, output: str | Path | None = None, root=None) -> Path:
        """Write ``result`` as JSON to ``file(root, output)``; returns where it went."""
        out = self.file(root, output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        return out


LATENCY = Report("latency.json", "python -m flowers_core.bench.latency",
                 "CPU latency of every shipped model, each kind of CPU's latest run")
ROBUSTNESS = Report("reports/robustness.json", "python -m flowers_core.bench.robustness",
                    "the test split under photo-like shifts")
REALWORLD = Report("reports/realworld.json", "python -m flowers_core.bench.realworld",
                   "the shipped models on real-photos/ and not-flowers/")
REALWORLD_APP = Report("reports/realworld_app.json",
                       "python -m flowers_core.bench.realworld --models student_int8 "
                       "--output artifacts/reports/realworld_app.json",
                       "the app's model on real-photos/ and not-flowers/ with the flower gate's current threshold")
REALWORLD_BEFORE_NOVELTY = Report("reports/realworld_before_novelty.json",
                                  "python -m flowers_core.bench.realworld --without-novelty",
                                  "the same models and photos with the novelty checks off")
ANSWER_RULES = Report("reports/answer_rules.json", "python -m flowers_core.bench.answer_rules --record",
                      "the flower gate's threshold and when photos of one plant agree, chosen from data")
APP_PERFORMANCE = Report("reports/app_performance.json", "python -m flowers_core.bench.app_benchmark",
                         "the app's cold start, round trip and memory")
UNSEEN_SPECIES = Report("reports/unseen_species.json", "python -m flowers_core.bench.unseen_species",
                        "'not sure' signals on Flowers-102 species held out of training")
INT8_PORTABILITY = Report("reports/int8_portability.json", "python -m flowers_core.bench.int8_portability",
                          "the shipped INT8 files re-scored on each kind of CPU")
LATENCY_LOCALISED = Report("reports/latency_localised.json",
                           "python -m flowers_core.bench.latency --models student_int8 "
                           "--output artifacts/reports/latency_localised.json",
                           "the INT8 student from a decoded photo, without and with the localisation stage")
LOCALISE = Report("reports/localise.json", "python -m train.localise",
                  "the localisation rules tried on validation images, plain and framed, and the one chosen")


def app_crowd(visitors: int) -> Report:
    """The app with ``visitors`` at once, each pressing every heavy button (``app_benchmark --crowd N``)."""
    return Report(f"reports/app_crowd_{visitors}.json", f"python -m flowers_core.bench.app_benchmark --crowd {visitors}",
                  f"the app's memory and waits with {visitors} visitor(s) at once")


APP_CROWD_VISITORS = (1, 3)  # the crowd runs RESULTS.md shows: one visitor, and three at once
