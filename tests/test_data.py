import numpy as np
import pytest
import torch

from flowers_core.serve.preprocess import Preprocess
from flowers_core.shipped import splits
from flowers_core.training import data
from flowers_core.training.transforms import tensor_from_pil, train_augment


def test_index_reads_labels_and_class_names(synthetic_root):
    index = data.load_index(synthetic_root)
    assert len(index.image_ids) == 1020 and index.image_ids[0] == 1
    assert index.labels.min() == 0 and index.labels.max() == 101
    assert len(index.classes) == 102
    assert index.path(7).name == "image_00007.jpg"


def test_stratified_split_is_disjoint_complete_stratified_and_deterministic(synthetic_root):
    index = data.load_index(synthetic_root)
    a, b = data.stratified_split(index), data.stratified_split(index)
    assert a == b
    ids = a["train"] + a["val"] + a["test"]
    assert sorted(ids) == list(range(1, 1021))
    assert len(a["val"]) == len(a["test"]) == 102
    # every class is represented in each held-out part
    assert len(set(index.label_of(a["test"]))) == 102
    assert data.stratified_split(index, seed=1) != a


def test_official_split_comes_from_setid(synthetic_root, tmp_path):
    index = data.load_index(synthetic_root)
    split = data.official_split(index)
    assert len(split["train"]) == len(split["val"]) == 102
    splits.save_split(split, tmp_path / "official.json")
    assert splits.load_split(tmp_path / "official.json") == split


def test_missing_dataset_gives_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data-root"):
        data.load_index(tmp_path)


def test_decoded_images_are_cached_squares(synthetic_root, tmp_path):
    index = data.load_index(synthetic_root)
    first = data.decoded_images(index, 24, cache_dir=tmp_path)
    assert first.shape == (1020, 3, 24, 24) and first.dtype == torch.uint8
    assert list(tmp_path.glob("decoded_24_*.npy"))
    assert torch.equal(data.decoded_images(index, 24, cache_dir=tmp_path), first)


def test_eval_view_matches_pil_path():
    from PIL import Image

    pre = Preprocess(32)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    from_pil = tensor_from_pil(pre, img)
    assert from_pil.shape == (1, 3, 32, 32)
    assert from_pil.min() >= -1.0001 and from_pil.max() <= 1.0001


def test_strong_augmentation_changes_views_and_keeps_shape():
    pre = Preprocess(32)
    square = torch.randint(0, 255, (3, 37, 37), dtype=torch.uint8)
    aug = train_augment("strong", pre)
    torch.manual_seed(0)
    views = [aug(square) for _ in range(4)]
    assert all(v.shape == (3, 32, 32) and v.dtype == torch.float32 for v in views)
    assert not torch.allclose(views[0], views[1])
