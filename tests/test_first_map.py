"""Explain's torch-free path: the ONNX class activation map is Grad-CAM, the numpy imputer is pytorch-grad-cam's,
the page's check never says what its numbers do not, the ONNX twins answer as their torch models, and the app's
caches and memory hand-back behave."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch

from flowers_core.app.explanations import BoundedCache
from flowers_core.app.memory import give_back, limit_arenas
from flowers_core.results.explanations import check_sentence, check_verdict_words
from flowers_core.serve.heatmap import class_activation_map
from flowers_core.serve.preprocess import Preprocess
from flowers_core.serve.road import MARGIN, HidingCheck, impute, keep_mask, random_map
from flowers_core.serve.runtime import OnnxSession
from flowers_core.training.models import create_model
from flowers_core.training.onnx_edits import add_class_map_output
from flowers_core.training.quantise import export_onnx


# ---------------------------------------------------------------------------------------------
# The imputer and the mask
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("share", [0.05, 0.2, 0.5])
def test_the_numpy_imputer_is_pytorch_grad_cams(share):
    from pytorch_grad_cam.metrics.perturbation_confidence import RemoveMostRelevantFirst
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    from flowers_core.serve.road import unique_ranks

    rng = np.random.default_rng(1)
    image = rng.standard_normal((3, 40, 48)).astype(np.float32)
    heat = random_map(48, 5, 2)[:40]
    ours = impute(image, keep_mask(heat, share), noise=0.0)
    ranks = unique_ranks(heat)
    ranks = (ranks - ranks.min()) / (ranks.max() - ranks.min())
    theirs = RemoveMostRelevantFirst(100 * (1 - share), NoisyLinearImputer(noise=0.0))(
        torch.from_numpy(image), torch.from_numpy(ranks)).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    hidden = keep_mask(heat, share) == 0
    assert abs(hidden.mean() - share) < 0.01
    assert np.array_equal(ours[:, ~hidden], image[:, ~hidden]), "kept pixels are untouched"


def test_the_mask_hides_what_the_map_marks_most_or_least():
    heat = np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10)
    most, least = keep_mask(heat, 0.2), keep_mask(heat, 0.2, most_first=False)
    assert most[-2:].sum() == 0 and most[:8].all(), "the top 20% of the map is hidden"
    assert least[:2].sum() == 0 and least[2:].all(), "the bottom 20% of the map is hidden"


# ---------------------------------------------------------------------------------------------
# The page's check: the verdict decides on the numbers its sentence quotes
# ---------------------------------------------------------------------------------------------
PERCENT = re.compile(r"(\d+)%")


def generated_checks(n: int = 3000, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        confidence = float(rng.choice([rng.random(), 0.999, 0.5]))
        draws = int(rng.integers(2, 12))
        spread = float(rng.choice([0.0, 0.01, 0.1, 0.3]))
        centre = float(np.clip(confidence + rng.normal(0, 0.3), 0, 1))
        random = np.clip(confidence + rng.normal(rng.normal(0, 0.2), spread, draws), 0, 1)
        after_map = float(np.clip(confidence + rng.normal(0, 0.3), 0, 1))
        yield HidingCheck(3, 0.2, confidence, after_map, random, centre)


def test_no_verdict_contradicts_its_numbers():
    seen = set()
    for check in generated_checks():
        words = check_verdict_words(check)
        seen.add(check.verdict)
        moved = max(abs(check.confidence - v) for v in (check.after_map, *check.after_random))
        if words.startswith("✅"):  # "explains": hiding the marked part lowers the confidence, more than random parts
            assert check.after_map < check.confidence and check.random_mean - check.after_map >= check.needed
            assert check.random_mean - check.after_map >= MARGIN
        if words.startswith("❌"):
            assert check.after_map - check.random_mean >= check.needed
        if words.startswith("ℹ️"):
            assert moved < MARGIN
        if "no better than chance" in words:
            assert abs(check.gap) < check.needed and check.after_map < check.confidence
        if "does not lower" in words:
            assert check.after_map >= check.confidence
        for quoted in PERCENT.findall(words.split("(")[0]):  # a quoted gap is the measured one, rounded
            assert int(quoted) == round(abs(100 * check.gap)) or int(quoted) == round(100 * check.margin)
    assert seen == {"better", "chance", "worse", "unmoved"}


def test_the_sentence_quotes_the_numbers_the_verdict_used():
    for check in generated_checks(500, seed=1):
        sentence = check_sentence("Sunflower", check)
        numbers = [int(p) for p in PERCENT.findall(sentence)]
        # confidence, share, after the map, share, random mean, the draws' range (2), share, the centre
        assert numbers[0] == round(100 * check.confidence)
        assert f"{check.after_map:.0%}" in sentence or "leaves it at" in sentence
        assert f"{check.random_mean:.0%}" in sentence or "leaves it at" in sentence
        assert f"over {len(check.after_random)} random draws" in sentence
        low, high = f"{min(check.after_random):.0%}", f"{max(check.after_random):.0%}"
        assert (f"between {low} and {high}" if low != high else f"every draw {low}") in sentence
        lowers = f"marks most lowers it to {check.after_map:.0%}" in sentence
        assert lowers == (round(100 * check.after_map) < round(100 * check.confidence))


def test_a_noisy_baseline_asks_for_a_clearer_difference():
    calm = HidingCheck(0, 0.2, 0.9, 0.5, np.full(8, 0.6) + np.linspace(-0.01, 0.01, 8))
    noisy = HidingCheck(0, 0.2, 0.9, 0.5, 0.6 + np.array([-0.4, 0.4] * 4))
    assert calm.verdict == "better" and calm.needed == MARGIN
    assert noisy.needed > 0.2 and noisy.verdict == "chance"


# ---------------------------------------------------------------------------------------------
# The class activation map is Grad-CAM
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_net():
    torch.manual_seed(0)
    return create_model("efficientnet_lite0", "linear", 7, pretrained=False, frozen_stages=0, input_size=160).eval()


def test_the_onnx_class_map_is_the_last_layers_grad_cam(small_net, tmp_path):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    pre = Preprocess(160)
    path = export_onnx(small_net, tmp_path / "net.onnx", 160)
    rng = np.random.default_rng(0)
    views = rng.integers(0, 255, (3, 160, 160, 3), dtype=np.uint8)
    add_class_map_output(path, pre.normalize_array(views.transpose(0, 3, 1, 2)))
    session = OnnxSession(path)
    for view, target in zip(views, (0, 3, 6)):
        ours = class_activation_map(session, view, pre, target).heatmap
        x = torch.from_numpy(pre.normalize_array(view.transpose(2, 0, 1))[None])
        with torch.enable_grad(), GradCAM(model=small_net, target_layers=[small_net.stages[-1]]) as cam:
            theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0]
        assert np.ptp(theirs) > 0, "a map with something to compare (5 × 5 cells)"
        np.testing.assert_allclose(ours, theirs, atol=2e-3)


# ---------------------------------------------------------------------------------------------
# ONNX twins answer as their torch models
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def twinned(trained_artifacts, tmp_path_factory):
    """A copy of the tiny trained artifacts with ONNX twins of levels 1-3 exported and checked."""
    from flowers_core.shipped import manifest as art
    from flowers_core.training.onnx_twins import check, export_twin

    root = tmp_path_factory.mktemp("twins") / "artifacts"
    shutil.copytree(trained_artifacts, root)
    for name in ("level1", "level2", "level3"):
        export_twin(name, root=root)
        pre = Preprocess.from_dict(art.model_entry(name, root=root).preprocess)
        batch = torch.from_numpy(pre.normalize_array(
            np.random.default_rng(0).integers(0, 255, (16, 3, pre.input_size, pre.input_size), dtype=np.uint8)))
        record = check(name, [batch], root=root, part="synthetic")
        assert record["check"]["n"] == 16 and record["file_bytes"] > 0
    return root


def test_a_twin_and_the_ensemble_on_twins_answer_as_torch(twinned, synthetic_root):
    from PIL import Image

    from flowers_core.open_model import open_predictor

    photos = sorted((synthetic_root / "flowers-102" / "jpg").glob("*.jpg"))[:6]
    images = [Image.open(p).convert("RGB") for p in photos]
    for name in ("level1", "ensemble"):
        on_torch = open_predictor(name, root=twinned, runtime="torch", gate=None, localise=False)
        on_onnx = open_predictor(name, root=twinned, runtime="onnx", gate=None, localise=False)
        assert on_torch.runtime == "torch" and on_onnx.runtime == "onnxruntime"
        a, b = on_torch.predict_many(images), on_onnx.predict_many(images)
        np.testing.assert_allclose([p.probs for p in a], [p.probs for p in b], atol=2e-3)
        assert [p.verdict for p in a] == [p.verdict for p in b]


def test_a_twin_of_another_model_is_refused(twinned, tmp_path):
    from flowers_core.serve.predictor import onnx_twin_backend
    from flowers_core.shipped import manifest as art

    entry = art.model_entry("level1", root=twinned)
    entry.onnx = {**entry.onnx, "file_bytes": entry.onnx["file_bytes"] + 1}
    with pytest.raises(ValueError, match="train.onnx_twins"):
        onnx_twin_backend(entry, root=twinned)


# ---------------------------------------------------------------------------------------------
# Caches bounded in bytes, memory given back
# ---------------------------------------------------------------------------------------------
def test_the_cache_is_bounded_in_bytes():
    cache = BoundedCache(max_bytes=10_000)
    for i in range(20):
        cache.put(i, np.zeros(1000, np.uint8))
    assert cache.bytes <= 10_000 and len(cache) < 20 and 19 in cache and 0 not in cache
    assert cache.hit(19) is not None and cache.hit(0) is None


def test_memory_is_given_back_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim and mallopt are glibc's")
    assert limit_arenas(2) is True
    assert isinstance(give_back(), bool)
