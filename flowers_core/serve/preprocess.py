"""The eval preprocessing, written once and torch-free: how a photo becomes a model's input.

Images enter as a uint8 square (shorter side resized to ``resize_size``, centre-cropped); the eval
view is its centre ``input_size`` crop, normalised. ``Preprocess.array_from_pil`` does it with
numpy only (what the app's Classify page and the ONNX runtime use, so they never load torch);
``from_pil`` / ``eval_view`` are the same view as torch tensors for training and evaluation.
The training presets work on the same uint8 squares (``transforms``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

CROP_PCT = 0.875


def resize_size_for(input_size: int) -> int:
    return int(round(input_size / CROP_PCT))


def square_resize(img: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (bicubic, antialiased) and centre-crop a square."""
    w, h = img.size
    scale = size / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    img = img.resize(new, Image.BICUBIC, reducing_gap=3.0)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return img.crop((left, top, left + size, top + size))


@dataclass(frozen=True)
class Preprocess:
    """Normalisation and sizes of one model family; recorded in every manifest entry."""

    input_size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @property
    def resize_size(self) -> int:
        return resize_size_for(self.input_size)

    def normalize_array(self, x: np.ndarray) -> np.ndarray:
        """uint8 [.., 3, H, W] -> float32 normalised (the same float32 operations as ``normalize``)."""
        x = x.astype(np.float32) / np.float32(255.0)
        mean = np.asarray(self.mean, dtype=np.float32).reshape(3, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(3, 1, 1)
        return (x - mean) / std

    def eval_crop(self, img: Image.Image) -> np.ndarray:
        """An RGB PIL image -> the uint8 [input_size, input_size, 3] crop a model sees (before normalising)."""
        square = np.asarray(square_resize(img, self.resize_size))
        top = int(round((self.resize_size - self.input_size) / 2.0))  # torchvision's center_crop offset
        return square[top: top + self.input_size, top: top + self.input_size]

    def array_from_pil(self, img: Image.Image) -> np.ndarray:
        """An RGB PIL image -> normalised float32 array [1, 3, input_size, input_size], numpy only."""
        return np.ascontiguousarray(self.normalize_array(self.eval_crop(img).transpose(2, 0, 1))[None])

    def to_dict(self) -> dict:
        return {"input_size": self.input_size, "resize_size": self.resize_size,
                "mean": list(self.mean), "std": list(self.std), "crop_pct": CROP_PCT}

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocess":
        """The inverse of ``to_dict`` (the derived sizes it also records are recomputed, not read)."""
        return cls(int(d["input_size"]), tuple(d["mean"]), tuple(d["std"]))
