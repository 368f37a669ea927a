"""The faithfulness score and the sanity check on a tiny model whose answer depends only on a known patch.

The model sees "redness" (red minus the other channels) through a 1×1 convolution and calls a photo class 1
the more red it holds; the photos are grey texture with one red patch, so the patch alone decides the answer."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from flowers_core.explain import faithfulness
from flowers_core.explain import maps as explain
from flowers_core.serve.preprocess import Preprocess
from flowers_core.training.models import LinearHead

SIZE = 32
PATCH = (slice(4, 16), slice(18, 30))  # 12 × 12 of 32 × 32: 14% of the photo


class PatchNet(nn.Module):
    """What ``explain.gradcam`` and ``faithfulness`` need of a FlowerNet: stages, head, preprocess."""

    def __init__(self):
        super().__init__()
        self.preprocess = Preprocess(input_size=SIZE)
        conv = nn.Conv2d(3, 2, kernel_size=1)
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight[0, :, 0, 0] = torch.tensor([2.0, -1.0, -1.0])  # redness
            conv.bias.copy_(torch.tensor([0.0, 1.0]))  # channel 1: a constant, carries no information
        self.stages = nn.Sequential(nn.Sequential(conv, nn.ReLU()))
        self.frozen_stages = 0
        self.head = LinearHead(2, 2, dropout=0.0)
        with torch.no_grad():
            self.head.fc.weight.copy_(torch.tensor([[0.0, 0.0], [60.0, 0.0]]))
            self.head.fc.bias.copy_(torch.tensor([0.0, -3.0]))

    def feature_map(self, x):
        return self.stages(x)

    def forward(self, x):
        return self.head(self.stages(x))


def patch_photo(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    view = np.clip(120 + rng.normal(0, 20, (SIZE, SIZE, 1)), 0, 255).repeat(3, axis=2)
    view[PATCH] = (220, 40, 50)
    return view.astype(np.uint8)


def patch_map() -> np.ndarray:
    heat = np.zeros((SIZE, SIZE), np.float32)
    heat[PATCH] = 1.0
    return heat


@pytest.fixture(scope="module")
def model():
    return PatchNet().eval()


def test_the_model_answers_from_the_patch(model):
    view = patch_photo()
    target = 1
    x = faithfulness.view_tensor(model, view)
    assert faithfulness.confidences(model, x, target)[0] > 0.9
    no_patch = view.copy()
    no_patch[PATCH] = 120
    assert faithfulness.confidences(model, faithfulness.view_tensor(model, no_patch), target)[0] < 0.2


def test_hidden_views_hide_the_share_asked_for(model):
    view = patch_photo()
    x = faithfulness.view_tensor(model, view)
    heat = faithfulness.random_map(SIZE, 4, seed=3)
    hidden = faithfulness.hidden_views(x, heat, shares=(0.1, 0.5))
    assert hidden.shape == (4, 3, SIZE, SIZE)
    changed = (hidden - x).abs().amax(1).gt(1e-6).float().mean((1, 2))
    np.testing.assert_allclose(changed.numpy(), [0.1, 0.5, 0.1, 0.5], atol=0.02)


def test_lime_like_ties_still_hide_the_share_asked_for(model):
    """A map that is 0 almost everywhere: without the jitter the library's threshold would hide nothing or all."""
    x = faithfulness.view_tensor(model, patch_photo())
    heat = np.zeros((SIZE, SIZE), np.float32)
    heat[:3, :3] = 1.0
    changed = (faithfulness.hidden_views(x, heat, shares=(0.2,)) - x).abs().amax(1).gt(1e-6).float().mean((1, 2))
    np.testing.assert_allclose(changed.numpy(), [0.2, 0.2], atol=0.02)


@pytest.mark.parametrize("source", ["the patch itself", "Grad-CAM"])
def test_a_map_of_the_patch_beats_random_maps(model, source):
    view, heat = patch_photo(), patch_map()
    if source == "Grad-CAM":  # its map is of the crop the model saw (the photo resized, centre-cropped)
        exp = explain.gradcam(model, Image.fromarray(view), target=1)
        view, heat = exp.view, exp.heatmap
    found = faithfulness.score(model, view, heat, target=1)
    assert found.confidence > 0.9
    most_20, least_20 = found.curve.at(0.2)
    random_most_20, _ = found.random.at(0.2)
    assert most_20 < 0.2 < 0.9 < least_20  # hiding the patch kills the answer; hiding the rest keeps it
    assert random_most_20 > most_20 + 0.3
    assert found.curve.combined > found.random.combined + faithfulness.MARGIN
    assert found.verdict == "better"


def test_an_inverted_map_is_worse_than_random(model):
    """Marking everything but the patch: ROAD must say so (the test fails if the orders were swapped)."""
    found = faithfulness.score(model, patch_photo(), 1.0 - patch_map(), target=1)
    assert found.curve.combined < 0 and found.verdict == "worse"


def test_randomising_the_weights_changes_a_faithful_map(model):
    img = Image.fromarray(patch_photo())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trained = explain.gradcam(model, img, target=1).heatmap
    twin = faithfulness.randomised_copy(model, seed=0)
    assert twin.layers == ["head", "stages.0"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the shared model is untouched
    randomised = explain.gradcam(twin.model, img, target=1).heatmap
    assert faithfulness.rank_correlation(trained, trained) == pytest.approx(1.0)
    assert faithfulness.rank_correlation(trained, randomised) < 0.5


def test_a_model_free_map_survives_randomisation(model):
    """The edge map ignores the model: the check must report it unchanged (what makes it a check)."""
    view = patch_photo()
    edges = faithfulness.edge_map(view)
    assert faithfulness.rank_correlation(edges, faithfulness.edge_map(view)) == pytest.approx(1.0)
    # an empty map shares no ranking with any other: it changed completely
    assert faithfulness.rank_correlation(np.zeros((8, 8)), edges) == 0.0


def test_a_very_sure_answer_that_nothing_moves_is_said_so():
    shares = (0.1, 0.2)
    flat = faithfulness.RoadCurve(shares, np.array([0.99, 0.98]), np.array([1.0, 1.0]))
    found = faithfulness.Faithfulness(1, 1.0, flat, faithfulness.RoadCurve(shares, np.array([1.0, 1.0]),
                                                                           np.array([1.0, 1.0])))
    assert found.verdict == "unmoved"
    moved = faithfulness.RoadCurve(shares, np.array([0.9, 0.6]), np.array([1.0, 1.0]))
    assert faithfulness.Faithfulness(1, 1.0, moved, flat).verdict == "better"
