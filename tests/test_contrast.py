"""Why A and not B: the maps of every mistake, built from saved results, read back without torch, drawn in place."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from flowers_core.explain import mistake_maps
from flowers_core.serve import mistakes
from flowers_core.shipped.paths import MISTAKE_MAPS, MISTAKE_MAPS_COMMAND


def _probs(rows: list[tuple[int, int, float]], n_classes: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Saved results: one row per (true class, predicted class, confidence in the predicted one)."""
    probs = np.full((len(rows), n_classes), 0.0, np.float32)
    labels = np.zeros(len(rows), np.int64)
    for i, (true, predicted, confidence) in enumerate(rows):
        rest = (1 - confidence) / (n_classes - 1)
        probs[i] = rest
        probs[i, predicted] = confidence
        labels[i] = true
    return probs, labels


def _explain_by_quadrant(photo, class_id):
    """A model that looks at quadrant ``class_id % 4`` for each class (a map we can check after the round trip)."""
    heat = np.zeros((64, 64), np.float32)
    r, c = divmod(class_id % 4, 2)
    heat[32 * r:32 * r + 32, 32 * c:32 * c + 32] = 1
    p = np.full(6, 0.1, np.float32)
    p[class_id] = 0.5
    return heat, p


def test_mistakes_are_grouped_by_pair_most_frequent_first():
    probs, labels = _probs([(0, 0, 0.9), (1, 2, 0.6), (3, 4, 0.95), (1, 2, 0.8), (5, 5, 0.7), (2, 1, 0.7)])
    assert mistake_maps.order_mistakes(probs, labels) == [3, 1, 2, 5], "the pair seen twice first, its surest mistake first"


def test_pack_round_trip_keeps_maps_and_probabilities(tmp_path):
    probs, labels = _probs([(0, 1, 0.7), (2, 3, 0.9), (3, 3, 0.9)])
    ids = np.array([11, 12, 13])
    loaded = []
    summary = mistake_maps.build_mistake_maps(
        probs, ids, labels, lambda i: loaded.append(i) or Image.new("RGB", (8, 8)), _explain_by_quadrant,
        tmp_path / "maps.npz", {"app_model": "m"})
    assert loaded == [12, 11], "only the wrong photos are read, in the page's order"
    assert summary["mistakes"] == 2 and summary["pairs"] == 2 and summary["bytes"] == (tmp_path / "maps.npz").stat().st_size

    (tmp_path / "thumbs").mkdir()
    (tmp_path / "maps.npz").rename(tmp_path / MISTAKE_MAPS.format(protocol="stratified"))
    pack = mistakes.MistakeMaps(tmp_path)
    assert pack.available and pack.summary["app_model"] == "m"
    first = pack.mistakes[0]
    assert (first.image_id, first.true_id, first.predicted_id) == (12, 2, 3)
    assert np.isclose(first.p_predicted, 0.9) and np.isclose(first.p_true, 0.1 / 5)
    assert np.isclose(first.explained_p_true, 0.5) and np.isclose(first.explained_p_predicted, 0.1)
    # class 2 is the bottom-left quadrant, class 3 the bottom-right: the stored maps say so
    half = mistakes.MAP_SIZE // 2
    assert first.map_true[half:, :half].min() == 255 and first.map_true[:half].max() == 0
    assert first.map_predicted[half:, half:].min() == 255 and first.map_predicted[:, :half].max() == 0
    assert [(t, p, len(ms)) for t, p, ms in pack.pairs()] == [(2, 3, 1), (0, 1, 1)]


def test_a_missing_or_damaged_pack_is_no_section(tmp_path):
    pack = mistakes.MistakeMaps(tmp_path)
    assert not pack.available and MISTAKE_MAPS_COMMAND in pack.missing_message
    path = tmp_path / MISTAKE_MAPS.format(protocol="stratified")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a pack")
    assert not mistakes.MistakeMaps(tmp_path).available


def test_overlay_lines_the_map_up_with_the_models_view_of_the_thumbnail():
    """The thumbnail is the square the model's crop is cut from: its border is left out, as the model leaves it."""
    square = np.zeros((64, 64, 3), np.uint8)
    square[:4] = 255  # a white band in the margin the centre crop drops
    buf = io.BytesIO()
    Image.fromarray(square).save(buf, "PNG")
    view = mistakes.model_view_of_thumb(buf.getvalue(), 64)
    assert view.shape == (64, 64, 3) and view.max() < 60, "the margin is outside the model's view"

    heat = np.zeros((mistakes.MAP_SIZE, mistakes.MAP_SIZE), np.uint8)
    heat[:, mistakes.MAP_SIZE // 2:] = 255  # right half marked
    over = mistakes.map_overlay(buf.getvalue(), heat, size=80)
    assert over.shape == (80, 80, 3)
    assert over[:, 70:, 0].mean() > over[:, 70:, 2].mean() + 40, "red where the map is high"
    assert over[:, :10, 2].mean() > over[:, :10, 0].mean() + 40, "blue where it is low"
    assert mistakes.map_overlay(None, heat, size=40).shape == (40, 40, 3)


def test_colours_are_the_explain_pages():
    """The numpy colour map matches OpenCV's JET, which the Explain page uses (within rounding)."""
    import cv2

    ramp = np.linspace(0, 1, 256, dtype=np.float32)[None]
    theirs = cv2.cvtColor(cv2.applyColorMap(np.uint8(255 * ramp), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    assert np.abs(mistakes.jet(ramp).astype(int) - theirs.astype(int)).max() <= 8
