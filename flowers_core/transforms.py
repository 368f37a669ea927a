"""Preprocessing, written once: the eval preset (shared by training, evaluation, CLI and app) and
the per-level training presets.

Images enter as a uint8 square (shorter side resized to ``resize_size``, centre-cropped); the
eval view is its centre ``input_size`` crop, normalised. Training presets work on the same uint8
squares, so decoding happens once (see ``data.decoded_images``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

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

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 [.., 3, H, W] -> float normalised."""
        x = x.float().div_(255.0)
        mean = torch.tensor(self.mean, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(3, 1, 1)
        return (x - mean) / std

    def eval_view(self, squares: torch.Tensor) -> torch.Tensor:
        """uint8 squares [B, 3, S, S] -> the normalised centre crop the models are validated on."""
        if squares.shape[-1] != self.resize_size:
            squares = F.resize(squares, [self.resize_size], antialias=True)
        return self.normalize(F.center_crop(squares, [self.input_size]))

    def from_pil(self, img: Image.Image) -> torch.Tensor:
        """An RGB PIL image -> normalised tensor [1, 3, input_size, input_size]."""
        square = square_resize(img, self.resize_size)
        t = torch.from_numpy(__import__("numpy").asarray(square).copy()).permute(2, 0, 1)
        return self.eval_view(t.unsqueeze(0))

    def to_dict(self) -> dict:
        return {"input_size": self.input_size, "resize_size": self.resize_size,
                "mean": list(self.mean), "std": list(self.std), "crop_pct": CROP_PCT}


class RandomRot90(torch.nn.Module):
    """Flowers have no canonical orientation (photos are taken from above as often as the side)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = int(torch.randint(0, 4, ()).item())
        return torch.rot90(x, k, dims=(-2, -1)) if k else x


def train_augment(level: str, pre: Preprocess) -> v2.Compose:
    """The training preset of a level, uint8 square -> normalised tensor.

    ``baseline``: the eval view plus a horizontal flip (transfer-learning baseline, level 1).
    ``strong``: random resized crop, flips, 90° rotations, colour jitter and cutout (level 2+),
    chosen for robustness on users' photos (framing, orientation, white balance, occlusion).
    """
    to_float = v2.Lambda(pre.normalize)
    if level == "baseline":
        return v2.Compose([v2.CenterCrop(pre.input_size), v2.RandomHorizontalFlip(), to_float])
    if level == "strong":
        return v2.Compose([
            v2.RandomResizedCrop(pre.input_size, scale=(0.25, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            RandomRot90(),
            v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.05),
            to_float,
            v2.RandomErasing(p=0.5, scale=(0.02, 0.2), value=0),
        ])
    raise ValueError(f"unknown augmentation preset {level!r}")


def augment_batch(squares: torch.Tensor, transform) -> torch.Tensor:
    """Apply a per-sample random transform to each uint8 square of a batch."""
    return torch.stack([transform(s) for s in squares])
