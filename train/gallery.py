"""Build the app's example photos, test thumbnails and dataset labels (``--build``) and the reference
photos of every species (``--reference``) from the dataset and the saved split; the formats and
readers are in ``flowers_core.gallery``.
"""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from flowers_core import artifacts as art
from flowers_core.data import SHIPPED_PROTOCOL, load_index
from flowers_core.gallery import (
    DATASET_LABELS,
    EXAMPLE_CLASSES,
    EXAMPLE_SIZE,
    EXAMPLES_DIR,
    REFERENCE_COMMAND,
    REFERENCE_PER_CLASS,
    REFERENCE_REL,
    REFERENCE_SIZE,
    THUMB_SIZE,
    THUMBS_REL,
    write_pack,
)
from flowers_core.preprocess import square_resize


def build_reference(data_root=None, artifacts_root=None, protocol: str = SHIPPED_PROTOCOL,
                    per_class: int = REFERENCE_PER_CLASS, size: int = REFERENCE_SIZE, seed: int = 0) -> dict:
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
    rel = REFERENCE_REL.format(protocol=protocol)
    nbytes = write_pack(art.artifacts_dir(artifacts_root) / rel, ids, labels, blobs)
    entry = {"file": rel, "protocol": protocol, "split": "train", "per_class": per_class,
             "classes_short": sorted(c for c, n in counts.items() if n < per_class), "count": len(ids),
             "size_px": size, "format": "JPEG", "bytes": nbytes, "seed": seed, "command": REFERENCE_COMMAND}
    art.update_manifest(artifacts_root, reference_photos=entry)
    return entry


def _square_thumb(path: Path, size: int, quality: int = 75) -> bytes:
    with Image.open(path) as im:
        buf = io.BytesIO()
        square_resize(im.convert("RGB"), size).save(buf, "JPEG", quality=quality, optimize=True)
        return buf.getvalue()


def build(data_root=None, artifacts_root=None, protocol: str = SHIPPED_PROTOCOL) -> dict:
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
    out = art.artifacts_dir(artifacts_root) / THUMBS_REL.format(protocol=protocol)
    write_pack(out, test_ids, test_labels, blobs)

    # 3. labels of the whole dataset
    DATASET_LABELS.write_text(json.dumps({"labels": [int(v) for v in index.labels]}))
    return {"examples": len(items), "thumbs": len(blobs), "thumbs_bytes": out.stat().st_size}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", action="store_true", help="build examples, thumbnails and dataset labels")
    p.add_argument("--reference", action="store_true",
                   help=f"build the reference photos ({REFERENCE_PER_CLASS} training images per species, "
                        f"{REFERENCE_SIZE} px) and record them in the manifest")
    p.add_argument("--data-root", default=None)
    p.add_argument("--artifacts", default=None)
    args = p.parse_args(argv)
    if not (args.build or args.reference):
        p.print_help()
        return
    if args.build:
        print(build(args.data_root, args.artifacts))
    if args.reference:
        print(json.dumps(build_reference(args.data_root, args.artifacts)))


if __name__ == "__main__":
    main()
