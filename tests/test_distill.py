"""Level 5 distillation: the loss goes down, soft targets are the ensemble's, everything is recorded."""
import json

import numpy as np
import torch

from _recorded import assert_recorded_matches_shipped
from flowers_core.bench.realworld import recipe_of
from flowers_core.serve.localise import CLASS_MAPS_OUTPUT
from flowers_core.serve.novelty import FEATURES_OUTPUT
from flowers_core.serve.runtime import OnnxSession
from flowers_core.shipped import manifest as art
from flowers_core.training.distill import teacher_soft_targets
from flowers_core.training.engine import CachedViews, TrainConfig, distillation_loss, fit
from flowers_core.training.fits import TARGET_SELECTIVE_ACCURACY, saved_uncertainty
from flowers_core.training.models import create_model
from flowers_core.training.recipes import STUDENT, StudentSpec


def _tiny_problem(n=96, classes=102, seed=0):
    torch.manual_seed(seed)
    model = create_model("efficientnet_lite0", "linear", classes, pretrained=False, input_size=32)
    model.freeze_trunk()
    with torch.no_grad():
        feats = model.trunk().eval()(torch.randn(n, 3, 32, 32))
    labels = torch.randint(0, classes, (n,))
    teacher = torch.softmax(torch.randn(n, classes) * 3 / 4.0, -1)
    return model, feats, labels, teacher


def test_distillation_step_runs_and_lowers_the_loss():
    model, feats, labels, teacher = _tiny_problem()
    cfg = TrainConfig(epochs=4, batch_size=32, lr=3e-3, warmup_epochs=0, kd_alpha=0.7, kd_temperature=4.0,
                      patience=10)

    def kd_loss():
        with torch.no_grad():
            return distillation_loss(model.eval().forward_from_trunk(feats), teacher, labels, 0.7, 4.0).item()

    before = kd_loss()
    hist = fit(model.trainable(), model.forward_from_trunk, CachedViews(feats[None], labels, 32, soft=teacher[None]),
               feats[:8], labels[:8], cfg)["history"]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert kd_loss() < before


def test_soft_targets_are_the_members_mean_at_temperature(tmp_path, monkeypatch):
    """Each member scores the same images through its own trunk (members may differ in trunk)."""
    monkeypatch.setenv("FLOWERS_CACHE", str(tmp_path))
    torch.manual_seed(0)
    members = [create_model("efficientnet_lite0", "linear", 102, pretrained=False, input_size=32).eval(),
               create_model("efficientnet_lite0", "attention", 102, pretrained=False, input_size=32).eval(),
               create_model("efficientnet_lite1", "linear", 102, pretrained=False, input_size=32, frozen_stages=6).eval()]
    members[1].trunk().load_state_dict(members[0].trunk().state_dict())
    images = torch.randn(2, 6, 3, 32, 32)  # 2 views of 6 images
    calls = []

    def views_of(m):
        calls.append(m.arch)
        return torch.stack([m.trunk()(v) for v in images])

    with torch.no_grad():
        soft = teacher_soft_targets(members, views_of, 4.0, cache_key="t")
        expected = sum(torch.softmax(m(images[1]) / 4.0, -1) for m in members) / 3
    assert calls == ["efficientnet_lite0", "efficientnet_lite1"]  # the shared trunk runs once
    assert soft.shape == (2, 6, 102)
    assert torch.allclose(soft[1].float(), expected, atol=2e-3)
    assert torch.allclose(soft.float().sum(-1), torch.ones(2, 6), atol=1e-2)
    assert len(list((tmp_path / "teacher").glob("*.npy"))) == 1
    again = teacher_soft_targets(members, views_of, 4.0, cache_key="t")
    assert torch.equal(again, soft) and len(calls) == 2  # served from the cache


def test_student_and_int8_are_recorded(student_artifacts, student_entries):
    models = art.read_manifest(student_artifacts)["models"]["stratified"]
    student, int8 = models["student"], models["student_int8"]
    assert student["level"] == int8["level"] == 5 and student["format"] == "safetensors" and int8["format"] == "onnx"
    assert student["train_config"]["kd_alpha"] > 0 and student["teacher"] == "ensemble"
    assert (student_artifacts / student["weights"]).is_file() and (student_artifacts / int8["file"]).is_file()
    for entry in (student, int8):
        assert 0 <= entry["metrics"]["test"]["top1"] <= 1 and entry["latency"]["p50_ms"] > 0
        unc = entry["uncertainty"]
        assert unc["temperature"] > 0 and unc["target_selective_accuracy"] == TARGET_SELECTIVE_ACCURACY
        assert 0 <= unc["entropy_threshold"] <= np.log(102) + 1e-6
        assert {"val", "test"} <= set(unc["ece_before"]) and {"val", "test"} <= set(unc["ece_after"])
        curve = json.loads((student_artifacts / unc["coverage_accuracy"]).read_text())
        cov = [p["coverage"] for p in curve["val"]]
        assert cov == sorted(cov) and cov[-1] == 1.0
    assert int8["file_bytes"] <= 6_000_000
    outputs = OnnxSession(student_artifacts / int8["file"], threads=1).output_names
    assert outputs == ["logits", FEATURES_OUTPUT, CLASS_MAPS_OUTPUT]  # the novelty check's and the localisation's
    assert student["int8_trunk_views"] == list(STUDENT.int8_trunk_views) == ["eval"]
    assert student["epoch_chosen_on"] == "validation through the INT8 trunk"
    assert "through the INT8 trunk" in recipe_of(art.model_entry("student", "stratified", student_artifacts))
    log = [json.loads(l) for l in (student_artifacts / student["log"]).read_text().splitlines()]
    assert len(log) >= 1


def test_int8_trunk_views_must_be_distilled_views():
    """An INT8-trunk view takes the teacher's soft targets of the same view, so it must be one of the views."""
    import pytest

    with pytest.raises(ValueError):
        StudentSpec(views=("eval", "strong0"), int8_trunk_views=("photo0",))
    assert StudentSpec(views=("eval",), int8_trunk_views=()).int8_trunk_views == ()


def test_recorded_student_is_the_shipped_file(student_artifacts, student_entries, synthetic_root):
    assert_recorded_matches_shipped(student_artifacts, synthetic_root, "student")



def test_uncertainty_is_refitted_from_the_saved_probabilities(student_artifacts, student_entries):
    """``train.level5 --uncertainty-only`` reproduces what the training run stored, and a stricter
    target gives a threshold that is no larger (it rejects at least as much)."""
    stored = art.model_entry("student_int8", "stratified", student_artifacts).uncertainty
    again, curves = saved_uncertainty("student_int8", "stratified", student_artifacts)
    assert curves["entropy_threshold"] == again["entropy_threshold"]
    assert again["entropy_threshold"] == stored["entropy_threshold"]
    assert abs(again["temperature"] - stored["temperature"]) < 1e-9
    loose, _ = saved_uncertainty("student_int8", "stratified", student_artifacts, target=0.0)
    assert loose["entropy_threshold"] >= again["entropy_threshold"]
    assert loose["selective"]["val"]["coverage"] == 1.0
