"""Why A and not B: where a model looked for the species it should have named and for the one it chose, on
every test photo the app's model got wrong. Built once from the dataset (``python -m train.gallery
--mistakes``, ``explain.mistake_maps``), read by the Confusions page without torch and without the dataset.

What ships is the maps, not the photos: one ``MAP_SIZE``² uint8 heatmap per class per mistake (a few KB in
all), drawn at run time over the 64 px test thumbnail the Confusions page already ships
(``shipped.paths.THUMBS``). That thumbnail is the square the model's centre crop is cut from
(``serve.preprocess.square_resize`` at a smaller size), so cutting the same central share of it lines the map up
with what the model saw, and no test-photo pixels are added to the app.

The maps are the Explain page's Grad-CAM of the fp32 twin of the app's model (the INT8 file runs in
onnxruntime, which has no gradients); the probabilities shown are the app's model's own, from its saved test
results, with the explained model's beside them in the pack."""
from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..shipped import manifest as art
from ..shipped.paths import MISTAKE_MAPS, MISTAKE_MAPS_COMMAND
from ..shipped.splits import SHIPPED_PROTOCOL
from .preprocess import CROP_PCT

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


class MistakeMaps:
    """The shipped pack (``available`` False when absent or unreadable: the page then says how to make it)."""

    def __init__(self, root=None, protocol: str = SHIPPED_PROTOCOL):
        self.path = art.artifacts_dir(root) / MISTAKE_MAPS.format(protocol=protocol)
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
                f"`{MISTAKE_MAPS_COMMAND}`.")

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
