"""Find the flower in the frame, then classify a crop around it: the localisation stage.

People's photos are framed unlike Flowers-102's close-ups: the bloom small in a wide garden, a pot on a
plain background, several blooms. The INT8 student's **class activation map** (its last feature map seen
through its classifier's weights, an output of the INT8 file: ``training.onnx_edits.add_class_map_output``) shows where
the evidence for its best guess lies; the hot regions of that map are the blooms, and a square around the
strongest one (a margin, a minimum size, clipped to the photo) is classified again. The two views (the
whole photo and the crop) are combined by a rule chosen on validation images (``train.localise``), recorded
in the manifest's ``localise`` section and read here. Pure numpy + PIL: the app's Classify page runs it
without torch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

CLASS_MAPS_OUTPUT = "class_maps"  # the INT8 file's output: [B, classes, h, w] class activation maps
MAX_TEST_DROP = 0.002  # the test top-1 a model may lose to the stage and still use it (0.2 points)
LOCALISE_CMD = "python -m train.localise"
COMBINES = ("whole", "crop", "mean", "geometric", "confident")


@dataclass(frozen=True)
class LocaliseRule:
    """How a crop is found and used (the manifest's ``localise`` section; the defaults are what it records
    when nothing was chosen yet).

    ``threshold``: a map cell belongs to a bloom when it reaches this share of the map's range above its
    minimum. ``margin``: added on each side of a bloom's box, as a share of its side. ``min_side``: the crop's
    side is at least this share of the region the model saw. ``max_side``: a crop this large (as a share of
    that region) would show the model what it already saw, so the whole photo answers alone. ``combine``:
    how the two views' probabilities become one (``combine_views``)."""

    threshold: float = 0.5
    margin: float = 0.25
    min_side: float = 0.3
    max_side: float = 0.8
    combine: str = "geometric"

    def __post_init__(self):
        if self.combine not in COMBINES:
            raise ValueError(f"unknown combine rule {self.combine!r}; one of {COMBINES}")
        if not (0 < self.min_side <= self.max_side <= 1 and 0 <= self.threshold < 1 and self.margin >= 0):
            raise ValueError(f"inconsistent localisation rule {self}")

    @classmethod
    def from_dict(cls, d: dict) -> "LocaliseRule":
        return cls(**{k: d[k] for k in asdict(cls()) if k in d})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Box:
    """A rectangle in an image's pixels: ``left, top`` included, ``right, bottom`` excluded (PIL's crop box)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.left, self.top, self.right, self.bottom


@dataclass
class Localisation:
    """Where the model looked: the crop it classified again (``box``), the boxes of every bloom found, largest
    evidence first (``blooms``; the crop is around ``blooms[0]``), and whether the crop's view was used
    (False when the bloom fills the view, so the whole photo answered alone)."""

    box: Box
    blooms: list[Box] = field(default_factory=list)
    used: bool = True

    def to_json(self) -> dict:
        return {"box": list(self.box.as_tuple()), "blooms": len(self.blooms), "crop_used": self.used}


def view_region(size: tuple[int, int], input_size: int, resize_size: int) -> tuple[float, float, float]:
    """``(left, top, side)`` in the photo's pixels of the square a model sees (``preprocess.Preprocess``: the
    shorter side resized to ``resize_size``, the centre ``input_size`` square of it)."""
    w, h = size
    side = min(w, h) * input_size / resize_size
    return (w - side) / 2, (h - side) / 2, side


def hot_regions(cam: np.ndarray, threshold: float) -> list[tuple[float, tuple[int, int, int, int]]]:
    """The connected regions (8-neighbours) of a 2-D map whose cells reach ``threshold`` of its range above its
    minimum: ``(evidence, (row0, col0, row1, col1))`` each, cells ``row0 <= r < row1``, largest evidence (the
    sum of the region's normalised values) first. A flat map is one region, the whole map."""
    cam = np.asarray(cam, dtype=np.float64)
    lo, hi = float(cam.min()), float(cam.max())
    if not np.isfinite(hi - lo) or hi - lo <= 1e-12:
        return [(float(cam.size), (0, 0, cam.shape[0], cam.shape[1]))]
    norm = (cam - lo) / (hi - lo)
    labels, n = ndimage.label(norm >= threshold, structure=np.ones((3, 3)))
    regions = []
    for index, where in enumerate(ndimage.find_objects(labels), start=1):
        rows, cols = where
        regions.append((float(norm[labels == index].sum()), (rows.start, cols.start, rows.stop, cols.stop)))
    return sorted(regions, key=lambda r: -r[0])


def square_box(cells: tuple[int, int, int, int], map_shape: tuple[int, int], size: tuple[int, int],
               input_size: int, resize_size: int, rule: LocaliseRule) -> tuple[Box, float]:
    """The square crop, in the photo's pixels, around a region of map ``cells`` (``hot_regions``): the region's
    box in the viewed square, grown by ``rule.margin`` on each side, made square, at least ``rule.min_side``
    of the viewed square, moved inside the photo where it would cross an edge (and cut to the photo's
    shorter side at most). Also its side as a share of the viewed square."""
    w, h = size
    left, top, side = view_region(size, input_size, resize_size)
    rows, cols = map_shape
    r0, c0, r1, c1 = cells
    x0, x1 = left + c0 * side / cols, left + c1 * side / cols
    y0, y1 = top + r0 * side / rows, top + r1 * side / rows
    crop = max(x1 - x0, y1 - y0) * (1 + 2 * rule.margin)
    crop = min(max(crop, rule.min_side * side), min(w, h))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    bx = min(max(cx - crop / 2, 0.0), w - crop)
    by = min(max(cy - crop / 2, 0.0), h - crop)
    n = max(1, int(round(crop)))
    bx, by = int(round(bx)), int(round(by))
    bx, by = min(bx, w - n), min(by, h - n)
    return Box(bx, by, bx + n, by + n), crop / side


def localise(cam: np.ndarray, size: tuple[int, int], input_size: int, resize_size: int,
             rule: LocaliseRule) -> Localisation:
    """The crop around the bloom with the most evidence in a class activation map ``cam`` ([h, w], of the view
    of a photo of ``size``), and the boxes of every bloom found."""
    regions = hot_regions(cam, rule.threshold)
    boxes = [square_box(cells, cam.shape, size, input_size, resize_size, rule) for _, cells in regions]
    box, share = boxes[0]
    return Localisation(box, [b for b, _ in boxes], used=share < rule.max_side)


def combine_views(whole: np.ndarray, crop: np.ndarray, how: str) -> np.ndarray:
    """One distribution from the whole photo's and the crop's probabilities (rows): ``whole`` or ``crop`` alone,
    their ``mean``, their normalised ``geometric`` mean (a species must fit both views), or the ``confident``
    view (lower entropy) of each row."""
    whole, crop = np.asarray(whole, dtype=np.float64), np.asarray(crop, dtype=np.float64)
    if how == "whole":
        out = whole
    elif how == "crop":
        out = crop
    elif how == "mean":
        out = (whole + crop) / 2
    elif how == "geometric":
        logp = (np.log(np.clip(whole, 1e-12, None)) + np.log(np.clip(crop, 1e-12, None))) / 2
        out = np.exp(logp - logp.max(-1, keepdims=True))
    elif how == "confident":
        def entropy(p):
            return -(p * np.log(np.clip(p, 1e-12, None))).sum(-1, keepdims=True)
        out = np.where(entropy(crop) < entropy(whole), crop, whole)
    else:
        raise ValueError(f"unknown combine rule {how!r}; one of {COMBINES}")
    return (out / out.sum(-1, keepdims=True)).astype(np.float32)


def combine_typicality(whole: np.ndarray, crop: np.ndarray, how: str) -> np.ndarray:
    """The novelty check's score of the combined answer: the one view's for the rules ``whole`` and ``crop``,
    else the mean of the two views' (``combine_views``'s rules)."""
    whole, crop = np.asarray(whole, dtype=np.float64), np.asarray(crop, dtype=np.float64)
    return {"whole": whole, "crop": crop}.get(how, (whole + crop) / 2)


def combine_stage(whole_probs: np.ndarray, whole_typicality: np.ndarray | None, crop_probs: np.ndarray,
                  crop_typicality: np.ndarray | None, used, how: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The stage's answers for a batch: the whole photos' probabilities and typicality (None: no novelty check), with
    the rows ``used`` (a mask or indices; the crop arrays hold those rows only) combined with their crop's
    (``combine_views``, ``combine_typicality``). New arrays; the inputs are left as they are."""
    probs = np.array(whole_probs, copy=True)
    probs[used] = combine_views(probs[used], crop_probs, how)
    if whole_typicality is None:
        return probs, None
    typical = np.array(whole_typicality, dtype=np.float64, copy=True)
    typical[used] = combine_typicality(typical[used], crop_typicality, how)
    return probs, typical


LOOKED_COLOUR, OTHER_BLOOM_COLOUR = (255, 200, 0), (255, 255, 255)


def draw_looked(img: Image.Image, place: Localisation, side: int = 480) -> Image.Image:
    """A copy of the photo at most ``side`` px on its longer side with the crop that was classified drawn on it
    (a thick yellow square) and the other blooms found (thin white squares): the "where I looked" picture."""
    scale = min(1.0, side / max(img.size))
    small = img.convert("RGB").resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                                      Image.BILINEAR)
    draw = ImageDraw.Draw(small)
    line = max(2, round(min(small.size) / 60))

    def scaled(box: Box) -> list[int]:
        return [round(v * scale) for v in box.as_tuple()]

    for bloom in place.blooms[1:]:
        draw.rectangle(scaled(bloom), outline=OTHER_BLOOM_COLOUR, width=max(1, line // 2))
    if place.used:
        draw.rectangle(scaled(place.box), outline=LOOKED_COLOUR, width=line)
    return small

