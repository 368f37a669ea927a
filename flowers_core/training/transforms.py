"""Torch views of the eval preprocessing (``serve.preprocess.Preprocess``: the same numbers as the numpy path the
app classifies with) and the per-level training presets (augmentation). Both work on the uint8 squares of the
eval preprocessing, so decoding happens once (see ``data.decoded_images``).
"""
from __future__ import annotations

import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..serve.preprocess import Preprocess


def normalize(pre: Preprocess, x: torch.Tensor) -> torch.Tensor:
    """uint8 tensor [.., 3, H, W] -> float, normalised as ``pre`` says."""
    x = x.float().div_(255.0)
    mean = torch.tensor(pre.mean, device=x.device).view(3, 1, 1)
    std = torch.tensor(pre.std, device=x.device).view(3, 1, 1)
    return (x - mean) / std


def eval_view(pre: Preprocess, squares: torch.Tensor) -> torch.Tensor:
    """uint8 squares [B, 3, S, S] -> the normalised centre crop the models are validated on."""
    if squares.shape[-1] != pre.resize_size:
        squares = F.resize(squares, [pre.resize_size], antialias=True)
    return normalize(pre, F.center_crop(squares, [pre.input_size]))


def tensor_from_pil(pre: Preprocess, img: Image.Image) -> torch.Tensor:
    """An RGB PIL image -> normalised tensor [1, 3, input_size, input_size] (``pre.array_from_pil``'s values)."""
    return torch.from_numpy(pre.array_from_pil(img))


class RandomRot90(torch.nn.Module):
    """Flowers have no canonical orientation (photos are taken from above as often as the side)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = int(torch.randint(0, 4, ()).item())
        return torch.rot90(x, k, dims=(-2, -1)) if k else x


class RandomChannelGain(torch.nn.Module):
    """A white-balance cast: each colour channel scaled by its own factor (tungsten, shade, phone AWB)."""

    def __init__(self, low: float = 0.8, high: float = 1.2):
        super().__init__()
        self.low, self.high = low, high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gain = torch.empty(3, 1, 1).uniform_(self.low, self.high)
        return (x.float() * gain).clamp_(0, 255).to(x.dtype)


class RandomZoomOut(torch.nn.Module):
    """The flower small in a wide frame: the square shrunk to 35-90% of its side and pasted at a random
    place over a blurred, enlarged copy of itself (a soft background of the same colours, as out-of-focus
    surroundings look), instead of the dataset's frame-filling close-ups."""

    def __init__(self, p: float = 0.2, scale: tuple[float, float] = (0.35, 0.9)):
        super().__init__()
        self.p, self.scale = p, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) >= self.p:
            return x
        size = x.shape[-1]
        inner = max(8, int(size * float(torch.empty(()).uniform_(*self.scale))))
        canvas = F.resize(F.resize(x, [max(4, size // 16)], antialias=True), [size, size], antialias=True)
        top, left = (int(torch.randint(0, size - inner + 1, ())) for _ in range(2))
        canvas[..., top: top + inner, left: left + inner] = F.resize(x, [inner, inner], antialias=True)
        return canvas


def train_augment(level: str, pre: Preprocess) -> v2.Compose:
    """The training preset of a level, uint8 square -> normalised tensor.

    ``baseline``: the eval view plus a horizontal flip (transfer-learning baseline, level 1).
    ``strong``: random resized crop, flips, 90° rotations, colour jitter and cutout (level 2+),
    chosen for robustness on users' photos (framing, orientation, white balance, occlusion).
    ``photo``: what people's photos do to a flower, for full fine-tuning: crops from 8% to all of
    the image, the flower small in a wide frame, colour and white-balance casts, blur, sensor
    noise, JPEG artefacts, occlusion (the images are augmented on the fly, not cached).
    """
    to_float = v2.Lambda(lambda x: normalize(pre, x))
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
    if level == "photo":
        return v2.Compose([
            RandomZoomOut(p=0.2),
            v2.RandomResizedCrop(pre.input_size, scale=(0.08, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([RandomRot90()], p=0.3),
            v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.05),
            v2.RandomApply([RandomChannelGain()], p=0.3),
            v2.RandomGrayscale(p=0.02),
            v2.RandomApply([v2.GaussianBlur(9, sigma=(0.1, 3.0))], p=0.2),
            v2.RandomApply([v2.JPEG((15, 90))], p=0.3),
            v2.ToDtype(torch.float32, scale=True),
            v2.RandomApply([v2.GaussianNoise(sigma=0.04)], p=0.2),
            v2.Normalize(list(pre.mean), list(pre.std)),
            v2.RandomErasing(p=0.25, scale=(0.02, 0.2), value=0),
        ])
    raise ValueError(f"unknown augmentation preset {level!r}")


def augment_batch(squares: torch.Tensor, transform) -> torch.Tensor:
    """Apply a per-sample random transform to each uint8 square of a batch."""
    return torch.stack([transform(s) for s in squares])


def batch_mix(num_classes: int, p: float) -> v2.RandomApply:
    """With probability ``p`` a batch is mixed, by CutMix or MixUp (its targets become class probabilities)."""
    return v2.RandomApply([v2.RandomChoice([v2.CutMix(num_classes=num_classes),
                                            v2.MixUp(num_classes=num_classes, alpha=0.2)])], p=p)
