"""Example photos, thumbnails and reference photos shipped with the app, so a fresh clone works
without the dataset: their file formats and readers (``flowers_core.training.gallery`` builds them: ``python -m train.gallery``).

  * ``assets/examples/*.jpg`` + ``examples.json``: a handful of stratified-TEST photos (≤320 px) with
    their true label, for the Classify page's gallery (never seen in training);
  * ``artifacts/thumbs/stratified_test.npz``: every stratified test image as a 64 px JPEG, one file,
    so the Confusions page can show the images a model got wrong;
  * ``assets/dataset_labels.json``: the label of every image of the dataset (class distribution);
  * ``artifacts/thumbs/stratified_reference.npz``: REFERENCE_PER_CLASS photos of every species from the
    TRAINING split, REFERENCE_SIZE px square JPEGs, recorded in the manifest's ``reference_photos``
    section; the app shows them next to its answers and on the Species page.
"""

from __future__ import annotations

import io
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from ..shipped import manifest as art
from ..shipped.paths import ASSETS, REFERENCE_PHOTOS, THUMBS, default_data_root
from ..shipped.splits import SHIPPED_PROTOCOL

EXAMPLES_DIR = ASSETS / "examples"
DATASET_LABELS = ASSETS / "dataset_labels.json"
THUMB_SIZE = 64
REFERENCE_PER_CLASS = 3
REFERENCE_SIZE = 96
REFERENCE_COMMAND = "python -m train.gallery --reference"
EXAMPLE_SIZE = 320
# Well-known, visually distinct species for the demo gallery.
EXAMPLE_CLASSES = ("sunflower", "rose", "tiger lily", "bird of paradise", "water lily",
                   "passion flower", "pink primrose", "english marigold")


# ---------------------------------------------------------------------------------------------
# Reading (the app)
# ---------------------------------------------------------------------------------------------
def examples(root: Path | None = None) -> list[dict]:
    """[{file (absolute path), label, class_id, image_id}] of the shipped example photos."""
    folder = Path(root) if root is not None else EXAMPLES_DIR
    index = folder / "examples.json"
    if not index.is_file():
        return []
    items = json.loads(index.read_text())
    return [{**item, "file": str(folder / item["file"])} for item in items if (folder / item["file"]).is_file()]


def dataset_labels() -> np.ndarray | None:
    """0-based label of every dataset image (index = image id - 1), or None when not shipped."""
    if not DATASET_LABELS.is_file():
        return None
    return np.asarray(json.loads(DATASET_LABELS.read_text())["labels"], dtype=np.int64)


class Thumbnails:
    """Small JPEGs of test images: the shipped pack first, then the dataset folder when present."""

    def __init__(self, protocol: str = SHIPPED_PROTOCOL, root=None, data_root=None):
        self.protocol = protocol
        self.pack: dict[int, bytes] = {}
        self.labels: dict[int, int] = {}
        path = art.artifacts_dir(root) / THUMBS.format(protocol=protocol)
        if path.is_file():
            with np.load(path) as z:
                data, offsets = z["data"], z["offsets"]
                for i, (image_id, label) in enumerate(zip(z["image_ids"], z["labels"])):
                    self.pack[int(image_id)] = data[offsets[i]:offsets[i + 1]].tobytes()
                    self.labels[int(image_id)] = int(label)
        self.data_dir = Path(data_root or default_data_root()) / "flowers-102" / "jpg"

    @property
    def has_dataset(self) -> bool:
        return self.data_dir.is_dir()

    @property
    def available(self) -> bool:
        return bool(self.pack) or self.has_dataset

    def get(self, image_id: int) -> bytes | None:
        image_id = int(image_id)
        if image_id in self.pack:
            return self.pack[image_id]
        path = self.data_dir / f"image_{image_id:05d}.jpg"
        if path.is_file():
            return _thumb_bytes(path, THUMB_SIZE * 2)
        return None

    def of_class(self, class_id: int, k: int = 4) -> list[bytes]:
        """Up to ``k`` example thumbnails of a class (from the pack, any protocol)."""
        ids = [i for i, c in self.labels.items() if c == class_id][:k]
        return [self.pack[i] for i in ids]


class ReferencePhotos:
    """The shipped reference photos of every species (training images): ``of_class(class_id)``."""

    def __init__(self, root=None, protocol: str = SHIPPED_PROTOCOL):
        self.protocol = protocol
        record = art.reference_photos_record(root)
        rel = record.file if record else REFERENCE_PHOTOS.format(protocol=protocol)
        self.path = art.artifacts_dir(root) / rel
        self.by_class: dict[int, list[bytes]] = {}
        if self.path.is_file():
            with np.load(self.path) as z:
                data, offsets = z["data"], z["offsets"]
                for i, label in enumerate(z["labels"]):
                    self.by_class.setdefault(int(label), []).append(data[offsets[i]:offsets[i + 1]].tobytes())

    @property
    def available(self) -> bool:
        return bool(self.by_class)

    @property
    def missing_message(self) -> str:
        return (f"Reference photos of the species are not shipped in this copy ({self.path.name} is missing); "
                f"make them with `{REFERENCE_COMMAND}`.")

    def of_class(self, class_id: int, k: int = REFERENCE_PER_CLASS) -> list[bytes]:
        return self.by_class.get(int(class_id), [])[:k]


@lru_cache(maxsize=4096)
def _thumb_bytes(path: Path, size: int) -> bytes:
    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((size, size))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=80)
        return buf.getvalue()
