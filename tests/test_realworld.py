"""The real-world benchmark on a synthetic real-photos/ + not-flowers/ folder (no real photos needed)."""
import json
import shutil

import numpy as np
import pytest

from flowers_core.bench import realworld
from flowers_core.bench.realworld import Photo, realworld_metrics
from flowers_core.results import localisation, novelty
from flowers_core.results import realworld as realworld_results
from flowers_core.results.common import to_markdown
from flowers_core.serve.novelty import SWEPT_PASS_RATES
from flowers_core.shipped import catalog, paths
from flowers_core.training.fits import fit_novelty


def test_metrics_count_answers_per_group():
    photos = [Photo(None, "known", 1, "a"), Photo(None, "known", 1, "a"), Photo(None, "known", 2, "b"),
              Photo(None, "known", 2, "b"), Photo(None, "unknown", -1, "x"), Photo(None, "unknown", -1, "x"),
              Photo(None, "not_flower", -1, "not a flower")]
    predicted = np.array([1, 3, 2, 2, 5, 6, 7])
    verdicts = np.array(["species", "species", "not_sure", "species", "species", "not_sure", "not_a_flower"])
    m = realworld_metrics(photos, predicted, verdicts)
    assert m["n"] == 4 and m["top1"] == 0.75 and m["answered"] == 0.75
    assert m["accuracy_when_answered"] == pytest.approx(2 / 3)
    assert m["unknown_given_species"] == 0.5 and m["not_flower_given_species"] == 0.0
    assert m["per_species"]["a"] == {"n": 2, "top1": 0.5, "answered": 1.0, "accuracy_when_answered": 0.5}
    assert m["per_species"]["b"]["accuracy_when_answered"] == 1.0
    assert m["verdicts"]["not_flower"] == {"species": 0.0, "not_sure": 0.0, "not_a_flower": 1.0}
    assert all(abs(sum(v.values()) - 1) < 1e-9 for v in m["verdicts"].values())
    assert m["confusions"] == []  # no class names given
    assert m["top_candidates"] is None and m["not_sure_with_right_candidate"] is None  # no candidates given

    candidates = np.array([[1, 0, 4], [3, 1, 0], [2, 0, 1], [2, 4, 0], [5, 1, 2], [6, 1, 2], [7, 1, 2]])  # predicted first
    m = realworld_metrics(photos, predicted, verdicts, candidates=candidates)
    assert m["top_candidates"] == 1.0 > m["top1"]  # the second photo's species is its second candidate
    assert m["not_sure_with_right_candidate"] == 1.0  # over the known photos answered "not sure" only (not the unknown one)


def test_the_flowering_photos_are_measured_apart_from_the_seed_heads():
    photos = [Photo(None, "known", 1, "a"), Photo(None, "known", 1, "a", "seed head"), Photo(None, "known", 2, "b"),
              Photo(None, "unknown", -1, "x")]
    predicted = np.array([1, 3, 4, 5])
    verdicts = np.array(["species", "not_sure", "not_a_flower", "species"])
    candidates = np.array([[1, 0, 2], [3, 0, 2], [4, 2, 0], [5, 0, 1]])
    m = realworld_metrics(photos, predicted, verdicts, candidates=candidates)
    assert m["n"] == 3 and m["top1"] == pytest.approx(1 / 3)
    assert m["flowering"] == {"n": 2, "top1": 0.5, "answered": 0.5, "accuracy_when_answered": 1.0, "top_candidates": 1.0,
                              "not_a_flower": 0.5}, "the seed head's answer is not counted"


def test_confusions_count_each_mistake_and_its_answers():
    photos = [Photo(None, "known", 0, "a")] * 4 + [Photo(None, "known", 1, "b")] * 2 + [Photo(None, "unknown", -1, "x")]
    predicted = np.array([2, 2, 2, 0, 2, 1, 2])
    verdicts = np.array(["species", "not_sure", "species", "species", "not_sure", "species", "species"])
    m = realworld_metrics(photos, predicted, verdicts, ("A", "B", "C"))
    assert m["confusions"] == [{"species": "A", "called": "C", "n": 3, "answered": 2},
                               {"species": "B", "called": "C", "n": 1, "answered": 0}]  # the unknown flower is no mistake


def test_cli_scores_every_model_and_feeds_the_report(trained_artifacts, photo_root, synthetic_root, tmp_path):
    artifacts = tmp_path / "artifacts"
    shutil.copytree(trained_artifacts, artifacts)
    fit_novelty("level1", synthetic_root, artifacts, pass_rate=0.9, threads=1)  # level 1 with its check, the vote without
    realworld.main(["--models", "level1", "ensemble", "--data-root", str(photo_root), "--artifacts", str(artifacts),
                    "--threads", "1"])
    result = json.loads((artifacts / paths.REALWORLD.path).read_text())
    assert result["n_images"] == {"known": 9, "unknown": 2, "not_flower": 3}
    assert len(result["errors"]) == 1 and "broken.jpg" in result["errors"][0]["file"]
    assert result["gate"] is None  # no gate shipped in the synthetic artifacts: nothing is called not a flower
    assert [r["model"] for r in result["models"]] == ["level1", "ensemble"]
    level1, ensemble = result["models"]
    assert ensemble["answered"] == 1.0  # no threshold, no gate: every photo is answered
    assert ensemble["unknown_given_species"] == 1.0 and ensemble["not_flower_given_species"] == 1.0
    assert level1["manifest"]["typicality_distance"] == "relative Mahalanobis"
    assert ensemble["manifest"]["typicality_distance"] is None
    for r in result["models"]:
        assert 0 <= r["top1"] <= r["top_candidates"] <= 1
        assert sum(s["n"] for s in r["per_species"].values()) == 9
        assert r["manifest"]["test_top1"] is not None

    answered = [level1["by_pass_rate"][str(rate)]["answered"] for rate in sorted(SWEPT_PASS_RATES)]
    assert answered == sorted(answered)  # a laxer check answers at least as many photos
    assert ensemble["by_pass_rate"] == {}  # no check: no other operating point
    shipped_rate = level1["by_pass_rate"]["0.9"]  # the rate the check was fitted with: the report's own answers
    assert shipped_rate == {k: level1[k] for k in realworld.ANSWER_FIELDS}
    points = realworld_results.realworld_operating_points(("student_int8", "level1", "ensemble"), artifacts)
    assert list(points["novelty check: validation flowers passing"]) == list(SWEPT_PASS_RATES)
    assert set(points["model"]) == {"L1 baseline"}
    assert list(points.loc[points[""] == "shipped", "novelty check: validation flowers passing"]) == [0.9]

    table, species, info = realworld_results.realworld_table(artifacts)
    assert len(table) == 2 and info["stale"] == [] and len(species) == len(result["models"][0]["per_species"])
    signals = localisation.recipe_ablation(artifacts).set_index("model")["'not sure' from"]
    assert signals["L1 baseline"] == "entropy + typicality (relative Mahalanobis, 90% of val passing)"
    assert signals["L4 ensemble"] == "entropy"
    assert novelty.typicality_signal({"typicality_threshold": -1.0}) == "typicality (Mahalanobis, 99% of val passing)"  # older
    section = "\n".join(to_markdown(realworld_results.realworld_section(artifacts)))
    assert "Real-world photos" in section and "L4 ensemble" in section
    for r in result["models"]:
        assert sum(c["n"] for c in r["confusions"]) == round(9 * (1 - r["top1"]))
        assert all(c["species"] != c["called"] and 0 <= c["answered"] <= c["n"] for c in r["confusions"])


def test_missing_folders_name_the_data_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data-root"):
        realworld.photo_set(tmp_path)


def test_the_targets_on_peoples_photos_are_checked_against_the_table():
    import pandas as pd

    row = {"top-1 (8 species)": 0.91, "answered": 0.84, "accuracy when answered": 0.95,
           "unknown flowers given a species": 0.2, "non-flowers given a species": 0.03}
    table = pd.DataFrame([{"model": catalog.title("student_int8"), **row},
                          {"model": catalog.title("ensemble"), **row, "top-1 (8 species)": 0.92}])
    text = "\n".join(to_markdown(realworld_results.realworld_targets(table)))
    status = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in text.splitlines()[4:] if line.startswith("|")}
    assert list(status.values()) == ["met", "**not met**", "met", "met", "**not met**", "met"]  # bounds are inclusive
    assert realworld_results.realworld_targets(table.iloc[1:]) == []  # no production model measured: no targets to check


def test_scored_candidates_are_the_top_three_whatever_their_probability():
    """The benchmark scores the top 3 as its columns say, also when the page would leave a tiny one out: one row per
    photo (a confident answer and a spread one used to make rows of different lengths)."""
    import numpy as np

    from flowers_core.bench.realworld import scored_candidates
    from flowers_core.serve.answer import CANDIDATES_SHOWN, Prediction

    def prediction(probs: np.ndarray) -> Prediction:
        order = np.argsort(-probs)
        return Prediction(int(order[0]), str(order[0]), float(probs[order[0]]), 0.0,
                          [(str(i), float(probs[i])) for i in order[:5]], probs=probs)

    confident = np.full(102, 0.001 / 101, dtype=np.float32)
    confident[7] = 0.999
    spread = np.full(102, 1 / 102, dtype=np.float32)
    spread[[3, 4, 5]] = [0.2, 0.15, 0.1]
    rows = scored_candidates([prediction(confident), prediction(spread)])
    assert rows.shape == (2, CANDIDATES_SHOWN) and rows[0][0] == 7 and list(rows[1]) == [3, 4, 5]
