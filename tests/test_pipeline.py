import json

import numpy as np
import pytest

from _recorded import assert_recorded_matches_shipped
from flowers_core.shipped import manifest as art
from flowers_core.training import weights
from flowers_core.training.data import load_index, make_split
from flowers_core.training.levels import Workspace


def test_levels_train_and_record_everything(trained_artifacts):
    manifest = art.read_manifest(trained_artifacts)
    models = manifest["models"]["stratified"]
    assert set(models) >= {"level1", "level2", "level3", "ensemble"}
    assert len(manifest["classes"]) == 102
    for name in ("level1", "level2", "level3"):
        entry = models[name]
        assert (trained_artifacts / entry["weights"]).is_file()
        log = [json.loads(l) for l in (trained_artifacts / entry["log"]).read_text().splitlines()]
        assert len(log) >= 1 and {"train_loss", "val_acc"} <= set(log[0])
        probs, ids, labels = art.load_probs(entry["probs"]["test"], trained_artifacts)
        assert probs.shape == (len(ids), 102) and np.allclose(probs.sum(1), 1, atol=1e-2)
        assert 0 <= entry["metrics"]["test"]["top1"] <= 1
    split = json.loads((trained_artifacts / "splits" / "stratified.json").read_text())
    assert {len(v) for v in split.values()} and sum(len(v) for v in split.values()) == 1020


def test_recorded_predictions_are_those_of_the_shipped_files(trained_artifacts, synthetic_root):
    """The manifest and saved probabilities describe the shipped (fp16) weights run through the
    app's eval view on the decoded images, not the in-memory fp32 model on cached features."""
    for name in ("level1", "level3"):
        assert_recorded_matches_shipped(trained_artifacts, synthetic_root, name)


def test_ensemble_is_the_mean_of_temperature_scaled_members(trained_artifacts):
    """Saved ensemble probabilities and the loadable ensemble module apply the same per-member
    temperatures, and the recorded voting variant is the better one on validation."""
    import torch

    from flowers_core.metrics import logits_from_saved, softmax

    entry = art.model_entry("ensemble", "stratified", trained_artifacts)
    temps = entry.member_temperatures
    assert len(temps) == len(entry.members) == 3 and all(t > 0 for t in temps)
    variants, voting = entry.details["voting_variants_val"], entry.details["voting"]
    assert voting in variants
    assert variants[voting]["val"]["top1"] == max(v["val"]["top1"] for v in variants.values())
    assert entry.top1("val") == variants[voting]["val"]["top1"]

    members = [art.load_probs(art.model_entry(m, "stratified", trained_artifacts).probs["val"], trained_artifacts)[0]
               for m in entry.members]
    expected = np.mean([softmax(logits_from_saved(p), t) for p, t in zip(members, temps)], axis=0)
    saved = art.load_probs(entry.probs["val"], trained_artifacts)[0]
    assert np.allclose(saved, expected, rtol=1e-3, atol=1e-4)  # saved probabilities are fp16

    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = weights.load_model("ensemble", root=trained_artifacts)(x).softmax(-1)
        ref = sum((weights.load_model(m, root=trained_artifacts)(x) / t).softmax(-1)
                  for m, t in zip(entry.members, temps)) / 3
    assert torch.allclose(out, ref, atol=1e-5)


def _files(root) -> dict:
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_opening_a_workspace_leaves_the_artifacts_untouched(tmp_path, synthetic_root):
    """Benchmarks open a Workspace on the shipped artifacts: it reads the split training wrote and
    writes nothing (not the split, not the manifest's classes/splits)."""
    split = make_split(load_index(synthetic_root), "stratified")
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "stratified.json").write_text(json.dumps(split, indent=2))  # not save_split's layout
    art.write_manifest({"models": {"stratified": {}}}, tmp_path)
    before = _files(tmp_path)
    ws = Workspace("stratified", synthetic_root, artifacts_root=tmp_path)
    assert ws.ids("test").tolist() == split["test"] and len(ws.labels("val")) == len(split["val"])
    assert _files(tmp_path) == before


def test_a_workspace_without_its_split_names_the_command(tmp_path, synthetic_root):
    with pytest.raises(art.ArtifactMissing, match="python -m train.all"):
        Workspace("official", synthetic_root, artifacts_root=tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_level_can_also_train_on_views_that_look_like_peoples_photos(trained_artifacts, synthetic_root):
    """``LevelSpec.photo_views`` (``train.levelN --photo-views``): the CPU recipe draws the eval view, the
    level's augmented views and that many views of the `photo` preset; the record and its recipe text say so."""
    from dataclasses import replace

    import torch

    from conftest import tiny_spec
    from flowers_core.bench.realworld import recipe_of
    from flowers_core.shipped.manifest import ModelEntry
    from flowers_core.training.levels import training_views
    from flowers_core.training.models import create_model

    ws = Workspace("stratified", synthetic_root, artifacts_root=trained_artifacts)
    spec = replace(tiny_spec("level3"), photo_views=2)
    model = create_model(spec.arch, spec.head, 102, pretrained=False, input_size=spec.input_size)
    views = training_views(spec, model, ws)
    assert views.shape[0] == 1 + spec.aug_views + 2 == 7
    assert torch.equal(views[0], ws.features(model, "train", "eval"))
    assert torch.equal(views[-1], ws.features(model, "train", "photo", seed=1))
    assert not torch.equal(views[-1], views[-2])  # two different photo-like views of every image
    assert training_views(tiny_spec("level3"), model, ws).shape[0] == 5  # the shipped recipe: none
    shipped = art.model_entry("level3", "stratified", trained_artifacts)
    assert shipped.details["photo_views"] == 0 and "photo views" not in recipe_of(shipped)
    trial = ModelEntry.from_dict({**shipped.to_dict(), "photo_views": 2})
    assert recipe_of(trial).endswith("strong augmentation + 2 photo views, trained on cpu")


def test_features_of_a_replacement_trunk_are_cached_apart_from_the_models_own(tmp_path):
    """``trunk_features(trunk=..., trunk_name=...)`` (the INT8 file's trunk for the student): its own cache
    file, the model's own trunk keeps the key it always had (existing caches stay valid), and a replacement
    trunk without a name is refused."""
    import hashlib

    import pytest
    import torch

    from flowers_core.training.features import trunk_features
    from flowers_core.training.models import create_model

    model = create_model("efficientnet_lite0", "linear", 102, pretrained=False, input_size=32).eval()
    squares = torch.randint(0, 256, (5, 3, 37, 37), dtype=torch.uint8)
    own = trunk_features(model, squares, cache_dir=tmp_path, tag="t")
    calls = []

    def doubled(x):
        calls.append(len(x))
        return model.trunk()(x) * 2

    other = trunk_features(model, squares, cache_dir=tmp_path, tag="t", trunk=doubled, trunk_name="x2")
    assert torch.allclose(other.float(), own.float() * 2, rtol=1e-2, atol=1e-3) and sum(calls) == 5
    assert torch.equal(trunk_features(model, squares, cache_dir=tmp_path, tag="t", trunk=doubled, trunk_name="x2"), other)
    assert sum(calls) == 5  # served from its cache
    key = hashlib.sha1(f"efficientnet_lite0|7|eval|0|{tuple(squares.shape)}|t".encode()).hexdigest()[:12]
    files = sorted(p.name for p in (tmp_path / "features").glob("*.npy"))
    assert f"efficientnet_lite0_s7_eval0_{key}.npy" in files and len(files) == 2
    assert any(f.startswith("efficientnet_lite0_s7_x2_eval0_") for f in files)
    with pytest.raises(ValueError):
        trunk_features(model, squares, cache_dir=tmp_path, tag="t", trunk=doubled)
