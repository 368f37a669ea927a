"""The reference photos: built from the training split only, recorded in the manifest, read back by class."""
from __future__ import annotations

import numpy as np

from flowers_core.serve.gallery import ReferencePhotos
from flowers_core.shipped import manifest as art
from flowers_core.shipped.paths import REFERENCE_PHOTOS
from flowers_core.shipped.splits import save_split
from flowers_core.training.data import load_index, make_split
from flowers_core.training.gallery import build_reference


def test_reference_photos_come_from_the_training_split(synthetic_root, tmp_path):
    index = load_index(synthetic_root)
    split = make_split(index, "stratified")
    save_split(split, tmp_path / "splits" / "stratified.json")
    entry = build_reference(synthetic_root, tmp_path, per_class=3, size=24)

    assert art.reference_photos_record(tmp_path) == entry and entry.file == REFERENCE_PHOTOS.format(protocol="stratified")
    assert entry.split == "train" and entry.per_class == 3 and entry.size_px == 24
    assert entry.count == 3 * len(index.classes) and entry.details["classes_short"] == []
    assert entry.details["bytes"] == (tmp_path / entry.file).stat().st_size

    with np.load(tmp_path / entry.file) as z:
        ids, labels = z["image_ids"], z["labels"]
    assert set(ids.tolist()) <= set(split["train"]), "never a validation or test image"
    assert np.array_equal(index.label_of(ids), labels)

    refs = ReferencePhotos(tmp_path)
    assert refs.available and all(len(refs.of_class(c)) == 3 for c in range(len(index.classes)))
    assert refs.of_class(0)[0][:2] == b"\xff\xd8", "JPEG bytes"


def test_missing_reference_photos_name_the_command(tmp_path):
    refs = ReferencePhotos(tmp_path)
    assert not refs.available and refs.of_class(3) == []
    assert "python -m train.gallery --reference" in refs.missing_message
