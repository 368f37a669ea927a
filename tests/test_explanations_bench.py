"""The explanation report's sample and verdicts (the measures themselves: tests/test_faithfulness.py)."""
from __future__ import annotations

import numpy as np

from flowers_core.bench import explanations as bench


def test_sample_takes_every_species_reproducibly():
    ids = np.arange(100, 160)
    labels = np.repeat(np.arange(6), 10)
    chosen = bench.sample(ids, labels, per_species=1, limit=None, seed=0)
    assert sorted(labels[np.searchsorted(ids, chosen)]) == list(range(6))
    assert chosen == bench.sample(ids, labels, per_species=1, limit=None, seed=0)
    assert chosen != bench.sample(ids, labels, per_species=1, limit=None, seed=1)
    assert bench.sample(ids, labels, per_species=2, limit=4, seed=0) == bench.sample(ids, labels, 2, None, 0)[:4]


def _row(image_id, scores: dict, sanity: dict) -> dict:
    return {"image_id": image_id, "target": 0, "confidence": 0.9,
            "methods": {n: {"most_first": [0.5] * 3, "least_first": [0.9] * 3, "combined": c, "sanity": sanity[n]}
                        for n, c in scores.items()}}


def test_cards_pass_fail_and_inconclusive():
    rng = np.random.default_rng(0)
    rows = [_row(i, {"random map": 0.0 + rng.normal(0, 0.01), "Good": 0.2 + rng.normal(0, 0.02),
                     "Noisy": rng.normal(0, 0.3), "Worse": -0.2 + rng.normal(0, 0.02)},
                 {"random map": 1.0, "Good": 0.1 + rng.normal(0, 0.05), "Noisy": 0.3 if i % 2 else 0.7,
                  "Worse": 0.95}) for i in range(30)]
    summary = bench.summarise(rows)
    assert summary["Good"]["card"] == {"faithful": "pass", "sanity": "pass", "overall": "pass"}
    assert summary["Worse"]["card"] == {"faithful": "fail", "sanity": "fail", "overall": "fail"}
    assert summary["Noisy"]["card"]["faithful"] == "inconclusive" and summary["Noisy"]["card"]["overall"] == "inconclusive"
    assert summary["random map"]["card"]["faithful"] == "reference" and summary["random map"]["kind"] == "baseline"
    assert summary["Good"]["vs_random"]["low"] > 0 and summary["Good"]["n_images"] == 30


def test_a_method_never_measured_is_said_so():
    summary = bench.summarise([_row(1, {"random map": 0.0, "LIME": 0.1}, {"random map": 1.0, "LIME": None})])
    assert summary["LIME"]["card"]["sanity"] == "not measured"


def test_results_section_reads_the_report(tmp_path):
    """The results section (RESULTS.md and the Report page): the cards, the sample, the cost and the first map, from
    the reports alone."""
    from flowers_core.results.common import to_markdown
    from flowers_core.results.explanations import explanations_section
    from flowers_core.shipped import paths

    assert "not measured yet" in explanations_section(tmp_path)[0]
    rows = [_row(i, {"random map": 0.0, "Grad-CAM": 0.1 + 0.01 * (i % 3)}, {"random map": 1.0, "Grad-CAM": 0.1})
            for i in range(5)]
    entry = {"label": "L5 student (fp32)", "randomised_layers": ["head", "stages.8"], "n_images": 5, "of": 102,
             "summary": bench.summarise(rows), "seconds": {"score_s": {"mean": 1.25, "n": 10}, "maps_s": {"mean": 3.0, "n": 5}}}
    report = {"part": "test", "seed": 0, "per_species": 1, "lime_samples": 50, "lime_sanity_images": 10,
              "sanity_line": 0.5, "date": "2026-12-07", "machine": {"cpu": "a CPU", "torch_threads": 1,
                                                                    "loadavg_before": [1.0, 1.0, 1.0]},
              "models": {"student": entry}}
    paths.EXPLANATIONS.write(report, root=tmp_path)
    paths.EXPLANATIONS_VAL.write({**report, "part": "val"}, root=tmp_path)
    text = "\n".join(to_markdown(explanations_section(tmp_path)))
    assert "| L5 student (fp32) | Grad-CAM" in text and "✅ pass" in text
    assert "L5 student (fp32) 5 of 102" in text and "1.25 s per map scored" in text
    assert "Explain opens on L5 student (fp32) with Grad-CAM" in text


def test_shards_merge_into_the_report_of_the_whole_sample():
    """Two processes measure every other image (``--shard``); ``merge`` gives the report one process would."""
    rows = [_row(i, {"random map": 0.0, "Grad-CAM": 0.1 + 0.01 * (i % 3)}, {"random map": 1.0, "Grad-CAM": 0.1})
            for i in range(6)]

    def report(part_rows):
        return {"part": "test", "models": {"student": {"label": "L5 student (fp32)", "images": part_rows,
                                                       "n_images": len(part_rows), "summary": bench.summarise(part_rows),
                                                       "seconds": {"score_s": {"mean": 1.0 + len(part_rows), "n": len(part_rows)}}}}}

    merged = bench.merge([report(rows[0::2]), report(rows[1::2])])
    entry = merged["models"]["student"]
    assert merged["n_images"] == entry["n_images"] == 6 and merged["shards"] == 2
    assert entry["summary"] == bench.summarise(rows[0::2] + rows[1::2])
    assert entry["seconds"]["score_s"] == {"mean": 4.0, "n": 6}
