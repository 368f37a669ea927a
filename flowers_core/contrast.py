"""Why A and not B: where a model looked for the species it should have named and for the one it chose, on
every test photo the app's model got wrong. Built once from the dataset (``python -m train.gallery
--mistakes``), read by the Confusions page without torch and without the dataset.

What ships is the maps, not the photos: one ``MAP_SIZE``² uint8 heatmap per class per mistake (a few KB in
all), drawn at run time over the 64 px test thumbnail the Confusions page already ships
(``gallery.THUMBS_REL``). That thumbnail is the square the model's centre crop is cut from
(``preprocess.square_resize`` at a smaller size), so cutting the same central share of it lines the map up
with what the model saw, and no test-photo pixels are added to the app.

The maps are the Explain page's Grad-CAM of the fp32 twin of the app's model (the INT8 file runs in
onnxruntime, which has no gradients); the probabilities shown are the app's model's own, from its saved test
results, with the explained model's beside them in the pack.
"""
from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import artifacts as art
from .data import SHIPPED_PROTOCOL
from .preprocess import CROP_PCT

MISTAKES_REL = "thumbs/{protocol}_mistake_maps.npz"
MISTAKES_COMMAND = "python -m train.gallery --mistakes"
MAP_SIZE = 32  # the student's class map is 9×9 cells at 260 px: 32² keeps its shape, not more detail than it has


@dataclass(frozen=True)
class Mistake:
    """One test photo the app's model got wrong, with its two maps (uint8 [MAP_SIZE, MAP_SIZE], 255 = most)."""

    image_id: int
    true_id: int
    predicted_id: int
    p_true: float  # the app's model's probability of the species the photo shows
    p_predicted: float  # ... and of the species it chose
    map_true: np.ndarray
    map_predicted: np.ndarray
    explained_p_true: float  # the explained (fp32) model's probabilities, for the record
    explained_p_predicted: float


def order_mistakes(probs: np.ndarray, labels: np.ndarray) -> list[int]:
    """Indices of the wrong rows, grouped by (true, predicted) pair: the most frequent pair first, pairs of
    equal count by their most confident mistake, and the most confident mistake first within a pair."""
    predicted = probs.argmax(-1)
    wrong = np.nonzero(predicted != labels)[0]
    pairs = list(zip(labels[wrong].tolist(), predicted[wrong].tolist()))
    confidence = probs[wrong, predicted[wrong]].tolist()
    counts = Counter(pairs)
    best = {}  # a pair's most confident mistake orders pairs of equal count
    for pair, c in zip(pairs, confidence):
        best[pair] = max(best.get(pair, 0.0), c)
    order = sorted(range(len(wrong)), key=lambda k: (-counts[pairs[k]], -best[pairs[k]], pairs[k], -confidence[k]))
    return [int(wrong[k]) for k in order]


def shrink_map(heat: np.ndarray, size: int = MAP_SIZE) -> np.ndarray:
    """A [H, W] heatmap in [0, 1] -> uint8 [size, size] (area average: no cell lost)."""
    heat = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32)), 0, 1)
    small = Image.fromarray(heat, mode="F").resize((size, size), Image.BOX)
    return np.clip(np.round(np.asarray(small) * 255), 0, 255).astype(np.uint8)


def build_mistake_maps(probs: np.ndarray, image_ids: np.ndarray, labels: np.ndarray,
                       load_photo: Callable[[int], Image.Image],
                       explain_class: Callable[[Image.Image, int], tuple[np.ndarray, np.ndarray]],
                       out_path, details: dict | None = None) -> dict:
    """Write the maps of every mistake in ``probs`` (the app's model's saved test results) to ``out_path``.

    ``load_photo(image_id)`` gives the photo; ``explain_class(photo, class_id)`` gives (heatmap [H, W] in
    [0, 1] of that class, the explained model's probabilities [classes]). Returns the pack's summary."""
    rows = order_mistakes(probs, labels)
    predicted = probs.argmax(-1)
    maps_true, maps_predicted, explained = [], [], []
    for i in rows:
        photo = load_photo(int(image_ids[i]))
        heat_true, p = explain_class(photo, int(labels[i]))
        heat_predicted, _ = explain_class(photo, int(predicted[i]))
        maps_true.append(shrink_map(heat_true))
        maps_predicted.append(shrink_map(heat_predicted))
        explained.append((float(p[labels[i]]), float(p[predicted[i]])))
    rows = np.asarray(rows, dtype=np.int64)
    n_pairs = len({(int(labels[i]), int(predicted[i])) for i in rows})
    summary = {"mistakes": len(rows), "pairs": n_pairs, "map_size": MAP_SIZE, "command": MISTAKES_COMMAND,
               **(details or {})}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    empty = np.zeros((0, MAP_SIZE, MAP_SIZE), np.uint8)
    np.savez_compressed(
        out_path, image_ids=np.asarray(image_ids)[rows].astype(np.int32),
        true_ids=np.asarray(labels)[rows].astype(np.int16), predicted_ids=predicted[rows].astype(np.int16),
        p_true=probs[rows, labels[rows]].astype(np.float32) if len(rows) else np.zeros(0, np.float32),
        p_predicted=probs[rows, predicted[rows]].astype(np.float32) if len(rows) else np.zeros(0, np.float32),
        maps_true=np.stack(maps_true) if maps_true else empty,
        maps_predicted=np.stack(maps_predicted) if maps_predicted else empty,
        explained_p=np.asarray(explained, np.float32).reshape(-1, 2), summary=json.dumps(summary))
    return {**summary, "bytes": out_path.stat().st_size}


def build(data_root=None, artifacts_root=None, protocol: str = SHIPPED_PROTOCOL, app_model: str | None = None,
          method: str = "Grad-CAM") -> dict:
    """The pack for the app's model (``catalog.PRODUCTION``), explained through its fp32 twin with ``method``,
    from its saved test results and the dataset's photos (build time: torch and the dataset)."""
    import torch  # build time only: the reader above stays torch-free

    from . import catalog, explain
    from .data import load_index
    from .inference import load_image
    from .weights import load_model

    app_model = app_model or catalog.PRODUCTION
    explained = catalog.fp32_twin(app_model) or app_model
    entry = art.model_entry(app_model, protocol, artifacts_root)
    probs, image_ids, labels = art.load_probs(entry.probs["test"], artifacts_root)
    index = load_index(data_root)
    model = load_model(explained, protocol, artifacts_root)

    def explain_class(photo: Image.Image, class_id: int):
        with torch.no_grad():
            p = torch.softmax(model(model.preprocess.from_pil(photo)).float(), -1)[0].numpy()
        return explain.gradcam(model, photo, method, class_id).heatmap, p

    out = art.artifacts_dir(artifacts_root) / MISTAKES_REL.format(protocol=protocol)
    return build_mistake_maps(probs, image_ids, labels, lambda i: load_image(index.path(i)), explain_class, out,
                              {"app_model": app_model, "explained_model": explained, "method": method,
                               "protocol": protocol, "split": "test"})


class MistakeMaps:
    """The shipped pack (``available`` False when absent or unreadable: the page then says how to make it)."""

    def __init__(self, root=None, protocol: str = SHIPPED_PROTOCOL):
        self.path = art.artifacts_dir(root) / MISTAKES_REL.format(protocol=protocol)
        self.mistakes: list[Mistake] = []
        self.summary: dict = {}
        self.bytes = 0
        if not self.path.is_file():
            return
        try:
            with np.load(self.path) as z:
                self.summary = json.loads(str(z["summary"]))
                self.mistakes = [
                    Mistake(int(i), int(t), int(p), float(pt), float(pp), mt, mp, float(e[0]), float(e[1]))
                    for i, t, p, pt, pp, mt, mp, e in zip(z["image_ids"], z["true_ids"], z["predicted_ids"],
                                                          z["p_true"], z["p_predicted"], z["maps_true"],
                                                          z["maps_predicted"], z["explained_p"])]
            self.bytes = self.path.stat().st_size
        except (OSError, KeyError, ValueError) as e:  # a damaged pack: no section, never a crash
            self.mistakes, self.summary = [], {"error": f"{type(e).__name__}: {e}"}

    @property
    def available(self) -> bool:
        return bool(self.mistakes)

    @property
    def missing_message(self) -> str:
        return (f"The maps of the mistakes are not shipped in this copy ({self.path.name}); make them with "
                f"`{MISTAKES_COMMAND}`.")

    def pairs(self) -> list[tuple[int, int, list[Mistake]]]:
        """[(true id, predicted id, its mistakes)] in the pack's order (most frequent pair first)."""
        grouped: dict[tuple[int, int], list[Mistake]] = {}
        for m in self.mistakes:
            grouped.setdefault((m.true_id, m.predicted_id), []).append(m)
        return [(t, p, ms) for (t, p), ms in grouped.items()]


def jet(heat: np.ndarray) -> np.ndarray:
    """[H, W] in [0, 1] -> uint8 RGB, blue = low, red = high (the Explain page's colours, without OpenCV)."""
    x = np.clip(np.asarray(heat, dtype=np.float32), 0, 1)[..., None]
    rgb = np.clip(1.5 - np.abs(4 * x - np.asarray([3.0, 2.0, 1.0], np.float32)), 0, 1)
    return np.round(rgb * 255).astype(np.uint8)


def model_view_of_thumb(thumb: bytes, size: int) -> np.ndarray:
    """The centre crop the model sees, cut from a square test thumbnail and resized to ``size``: uint8 RGB."""
    with Image.open(io.BytesIO(thumb)) as im:
        im = im.convert("RGB")
        side = im.width * CROP_PCT
        left = (im.width - side) / 2
        view = im.resize((size, size), Image.BICUBIC, box=(left, left, left + side, left + side))
    return np.asarray(view)


def map_overlay(thumb: bytes | None, heat: np.ndarray, size: int = 160, opacity: float = 0.5) -> np.ndarray:
    """A stored map over the model's view of the thumbnail (the map alone when there is no thumbnail)."""
    smooth = Image.fromarray(np.asarray(heat, dtype=np.uint8)).resize((size, size), Image.BILINEAR)
    colour = jet(np.asarray(smooth, dtype=np.float32) / 255).astype(np.float32)
    if thumb is None:
        return colour.astype(np.uint8)
    view = model_view_of_thumb(thumb, size).astype(np.float32)
    return np.clip((1 - opacity) * view + opacity * colour, 0, 255).astype(np.uint8)
