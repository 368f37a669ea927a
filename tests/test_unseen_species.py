"""Species held out of training: the folds are disjoint, the held-out species are never trained on, and each
distance's threshold is set on the trained species' validation images only."""
import json
from dataclasses import replace

import numpy as np
import pytest

from conftest import N_CLASSES, tiny_spec
from flowers_core.bench import unseen_species
from flowers_core.bench.unseen_species import (
    APP_RULE,
    DISTANCES,
    ENTROPY,
    FOLDS,
    SHIPPED_DISTANCE,
    SIGNALS,
    held_out_species,
    run,
    train_without,
)
from flowers_core.results import novelty
from flowers_core.results.common import to_markdown
from flowers_core.serve.localise import LocaliseRule
from flowers_core.serve.novelty import MAX_UNSEEN_ANSWERED, SWEPT_PASS_RATES, operating_point
from flowers_core.shipped import manifest as art
from flowers_core.shipped import paths
from flowers_core.training.levels import Workspace, prepare_workspace


def test_the_folds_hold_out_every_species_once():
    folds = [held_out_species(f, N_CLASSES) for f in range(FOLDS)]
    assert sorted(np.concatenate(folds).tolist()) == list(range(N_CLASSES))
    assert all(abs(len(f) - N_CLASSES / FOLDS) < 1 for f in folds)
    assert np.array_equal(held_out_species(1, N_CLASSES), folds[1])
    assert not np.array_equal(held_out_species(1, N_CLASSES, seed=1), folds[1])  # the seed decides


@pytest.fixture(scope="module")
def spec():
    return replace(tiny_spec("level2", epochs=1), name="unseen_species", arch="efficientnet_lite0")


@pytest.fixture(scope="module")
def root(synthetic_root, cache_dir, tmp_path_factory):
    """Artifacts holding the stratified split (what training writes first); features go to the test cache."""
    path = tmp_path_factory.mktemp("unseen")
    prepare_workspace("stratified", synthetic_root, artifacts_root=path)
    return path


def test_the_model_never_sees_the_held_out_species(spec, synthetic_root, root, monkeypatch):
    ws = Workspace("stratified", synthetic_root, root)
    held = held_out_species(0, N_CLASSES)
    seen = []
    real_fit = unseen_species.fit

    def spy(params, forward, train, val_x, val_y, cfg, desc=""):
        seen.append((train.labels.clone(), val_y.clone()))
        return real_fit(params, forward, train, val_x, val_y, cfg, desc=desc)

    monkeypatch.setattr(unseen_species, "fit", spy)
    model = train_without(spec, ws, held)
    (train_labels, val_labels), = seen
    kept = N_CLASSES - len(held)
    assert model.head.fc.out_features == kept
    assert train_labels.min() >= 0 and train_labels.max() < kept  # renumbered: a held-out image would be -1
    assert val_labels.min() >= 0 and val_labels.max() < kept
    assert len(train_labels) == int((~np.isin(ws.labels("train").numpy(), held)).sum())
    assert len(val_labels) == int((~np.isin(ws.labels("val").numpy(), held)).sum())


def test_run_reports_each_signal_with_the_thresholds_rule(spec, synthetic_root, root):
    result = run(folds=(0,), data_root=synthetic_root, artifacts_root=root, spec=spec, pass_rate=0.9, target_accuracy=0.0)
    fold, = result["folds"]
    assert tuple(fold["signals"]) == SIGNALS == tuple(result["mean"])
    ws = Workspace("stratified", synthetic_root, root)
    held = held_out_species(0, N_CLASSES)
    assert fold["n_unseen_images"] == sum(int(np.isin(ws.labels(p).numpy(), held).sum()) for p in ("train", "val"))
    assert fold["n_trained_val_images"] == int((~np.isin(ws.labels("val").numpy(), held)).sum())  # thresholds: trained only
    for name in DISTANCES:
        r = fold["signals"][name]
        assert r["trained_val_passing"] >= 0.9  # the threshold lets the share asked for of the trained species' val pass
        assert 0 <= r["unseen_passing"] <= 1 and 0 <= r["auroc"] <= 1
    signals = fold["signals"]
    # a target accuracy of 0 keeps every answer: the entropy lets all through and the app's rule is the distance's
    assert signals[ENTROPY]["trained_val_passing"] == signals[ENTROPY]["unseen_passing"] == 1.0
    for part in ("trained_val_passing", "unseen_passing"):
        assert signals[APP_RULE][part] == signals[SHIPPED_DISTANCE][part]
    assert fold["app_rule_by_pass_rate"][str(0.9)] == signals[APP_RULE]  # the sweep holds the shipped point too
    swept = [fold["app_rule_by_pass_rate"][str(r)]["trained_val_passing"] for r in sorted(SWEPT_PASS_RATES)]
    assert swept == sorted(swept)  # a check that lets more validation flowers pass answers more of them
    assert signals[APP_RULE]["auroc"] is None and result["mean"][APP_RULE]["auroc"] is None
    (root / paths.UNSEEN_SPECIES.path).parent.mkdir(parents=True, exist_ok=True)
    (root / paths.UNSEEN_SPECIES.path).write_text(json.dumps(result))
    text = "\n".join(to_markdown(novelty.unseen_species_lines(root)))
    assert all(f"| {name} " in text for name in SIGNALS) and "fold 0: held-out species passing" in text
    table, chosen, shipped, limit = novelty.unseen_operating_points(result, root)
    assert limit == result["max_unseen_answered"] == MAX_UNSEEN_ANSWERED
    assert list(table["novelty check: validation flowers passing"]) == list(SWEPT_PASS_RATES) and shipped == []
    assert chosen == operating_point(result["mean_app_rule_by_pass_rate"]) == result["operating_point"]
    marked = table.set_index("novelty check: validation flowers passing")[""]
    assert marked[0.9].startswith("the signal table's") and "operating_point" in text


@pytest.mark.slow
def test_the_localised_app_rule_is_scored_with_the_recorded_rule(spec, synthetic_root, root):
    """With a rule in the manifest, the app's rule is scored again with the localisation stage; a rule that keeps the
    whole image's answer changes nothing, one that answers from the crop classifies the crops (at 64 px: a 2x2
    class map, so a bloom can be smaller than the view)."""
    def fold_with(rule: dict, spec=replace(spec, input_size=64)) -> dict:
        art.update_manifest(root, localise={"rule": rule, "shipped": True, "models": []})
        try:
            result = run(folds=(0,), data_root=synthetic_root, artifacts_root=root, spec=spec, pass_rate=0.9)
        finally:
            art.update_manifest(root, localise=None)
        assert result["localise_rule"] == LocaliseRule.from_dict(rule).to_dict() and "mean_localised" in result
        (root / paths.UNSEEN_SPECIES.path).parent.mkdir(parents=True, exist_ok=True)
        (root / paths.UNSEEN_SPECIES.path).write_text(json.dumps(result))
        assert "| with the localisation stage " in "\n".join(to_markdown(novelty.unseen_species_lines(root)))
        return result["folds"][0]

    whole = fold_with({"threshold": 0.5, "margin": 0.1, "min_side": 0.3, "max_side": 1.0, "combine": "whole"}, spec)
    for part in ("trained_val_passing", "unseen_passing", "trained_val_accuracy_when_answered"):
        assert whole["localised"][part] == whole["signals"][APP_RULE][part] == whole["localised"][f"{part}_whole"]
    assert whole["localised"]["trained_val_top1"] == whole["localised"]["trained_val_top1_whole"]
    crop = fold_with({"threshold": 0.5, "margin": 0.0, "min_side": 0.3, "max_side": 1.0, "combine": "crop"})["localised"]
    assert crop["unseen_crop_used"] > 0 and crop["trained_val_crop_used"] > 0  # a small crop is always used
    assert all(0 <= crop[k] <= 1 for k in ("trained_val_passing", "unseen_passing", "trained_val_top1"))
    assert "localised" not in run(folds=(0,), data_root=synthetic_root, artifacts_root=root, spec=spec)["folds"][0]
