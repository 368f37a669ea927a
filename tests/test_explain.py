"""Explanations on the synthetic trained models: shapes, ranges, and the shared model left untouched."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from flowers_core.explain import maps as explain
from flowers_core.training.transforms import normalize, tensor_from_pil
from flowers_core.training.weights import load_model


@pytest.fixture(scope="module")
def models(request):
    """$FLOWERS_APP_TEST_ARTIFACTS when set (e.g. the real artifacts), else the synthetic fixture."""
    import os

    root = os.environ.get("FLOWERS_APP_TEST_ARTIFACTS") or request.getfixturevalue("trained_artifacts")
    return {n: load_model(n, root=root) for n in ("level1", "level3")}


@pytest.fixture
def img():
    arr = np.zeros((48, 56, 3), np.uint8)
    arr[10:40, 12:44] = (200, 60, 90)
    return Image.fromarray(arr)


@pytest.mark.parametrize("method", explain.CAM_METHODS)
def test_cam_methods(models, img, method):
    model = models["level1"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks_before = sum(len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules())
    exp = explain.gradcam(model, img, method, target=5)
    size = model.preprocess.input_size
    assert exp.view.shape == (size, size, 3) and exp.view.dtype == np.uint8
    assert exp.heatmap.shape == (size, size)
    assert 0 <= exp.heatmap.min() and exp.heatmap.max() <= 1
    assert exp.target == (None if method == "EigenCAM" else 5)
    # the shared (cached) model is never mutated: same weights, no hooks, no grads left behind
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert sum(len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules()) == hooks_before
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("method", explain.CAM_METHODS)
def test_cam_equals_the_full_backward_pass(models, img, method):
    """explain's head-only gradient gives pytorch-grad-cam's heatmap, computed the library's way: hooks on the
    last stage of a private copy of the whole model and a full backward pass (what the app did before)."""
    import copy

    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = models["level1"]
    private = copy.deepcopy(model).eval()
    for p in private.parameters():
        p.requires_grad_(True)
    x = tensor_from_pil(model.preprocess, img)
    library = {"Grad-CAM": GradCAM, "Grad-CAM++": GradCAMPlusPlus, "EigenCAM": EigenCAM}[method]
    with torch.enable_grad(), library(model=private, target_layers=[private.stages[-1]]) as cam:
        reference = cam(input_tensor=x, targets=[ClassifierOutputTarget(3)])[0]
    np.testing.assert_allclose(explain.gradcam(model, img, method, target=3).heatmap, reference, atol=1e-4)


def test_contrast_equals_the_library_on_a_score_difference(models, img):
    """``versus``: the map of class 3's score minus class 7's, as pytorch-grad-cam computes it for that target (its
    FinerWeightedTarget with one comparison class and alpha 1, less its softmax weighting, which cancels)."""
    import copy

    from pytorch_grad_cam import GradCAM

    model = models["level1"]
    private = copy.deepcopy(model).eval()
    for p in private.parameters():
        p.requires_grad_(True)
    with torch.enable_grad(), GradCAM(model=private, target_layers=[private.stages[-1]]) as cam:
        reference = cam(input_tensor=tensor_from_pil(model.preprocess, img), targets=[lambda out: out[3] - out[7]])[0]
    contrast = explain.gradcam(model, img, "Grad-CAM", target=3, versus=7).heatmap
    np.testing.assert_allclose(contrast, reference, atol=1e-4)
    # the other way round marks the other places (the synthetic models' 1 × 1 feature maps give flat maps: nothing to
    # compare; the real artifacts, FLOWERS_APP_TEST_ARTIFACTS, have 9 × 9)
    if np.ptp(contrast) > 0:
        assert not np.allclose(contrast, explain.gradcam(model, img, "Grad-CAM", target=7, versus=3).heatmap, atol=1e-3)


def test_default_target_is_the_prediction(models, img):
    model = models["level1"]
    with torch.no_grad():
        pred = int(model(tensor_from_pil(model.preprocess, img)).argmax())
    assert explain.gradcam(model, img).target == pred


def test_attention_map(models, img):
    exp = explain.attention_map(models["level3"], img)
    assert exp.heatmap.shape == exp.view.shape[:2]
    with pytest.raises(ValueError):
        explain.attention_map(models["level1"], img)


def test_lime(models, img):
    exp = explain.lime(models["level1"], img, target=2, num_samples=20)
    assert exp.heatmap.shape == exp.view.shape[:2] and exp.target == 2


def test_lime_reports_progress_in_bounded_batches(models, img):
    model, batches, seen = models["level1"], [], []

    class Recording(torch.nn.Module):  # the same model, recording how many images each forward pass gets
        preprocess = model.preprocess

        def forward(self, x):
            batches.append(len(x))
            return model(x)

    explain.lime(Recording(), img, target=2, num_samples=21, progress=lambda done, total: seen.append((done, total)))
    assert max(batches) <= explain.LIME_BATCH
    assert sum(batches) == 21  # every perturbed sample classified once (the target was given)
    assert seen[-1] == (21, 21) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_overlay_and_png(img):
    view = np.full((32, 32, 3), 100, np.uint8)
    heat = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    assert np.array_equal(explain.overlay(view, heat, 0.0), view)
    assert np.array_equal(explain.overlay(view, heat, 1.0), explain.colorize(heat))
    data = explain.to_png(explain.overlay(view, heat, 0.4), scale=2)
    assert Image.open(__import__("io").BytesIO(data)).size == (64, 64)


def test_model_view_matches_preprocess(models, img):
    pre = models["level1"].preprocess
    view = explain.model_view(img, pre)
    x = normalize(pre, torch.from_numpy(view).permute(2, 0, 1)[None])
    assert torch.allclose(x, tensor_from_pil(pre, img), atol=1e-5)


def test_gradcam_needs_no_cam_library():
    """A cold Explain page imports torch, timm and this module only: not pytorch-grad-cam (~3 s with the
    scikit-learn it imports)."""
    import subprocess
    import sys

    code = "import sys, flowers_core.explain; print(sorted(m for m in ('pytorch_grad_cam', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
