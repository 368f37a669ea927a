"""The localisation stage on synthetic maps and a tiny INT8 file: boxes, the combine rules, the class maps."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from flowers_core.serve.localise import (
    CLASS_MAPS_OUTPUT,
    Box,
    LocaliseRule,
    combine_views,
    hot_regions,
    localise,
    square_box,
    view_region,
)
from flowers_core.serve.runtime import OnnxSession
from flowers_core.training.localise_fit import choose, record_test
from flowers_core.training.onnx_edits import add_class_map_output
from flowers_core.training.quantise import export_onnx, quantise_onnx_static, u8s8_pair_bound

SIZE, RESIZE = 260, 297  # the shipped models' view: a 260 px centre crop of a 297 px square


def blob(shape=(9, 9), centre=(2, 6), radius=1.0, height=1.0):
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return height * np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (2 * radius ** 2))


def test_a_hot_region_is_found_where_the_map_is_hot():
    regions = hot_regions(blob(), 0.5)
    assert len(regions) == 1
    r0, c0, r1, c1 = regions[0][1]
    assert r0 <= 2 < r1 and c0 <= 6 < c1 and (r1 - r0, c1 - c0) == (3, 3)


def test_several_blooms_come_largest_evidence_first():
    cam = blob(centre=(1, 1), radius=0.6) + blob(centre=(6, 6), radius=1.5)
    regions = hot_regions(cam, 0.4)
    assert len(regions) == 2
    assert regions[0][0] > regions[1][0]
    r0, c0, r1, c1 = regions[0][1]
    assert r0 <= 6 < r1 and c0 <= 6 < c1  # the wider bloom first


def test_a_flat_map_is_the_whole_view():
    assert hot_regions(np.zeros((9, 9)), 0.5) == [(81.0, (0, 0, 9, 9))]


def test_the_view_region_is_the_centre_crop_of_the_shorter_side():
    left, top, side = view_region((600, 400), SIZE, RESIZE)
    assert side == pytest.approx(400 * SIZE / RESIZE)
    assert left == pytest.approx((600 - side) / 2) and top == pytest.approx((400 - side) / 2)


def test_the_box_is_square_with_its_margin_and_minimum_side():
    rule = LocaliseRule(margin=0.25, min_side=0.1)
    box, share = square_box((3, 3, 5, 6), (9, 9), (900, 900), SIZE, RESIZE, rule)
    cell = 900 * SIZE / RESIZE / 9
    assert box.width == box.height == round(3 * cell * 1.5)  # the longer side (3 cells) plus 25% on each side
    assert share == pytest.approx(3 * 1.5 / 9)
    left, top, _ = view_region((900, 900), SIZE, RESIZE)
    assert (box.left + box.right) / 2 == pytest.approx(left + 4.5 * cell, abs=1)  # centred on the region
    assert (box.top + box.bottom) / 2 == pytest.approx(top + 4 * cell, abs=1)
    small, share = square_box((4, 4, 5, 5), (9, 9), (900, 900), SIZE, RESIZE, LocaliseRule(margin=0, min_side=0.5))
    assert small.width == round(0.5 * 900 * SIZE / RESIZE) and share == pytest.approx(0.5)


def test_a_box_at_the_edge_moves_inside_the_photo_and_never_exceeds_it():
    rule = LocaliseRule(margin=0.5, min_side=0.3)
    for cells in [(0, 0, 1, 1), (8, 8, 9, 9), (0, 8, 2, 9)]:
        for size in [(300, 900), (900, 300), (500, 500)]:
            box, _ = square_box(cells, (9, 9), size, SIZE, RESIZE, rule)
            assert 0 <= box.left < box.right <= size[0] and 0 <= box.top < box.bottom <= size[1]
            assert box.width == box.height
    whole, _ = square_box((0, 0, 9, 9), (9, 9), (400, 300), SIZE, RESIZE, LocaliseRule(margin=1.0, min_side=0.3))
    assert whole.width == 300 and whole.top == 0  # at most the photo's shorter side


def test_a_bloom_that_fills_the_view_is_not_cropped():
    rule = LocaliseRule(threshold=0.3, margin=0.2, min_side=0.3, max_side=0.8)
    wide = localise(np.ones((9, 9)) + blob(radius=6), (500, 500), SIZE, RESIZE, rule)
    assert not wide.used
    small = localise(blob(radius=0.5), (500, 500), SIZE, RESIZE, rule)
    assert small.used and small.box.width < 500
    assert small.to_json() == {"box": list(small.box.as_tuple()), "blooms": 1, "crop_used": True}


def test_the_combine_rules():
    whole = np.array([[0.7, 0.2, 0.1], [0.4, 0.3, 0.3]])
    crop = np.array([[0.2, 0.7, 0.1], [0.05, 0.9, 0.05]])
    assert np.allclose(combine_views(whole, crop, "whole"), whole)
    assert np.allclose(combine_views(whole, crop, "crop"), crop)
    assert np.allclose(combine_views(whole, crop, "mean"), (whole + crop) / 2)
    geometric = np.sqrt(whole * crop)
    assert np.allclose(combine_views(whole, crop, "geometric"), geometric / geometric.sum(-1, keepdims=True))
    confident = combine_views(whole, crop, "confident")
    assert np.allclose(confident[1], crop[1])  # the crop is surer on the second photo
    assert np.allclose(confident[0], whole[0]) or np.allclose(confident[0], crop[0])
    for how in ("whole", "crop", "mean", "geometric", "confident"):
        assert np.allclose(combine_views(whole, crop, how).sum(-1), 1)
    with pytest.raises(ValueError):
        combine_views(whole, crop, "max")


def test_the_rule_is_checked_and_round_trips():
    rule = LocaliseRule(0.4, 0.15, 0.3, 0.6, "mean")
    assert LocaliseRule.from_dict(rule.to_dict()) == rule
    with pytest.raises(ValueError):
        LocaliseRule(combine="max")
    with pytest.raises(ValueError):
        LocaliseRule(min_side=0.9, max_side=0.5)
    assert Box(1, 2, 11, 32).width == 10 and Box(1, 2, 11, 32).height == 30


def test_the_rule_is_chosen_on_the_framed_images_without_lowering_the_plain_ones():
    whole = ("whole",)
    plain = {whole: 0.98, ("a",): 0.97, ("b",): 0.98, ("c",): 0.99}
    framed = {whole: 0.80, ("a",): 0.95, ("b",): 0.85, ("c",): 0.84}
    assert choose(plain, framed) == (("b",), True)  # "a" frames best but lowers the plain images
    assert choose({whole: 0.98, ("a",): 0.97}, {whole: 0.8, ("a",): 0.9}) == (whole, False)
    assert choose({whole: 0.98, ("a",): 0.98}, {whole: 0.8, ("a",): 0.8}) == (("a",), False)  # no gain: not shipped


class TinyNet(nn.Module):
    """Conv trunk -> global average pooling -> linear head: the student's shape, tiny."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 1), nn.ReLU6())
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


def tiny_int8(folder):
    torch.manual_seed(0)
    calib = torch.randn(32, 3, 32, 32)
    fp32 = export_onnx(TinyNet().eval(), folder / "fp32.onnx", 32)
    return quantise_onnx_static(fp32, folder / "int8.onnx", calib, reduce_range=True, saturation_free_8bit=True)


def test_the_class_maps_output_leaves_the_int8_file_unchanged(tmp_path):
    path = tiny_int8(tmp_path)
    bound = u8s8_pair_bound(path)
    x = np.random.default_rng(1).normal(0, 1, (6, 3, 32, 32)).astype(np.float32)
    before = OnnxSession(path, threads=1)(x)
    add_class_map_output(path, x[:2])
    session = OnnxSession(path, threads=1)
    assert session.output_names == ["logits", CLASS_MAPS_OUTPUT]
    out = session.outputs(x)
    assert np.array_equal(out["logits"], before)
    assert out[CLASS_MAPS_OUTPUT].shape == (6, 5, 8, 8)
    assert u8s8_pair_bound(path) == bound  # the INT8 weights are the same
    # the maps' spatial mean is the logits without the bias (up to the INT8 rounding of the pooled features)
    gap = out["logits"] - out[CLASS_MAPS_OUTPUT].mean((2, 3))
    assert np.allclose(gap, gap.mean(0), atol=0.1 * np.abs(out["logits"]).max())
    add_class_map_output(path, x[:2])  # idempotent
    assert OnnxSession(path, threads=1).output_names == ["logits", CLASS_MAPS_OUTPUT]


def test_the_where_i_looked_picture_shows_the_crop():
    from PIL import Image

    from flowers_core.serve.localise import LOOKED_COLOUR, Localisation, draw_looked
    from flowers_core.serve.words import where_looked_caption

    img = Image.new("RGB", (1000, 800), (0, 80, 0))
    place = Localisation(Box(100, 200, 500, 600), [Box(100, 200, 500, 600), Box(700, 100, 900, 300)])
    picture = np.asarray(draw_looked(img, place, side=500))
    assert picture.shape == (400, 500, 3)  # at most 500 px on the longer side, the photo's shape kept
    assert tuple(picture[100, 50]) == LOOKED_COLOUR  # the crop's left edge, scaled by a half
    assert tuple(picture[150, 175]) == (0, 80, 0)  # inside the crop: the photo
    assert tuple(picture[50, 350]) == (255, 255, 255)  # the other bloom's box
    unused = np.asarray(draw_looked(img, Localisation(place.box, place.blooms[:1], used=False), side=500))
    assert (unused == (0, 80, 0)).all()  # the whole photo answered: no square
    assert "2 flowers" in where_looked_caption(2, True) and "whole photo" in where_looked_caption(1, False)


def tiny_predictor(path, rule):
    """A ``Predictor`` around the tiny INT8 file, without a manifest (no gate, no novelty check)."""
    from flowers_core.serve.predictor import OnnxBackend, Predictor
    from flowers_core.serve.preprocess import Preprocess

    p = Predictor.__new__(Predictor)
    p.name, p.classes, p.backend = "tiny", [f"class {i}" for i in range(5)], OnnxBackend(OnnxSession(path, threads=1))
    p.preprocess, p.temperature, p.threshold, p.gate = Preprocess(32), 1.0, None, None
    p.locator, p.localise_rule = p.backend.session, rule
    return p


def test_the_predictor_classifies_the_crop_and_keeps_the_whole_photo_answer(tmp_path):
    from PIL import Image

    path = tiny_int8(tmp_path)
    add_class_map_output(path, np.zeros((1, 3, 32, 32), np.float32))
    rng = np.random.default_rng(0)
    photos = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in [(120, 90), (64, 200)]]
    plain = tiny_predictor(path, None).predict_many(photos)
    crop_only = tiny_predictor(path, LocaliseRule(threshold=0.9, margin=0.1, min_side=0.3, max_side=1.0, combine="crop"))
    localised = crop_only.predict_many(photos)
    for before, after, photo in zip(plain, localised, photos):
        assert after.localisation.used and after.localisation.blooms[0] == after.localisation.box
        box = after.localisation.box
        assert box.width == box.height and 0 <= box.left and box.right <= photo.width and box.bottom <= photo.height
        assert np.allclose(after.whole_photo.probs, before.probs)  # the whole photo's answer, from the same pass
        alone = tiny_predictor(path, None).predict(photo.crop(box.as_tuple()))
        assert np.allclose(after.probs, alone.probs, atol=1e-6)  # "crop": the crop's answer
        assert after.to_json()["localisation"]["crop_used"] is True
    whole = tiny_predictor(path, LocaliseRule(combine="whole")).predict_many(photos)
    assert all(np.allclose(w.probs, b.probs) for w, b in zip(whole, plain))


def test_the_rule_ships_for_the_models_whose_test_split_it_keeps(tmp_path):
    from flowers_core.serve.predictor import localise_rule

    rule = LocaliseRule(0.6, 0.15, 0.5, 1.0, "confident")
    art_update = {"localise": {"rule": rule.to_dict(), "shipped": True, "models": [], "test_top1": {}}}
    (tmp_path / "manifest.json").write_text(json.dumps(art_update))
    assert localise_rule(tmp_path, None, "a") is None  # not scored on test yet
    assert localise_rule(tmp_path, True, "a") == rule  # asked for
    record_test({"a": {"localised": 0.983, "whole": 0.984}}, tmp_path)
    section = record_test({"b": {"localised": 0.97, "whole": 0.98}}, tmp_path)  # a's score is kept
    assert section["models"] == ["a"] and set(section["test_top1"]) == {"a", "b"}
    assert localise_rule(tmp_path, None, "a") == rule and localise_rule(tmp_path, None, "b") is None
    assert localise_rule(tmp_path, False, "a") is None


def test_test_scores_need_a_recorded_rule(tmp_path):
    """`train.localise --score-test` before `train.localise`: stop, rather than write a section without a rule
    (which the app could not read)."""
    with pytest.raises(SystemExit, match="train.localise"):
        record_test({"student_int8": {"localised": 0.9, "whole": 0.9}}, tmp_path)
    assert not (tmp_path / "manifest.json").exists()  # nothing written
