import numpy as np
import pytest
import torch
from PIL import Image

from flowers_core.serve.preprocess import Preprocess, square_resize
from flowers_core.training.transforms import eval_view, tensor_from_pil


def test_preprocess_round_trips_through_the_manifest_dict():
    pre = Preprocess(260, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    d = pre.to_dict()
    assert d["resize_size"] == pre.resize_size == 297
    assert Preprocess.from_dict(d) == pre


@pytest.mark.parametrize("size", [32, 47, 224, 260])  # 47: an odd margin where torchvision's crop offset rounds
def test_numpy_view_is_the_torch_eval_view(size):
    """The Classify page's numpy preprocessing gives the tensors training and evaluation use."""
    pre = Preprocess(size)
    img = Image.fromarray(np.random.default_rng(size).integers(0, 256, (217, 300, 3), dtype=np.uint8))
    square = torch.from_numpy(np.asarray(square_resize(img, pre.resize_size)).copy()).permute(2, 0, 1)[None]
    expected = eval_view(pre, square).numpy()
    got = pre.array_from_pil(img)
    assert got.shape == expected.shape == (1, 3, size, size) and got.dtype == np.float32
    assert np.abs(got - expected).max() <= 1e-6  # the same float32 arithmetic, far inside one grey level (1/255)
    assert torch.equal(tensor_from_pil(pre, img), torch.from_numpy(got))
