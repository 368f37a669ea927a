"""Flowers-102 access: the image index, the two split protocols and the decoded-image cache.

Everything reads the torchvision ``Flowers102`` layout under a root folder
(``<root>/flowers-102/{jpg,imagelabels.mat,setid.mat}``), so the shared offline copy and a
``--download``-ed copy behave the same.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..serve.preprocess import square_resize
from ..shipped.paths import REPO_ROOT, default_data_root  # noqa: F401  (re-exported: where the dataset lies)
from ..shipped.splits import NUM_CLASSES, PROTOCOLS, SPLIT_SEED


def default_cache_dir() -> Path:
    """Decoded images and cached features live here, outside version control."""
    return Path(os.environ.get("FLOWERS_CACHE", REPO_ROOT / ".cache"))


@dataclass(frozen=True)
class FlowersIndex:
    """All images of the dataset: ``image_ids[i]`` is N of ``image_NNNNN.jpg``, ``labels`` 0-based."""

    root: Path
    image_ids: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    @property
    def base(self) -> Path:
        return self.root / "flowers-102"

    def path(self, image_id: int) -> Path:
        return self.base / "jpg" / f"image_{int(image_id):05d}.jpg"

    def label_of(self, image_ids) -> np.ndarray:
        return self.labels[np.asarray(image_ids) - 1]


def load_index(root: str | Path | None = None, download: bool = False) -> FlowersIndex:
    """Read labels and class names of every image; ``download`` fetches the dataset first."""
    # The dataset readers are imported when the dataset is read (training, benchmarks), not at module
    # level: the app reads paths and splits from this module and starts without torch(vision) and scipy.
    from scipy.io import loadmat
    from torchvision.datasets import Flowers102

    root = Path(root) if root is not None else default_data_root()
    if download:
        for split in ("train", "val", "test"):
            Flowers102(root=str(root), split=split, download=True)
    base = root / "flowers-102"
    if not (base / "imagelabels.mat").is_file():
        raise FileNotFoundError(
            f"Flowers-102 not found under {root} (expected {base}/imagelabels.mat). "
            "Pass --data-root, set FLOWERS_DATA_ROOT, or use --download on a machine with internet."
        )
    labels = loadmat(base / "imagelabels.mat")["labels"][0].astype(np.int64) - 1
    image_ids = np.arange(1, len(labels) + 1)
    return FlowersIndex(root=root, image_ids=image_ids, labels=labels, classes=class_names_from_dataset(root))


def class_names_from_dataset(root: Path) -> tuple[str, ...]:
    """Class names as torchvision names them (index = 0-based label)."""
    from torchvision.datasets import Flowers102  # see load_index

    classes = getattr(Flowers102, "classes", None)
    if classes and len(classes) == NUM_CLASSES:
        return tuple(classes)
    names = json.loads((Path(root) / "flowers-102" / "cat_to_name.json").read_text())
    return tuple(names[str(i + 1)] for i in range(NUM_CLASSES))


# ---------------------------------------------------------------------------------------------
# Split protocols
# ---------------------------------------------------------------------------------------------
def official_split(index: FlowersIndex) -> dict[str, list[int]]:
    """The research protocol of ``setid.mat``: 1,020 train / 1,020 val / 6,149 test."""
    from scipy.io import loadmat  # see load_index

    setid = loadmat(index.base / "setid.mat")
    return {
        "train": sorted(int(i) for i in setid["trnid"][0]),
        "val": sorted(int(i) for i in setid["valid"][0]),
        "test": sorted(int(i) for i in setid["tstid"][0]),
    }


def stratified_split(index: FlowersIndex, seed: int = SPLIT_SEED, fraction: float = 0.1) -> dict[str, list[int]]:
    """80/10/10 over all images, stratified by class, deterministic for a seed."""
    from sklearn.model_selection import train_test_split  # see load_index

    n_hold = int(round(fraction * len(index.image_ids)))
    rest, test = train_test_split(
        index.image_ids, test_size=n_hold, stratify=index.labels, random_state=seed
    )
    train, val = train_test_split(rest, test_size=n_hold, stratify=index.label_of(rest), random_state=seed)
    return {k: sorted(int(i) for i in v) for k, v in (("train", train), ("val", val), ("test", test))}


def make_split(index: FlowersIndex, protocol: str) -> dict[str, list[int]]:
    if protocol == "official":
        return official_split(index)
    if protocol == "stratified":
        return stratified_split(index)
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")


# ---------------------------------------------------------------------------------------------
# Decode once: every image resized + centre-cropped to a uint8 square, kept as one array
# ---------------------------------------------------------------------------------------------
def decoded_cache_path(index: FlowersIndex, size: int, cache_dir: Path | None = None) -> Path:
    """Where ``decoded_images`` keeps the squares of ``index`` (a file per dataset location and size)."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = hashlib.sha1(f"{index.base.resolve()}|{len(index.image_ids)}|{size}".encode()).hexdigest()[:10]
    return cache_dir / f"decoded_{size}_{key}.npy"


def decoded_images(index: FlowersIndex, size: int, cache_dir: Path | None = None):
    """uint8 torch tensor [N, 3, size, size] of all images, in ``index.image_ids`` order.

    Decoding JPEGs dominates a naive input pipeline on 2 cores; doing it once and memory-mapping
    the result makes every later pass (feature caching, every level, every epoch) decode-free.
    """
    import torch  # here, not at module level: the app reads splits and paths from this module without torch

    path = decoded_cache_path(index, size, cache_dir)
    if path.is_file():
        return torch.from_numpy(np.load(path))
    out = np.empty((len(index.image_ids), 3, size, size), dtype=np.uint8)
    for i, image_id in enumerate(index.image_ids):
        with Image.open(index.path(image_id)) as im:
            out[i] = np.asarray(square_resize(im.convert("RGB"), size)).transpose(2, 0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.replace(path)
    return torch.from_numpy(out)
