"""Builds the example photos, thumbnails and reference photos the app ships (``python -m train.gallery``);
their formats and readers are in ``flowers_core.serve.gallery``."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..serve.gallery import (
    DATASET_LABELS,
    EXAMPLE_CLASSES,
    EXAMPLE_SIZE,
    EXAMPLES_DIR,
    REFERENCE_COMMAND,
    REFERENCE_PER_CLASS,
    REFERENCE_SIZE,
    THUMB_SIZE,
)
from ..serve.preprocess import square_resize
from ..shipped import manifest as art
from ..shipped.paths import REFERENCE_PHOTOS, THUMBS
from ..shipped.splits import SHIPPED_PROTOCOL
from .data import load_index


def write_pack(path: Path, image_ids, labels, blobs: list[bytes]) -> int:
    """One .npz of JPEG blobs (concatenated bytes + offsets), the format of every thumbnail pack."""
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, image_ids=np.asarray(image_ids, dtype=np.int32), labels=np.asarray(labels, dtype=np.int16),
             offsets=offsets, data=np.frombuffer(b"".join(blobs), dtype=np.uint8))
    return path.stat().st_size


# ---------------------------------------------------------------------------------------------
# Builders (from the dataset and the saved split; build time only)
# ---------------------------------------------------------------------------------------------
def build_reference(data_root=None, artifacts_root=None, protocol: str = SHIPPED_PROTOCOL,
                    per_class: int = REFERENCE_PER_CLASS, size: int = REFERENCE_SIZE,
                    seed: int = 0) -> art.ReferencePhotosEntry:
    """``per_class`` training images of every class (a seeded draw), as ``size`` px square JPEGs in one
    pack, recorded in the manifest. Training images only: the test split stays unseen by the app too."""
    index = load_index(data_root)
    train_ids = np.sort(np.asarray(art.read_split(protocol, artifacts_root)["train"]))
    train_labels = index.label_of(train_ids)
    rng = np.random.default_rng(seed)
    ids, labels, counts = [], [], {}
    for class_id in range(len(index.classes)):
        members = train_ids[train_labels == class_id]
        chosen = np.sort(rng.choice(members, size=min(per_class, len(members)), replace=False)) if len(members) else []
        ids += [int(i) for i in chosen]
        labels += [class_id] * len(chosen)
        counts[class_id] = len(chosen)
    blobs = [_square_thumb(index.path(i), size, quality=80) for i in ids]
    rel = REFERENCE_PHOTOS.format(protocol=protocol)
    nbytes = write_pack(art.artifacts_dir(artifacts_root) / rel, ids, labels, blobs)
    entry = art.ReferencePhotosEntry(
        file=rel, protocol=protocol, split="train", per_class=per_class, count=len(ids), size_px=size,
        command=REFERENCE_COMMAND, details={"classes_short": sorted(c for c, n in counts.items() if n < per_class),
                                            "format": "JPEG", "bytes": nbytes, "seed": seed})
    art.update_manifest(artifacts_root, reference_photos=entry.to_dict())
    return entry


def _square_thumb(path: Path, size: int, quality: int = 75) -> bytes:
    with Image.open(path) as im:
        buf = io.BytesIO()
        square_resize(im.convert("RGB"), size).save(buf, "JPEG", quality=quality, optimize=True)
        return buf.getvalue()


def build_gallery(data_root=None, artifacts_root=None, protocol: str = SHIPPED_PROTOCOL) -> dict:
    index = load_index(data_root)
    test_ids = np.asarray(art.read_split(protocol, artifacts_root)["test"])
    test_labels = index.label_of(test_ids)

    # 1. examples: first test image of each chosen class
    EXAMPLES_DIR.mkdir(parents=True, exist_ok=True)
    for old in EXAMPLES_DIR.glob("*.jpg"):
        old.unlink()
    items = []
    for name in EXAMPLE_CLASSES:
        class_id = index.classes.index(name)
        image_id = int(test_ids[test_labels == class_id][0])
        fname = f"{name.replace(' ', '_')}_{image_id:05d}.jpg"
        with Image.open(index.path(image_id)) as im:
            im = im.convert("RGB")
            im.thumbnail((EXAMPLE_SIZE, EXAMPLE_SIZE), Image.LANCZOS)
            im.save(EXAMPLES_DIR / fname, "JPEG", quality=85, optimize=True)
        items.append({"file": fname, "label": name, "class_id": class_id, "image_id": image_id})
    (EXAMPLES_DIR / "examples.json").write_text(json.dumps(items, indent=1))

    # 2. thumbnails pack of the test split
    blobs = [_square_thumb(index.path(i), THUMB_SIZE) for i in test_ids]
    out = art.artifacts_dir(artifacts_root) / THUMBS.format(protocol=protocol)
    write_pack(out, test_ids, test_labels, blobs)

    # 3. labels of the whole dataset
    DATASET_LABELS.write_text(json.dumps({"labels": [int(v) for v in index.labels]}))
    return {"examples": len(items), "thumbs": len(blobs), "thumbs_bytes": out.stat().st_size}
