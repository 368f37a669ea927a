"""Every file under the artifacts folder, declared once with the command that produces it: the manifest, the
splits, each model's files, logs, metrics and saved probabilities, the gallery packs, and every benchmark
report (``Report``: path, command, one line for people, read and write). Training writes these paths, the app and
the results read them; nothing else spells a path under ``artifacts/``. Adding a benchmark adds one ``Report``."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSETS = REPO_ROOT / "assets"


class ArtifactMissing(FileNotFoundError):
    """A model or file the caller needs has not been produced (the message names the command)."""


def default_data_root() -> Path:
    """``$FLOWERS_DATA_ROOT``, else the shared offline copy when present, else ``data/``."""
    if env := os.environ.get("FLOWERS_DATA_ROOT"):
        return Path(env)
    shared = REPO_ROOT.parent / "shared" / "data"
    if (shared / "flowers-102").is_dir():
        return shared
    return REPO_ROOT / "data"


def artifacts_dir(root: str | Path | None = None) -> Path:
    """The artifacts folder: ``root`` when given, else ``$FLOWERS_ARTIFACTS``, else the repository's ``artifacts/``."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get("FLOWERS_ARTIFACTS", REPO_ROOT / "artifacts"))


# The model side, relative to the artifacts folder. What writes each: `python -m train.all` (levels 1-4: weights,
# logs, metrics, probabilities, splits), `python -m train.level5` (the student and its INT8 file),
# `python -m train.uncertainty` (coverage reports), `python -m train.novelty` (novelty packs), `python -m train.gate`
# (the flower gate), `python -m train.gallery` (thumbnails and reference photos).
MANIFEST = "manifest.json"
GATE_FILE = "models/flower_gate.onnx"
THUMBS = "thumbs/{protocol}_test.npz"
REFERENCE_PHOTOS = "thumbs/{protocol}_reference.npz"
MISTAKE_MAPS = "thumbs/{protocol}_mistake_maps.npz"  # the Confusions page's "why A and not B" maps
MISTAKE_MAPS_COMMAND = "python -m train.gallery --mistakes"


def split_file(protocol: str) -> str:
    return f"splits/{protocol}.json"


def weights_file(name: str) -> str:
    return f"models/{name}.safetensors"


def onnx_file(name: str) -> str:
    return f"models/{name}.onnx"


def fp32_onnx_file(name: str) -> str:
    """A torch model's ONNX twin (``python -m train.onnx_twins``): what the app runs it on without torch."""
    return f"models/{name}_fp32.onnx"


def novelty_file(name: str) -> str:
    return f"models/{name}_novelty.npz"


def log_file(name: str, protocol: str) -> str:
    return f"logs/{name}_{protocol}.jsonl"


def metrics_file(stem: str) -> str:
    return f"metrics/{stem}.json"


def probs_file(stem: str, part: str) -> str:
    return f"probs/{stem}_{part}.npz"


def coverage_file(name: str, protocol: str) -> str:
    return f"reports/coverage_{name}_{protocol}.json"


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

    def write(self, result: dict, root=None, output: str | Path | None = None) -> Path:
        """Write ``result`` as JSON to ``file(root, output)``; returns where it went."""
        out = self.file(root, output)
        out.parent.mkdir(parents=True, exist_ok=True)
        # written aside then renamed: a report rewritten while it runs (explanations, after every image) is never
        # read half-written by a page or tools.summary
        part = out.with_name(out.name + ".part")
        part.write_text(json.dumps(result, indent=1) + "\n")
        part.replace(out)
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
LATENCY_STAGES = Report("reports/latency_stages.json", "python -m flowers_core.bench.stages",
                        "the app's path stage by stage (decode, flower gate, find the flower, classify, novelty check)")
LOCALISE = Report("reports/localise.json", "python -m train.localise",
                  "the localisation rules tried on validation images, plain and framed, and the one chosen")
EXPLANATIONS = Report("reports/explanations.json", "python -m flowers_core.bench.explanations",
                      "each explanation method's faithfulness (ROAD) and sanity check on test images")
EXPLANATIONS_VAL = Report("reports/explanations_val.json",
                          "python -m flowers_core.bench.explanations --part val --limit 10 --lime-sanity 3",
                          "the same measures on validation images: how Explain's first method was chosen")
FIRST_MAP = Report("reports/first_map.json", "python -m flowers_core.bench.first_map",
                   "Explain's first map (the INT8 file's class activation map) against pytorch-grad-cam's Grad-CAM")


def app_crowd(visitors: int) -> Report:
    """The app with ``visitors`` at once, each pressing every heavy button (``app_benchmark --crowd N``)."""
    return Report(f"reports/app_crowd_{visitors}.json", f"python -m flowers_core.bench.app_benchmark --crowd {visitors}",
                  f"the app's memory and waits with {visitors} visitor(s) at once")


APP_CROWD_VISITORS = (1, 3, 5)  # the crowd runs RESULTS.md shows: one visitor, three and five at once


APP_SOAK = Report("reports/app_soak.json", "python -m flowers_core.bench.app_benchmark --soak 200",
                  "the app's memory over many visitors one after another (growth per visitor, peak, idle)")
APP_SOAK_PLOT = "reports/app_soak.png"  # the soak's RSS over visitors, beside its report
