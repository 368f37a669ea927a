"""The full fine-tuning path (what ``--device cuda`` runs), exercised on CPU with ``frozen_stages=0``:
photo augmentation on the fly, CutMix/MixUp batches, the student distilled from a teacher that scores
each augmented batch, and recording models trained elsewhere (``--from-trained``)."""
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from conftest import TEST_INPUT_SIZE
from flowers_core.serve.preprocess import Preprocess
from flowers_core.training import weights
from flowers_core.training.level5 import run_student
from flowers_core.training.recipes import LEVELS
from flowers_core.training.transforms import batch_mix, train_augment


def full_spec(name: str):


    spec = LEVELS[name]
    return replace(spec, input_size=TEST_INPUT_SIZE,
                   full=replace(spec.full, config=replace(spec.full.config, epochs=1, batch_size=128)))


def test_photo_augmentation_keeps_shape_and_varies():
    pre = Preprocess(TEST_INPUT_SIZE)
    square = torch.randint(0, 256, (3, pre.resize_size, pre.resize_size), dtype=torch.uint8)
    views = [train_augment("photo", pre)(square) for _ in range(4)]
    assert all(v.shape == (3, TEST_INPUT_SIZE, TEST_INPUT_SIZE) and v.dtype == torch.float32 for v in views)
    assert not torch.allclose(views[0], views[1])


def test_mixed_batches_carry_class_probabilities():
    x, y = torch.rand(8, 3, 16, 16), torch.arange(8)
    mixed_x, mixed_y = batch_mix(102, 1.0)(x, y)
    assert mixed_y.shape == (8, 102) and torch.allclose(mixed_y.sum(-1), torch.ones(8))
    assert torch.equal(batch_mix(102, 0.0)(x, y)[1], y)


@pytest.mark.slow  # full fine-tuning and distillation of the tiny models: about 3 minutes here
def test_full_finetuning_then_recording_elsewhere(tmp_path, synthetic_root, cache_dir):
    from flowers_core.training.distill import load_trained_student, train_student
    from flowers_core.training.levels import load_trained, prepare_workspace, run_ensemble, run_level
    from flowers_core.training.recipes import STUDENT

    remote, local = tmp_path / "remote", tmp_path / "local"
    ws = prepare_workspace("stratified", synthetic_root, artifacts_root=remote)
    for name in ("level2", "level3"):
        entry = run_level(full_spec(name), "stratified", ws, artifacts_root=remote, frozen_stages=0)
        assert entry.frozen_stages == 0 and entry.details["augment"] == "photo" and entry.details["batch_mix"] == 0.5
        assert entry.details["trainable_params"] == entry.params
    run_ensemble("stratified", ("level2", "level3"), artifacts_root=remote)

    student = replace(STUDENT, input_size=TEST_INPUT_SIZE,
                      full=replace(STUDENT.full, config=replace(STUDENT.full.config, epochs=1, batch_size=128)))
    model, info = train_student(student, "stratified", ws, artifacts_root=remote, frozen_stages=0)
    assert model.frozen_stages == 0 and 0 <= info["teacher_train_top1_eval_view"] <= 1
    run_student("stratified", ws, artifacts_root=remote, spec=student, trained=(model, info), train_only=True)

    # here: the weights of the other machine are scored and recorded, not re-trained
    ws_local = prepare_workspace("stratified", synthetic_root, artifacts_root=local)
    trained = load_trained("level2", "stratified", remote)
    recorded = run_level(full_spec("level2"), "stratified", ws_local, artifacts_root=local, trained=trained)
    assert recorded.details["best_epoch"] == trained.best_epoch and recorded.details["augment"] == "photo"
    shipped = weights.build_flowernet(recorded, local)
    assert all(torch.equal(a, b) for a, b in zip(shipped.state_dict().values(), trained.model.state_dict().values()))
    model_back, info_back = load_trained_student("stratified", remote, student)
    assert info_back["augment"] == "photo" and info_back["train_config"]["kd_alpha"] == 0.9
    assert torch.equal(next(iter(model_back.state_dict().values())), next(iter(model.state_dict().values())))


def test_train_all_with_the_student_runs_level5_with_the_same_options(monkeypatch):
    """`python -m train.all --with-student --protocol official` must run level 5 on the official protocol: both
    steps take one ``RunOptions``."""
    from flowers_core.training import level5, runs

    seen = {}
    monkeypatch.setattr(runs, "run_levels", lambda names, opts, frozen_stages=None: None)
    monkeypatch.setattr(runs, "run_ensemble", lambda protocol, artifacts_root=None: None)
    monkeypatch.setattr(level5, "prepare_workspace", lambda *a, **k: None)
    monkeypatch.setattr(level5, "run_student", lambda protocol, *a, **k: seen.setdefault("protocols", []).append(protocol))
    opts = runs.RunOptions(protocols=("official",))
    runs.train_all(opts)
    level5.run_level5(opts)
    assert seen["protocols"] == ["official"]


@pytest.mark.parametrize("device, fitted", [("cpu", True), ("cuda", False)])
def test_train_all_refits_the_novelty_checks_of_the_levels_it_re_recorded(monkeypatch, device, fitted):
    """Re-recorded entries lose their novelty checks: on the shipped protocol train.all fits them again,
    members before the ensemble (not on a lent GPU, which holds no test images: --from-trained does it here)."""
    from flowers_core.training import runs

    fitted_names = []
    monkeypatch.setattr(runs, "run_levels", lambda names, opts, frozen_stages=None: None)
    monkeypatch.setattr(runs, "run_ensemble", lambda protocol, artifacts_root=None: None)
    monkeypatch.setattr(runs, "fit_novelty", lambda name, *a, **k: fitted_names.append(name))
    runs.train_all(runs.RunOptions(device=device))
    assert fitted_names == (["level1", "level2", "level3", "ensemble"] if fitted else [])


def test_level_runs_pass_the_trunk_depth_to_the_run(monkeypatch):
    """`python -m train.level1 --frozen-stages 6` trains one more block group (the depth ablation)."""
    from flowers_core.training import runs

    seen = {}
    opts = runs.RunOptions(protocols=("stratified",))
    monkeypatch.setattr(runs, "prepare_workspace", lambda *a, **k: None)
    monkeypatch.setattr(runs, "run_level", lambda spec, *a, frozen_stages=None, **k: seen.update(
        name=spec.name, frozen_stages=frozen_stages))
    runs.run_levels(["level1"], opts, frozen_stages=6)
    assert seen == {"name": "level1", "frozen_stages": 6}
    runs.run_levels(["level1"], opts)
    assert seen["frozen_stages"] is None  # the architecture's default depth
    with pytest.raises(ValueError, match="--from-trained"):  # a level trained elsewhere has its depth already
        runs.run_levels(["level1"], runs.RunOptions(from_trained=Path("somewhere")), frozen_stages=6)


def test_level5_distils_on_the_views_it_is_given(monkeypatch):
    """`python -m train.level5 --views eval photo0 [--int8-trunk-views ...]`: the student's cached views (the
    photo-view ablation) and which of them it also sees through the INT8 file's trunk."""
    from flowers_core.training import level5, runs
    from flowers_core.training.recipes import STUDENT

    specs = []
    opts = runs.RunOptions(protocols=("official",))
    monkeypatch.setattr(level5, "prepare_workspace", lambda *a, **k: None)
    monkeypatch.setattr(level5, "run_student", lambda protocol, ws, device, epochs, root, spec, **k: specs.append(spec))
    level5.run_level5(opts, replace(STUDENT, views=("eval", "photo0")))
    level5.run_level5(opts)
    level5.run_level5(opts, replace(STUDENT, views=("strong0", "photo0"), int8_trunk_views=()))
    level5.run_level5(opts, replace(STUDENT, int8_trunk_views=("eval", "photo0")))
    assert specs[0].views == ("eval", "photo0") and specs[0].name == STUDENT.name
    assert specs[0].int8_trunk_views == ("eval",)
    assert specs[1] == STUDENT  # by default the shipped recipe
    assert specs[2].views == ("strong0", "photo0") and specs[2].int8_trunk_views == ()
    assert specs[3].int8_trunk_views == ("eval", "photo0")
    with pytest.raises(ValueError):  # an INT8-trunk view takes the soft targets of the same distilled view
        replace(STUDENT, views=("strong0", "photo0"))
    assert len(specs) == 4


def test_the_recipe_names_the_students_views():
    from flowers_core.bench.realworld import recipe_of
    from flowers_core.shipped.manifest import ModelEntry

    entry = ModelEntry.from_dict({"name": "student", "level": 5, "protocol": "stratified", "format": "safetensors",
                                  "preprocess": {}, "frozen_stages": 7, "augment": "distillation",
                                  "teacher": "ensemble", "views": ["eval", "strong0", "strong1", "photo0"]})
    assert recipe_of(entry) == ("distilled from the ensemble, frozen trunk (first 7 stages), "
                                "cached views: eval, 2 strong, 1 photo, trained on cpu")


def test_level_runs_pass_the_photo_views_to_the_run(monkeypatch):
    """`python -m train.level3 --photo-views 2`: the level's recipe plus two cached people's-photo views (a trial)."""
    from flowers_core.training import runs


    specs = []
    opts = runs.RunOptions(protocols=("stratified",))
    monkeypatch.setattr(runs, "prepare_workspace", lambda *a, **k: None)
    monkeypatch.setattr(runs, "run_level", lambda spec, *a, **k: specs.append(spec))
    runs.run_levels(["level3"], opts, photo_views=2)
    runs.run_levels(["level3"], opts)
    assert specs[0].photo_views == 2 and specs[0].aug_views == LEVELS["level3"].aug_views
    assert specs[1] == LEVELS["level3"] and specs[1].photo_views == 0  # the shipped recipe: none
    with pytest.raises(ValueError, match="--from-trained"):
        runs.run_levels(["level3"], runs.RunOptions(from_trained=Path("somewhere")), photo_views=2)
