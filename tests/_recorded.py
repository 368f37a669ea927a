"""Check shared by test_pipeline and test_distill: a recorded model's saved probabilities and
top-1 are what its shipped file computes on the decoded test images."""
from __future__ import annotations

import numpy as np
import torch

from flowers_core.shipped import manifest as art
from flowers_core.training import weights
from flowers_core.training.data import decoded_images, load_index
from flowers_core.training.transforms import eval_view


def assert_recorded_matches_shipped(root, data_root, name: str) -> None:
    entry = art.model_entry(name, "stratified", root)
    saved, ids, labels = art.load_probs(entry.probs["test"], root)
    model = weights.load_model(name, root=root)
    squares = decoded_images(load_index(data_root), model.preprocess.resize_size)[np.asarray(ids) - 1]
    with torch.no_grad():
        probs = model(eval_view(model.preprocess, squares)).softmax(-1).numpy()
    one_ulp = np.spacing(saved.astype(np.float16)).astype(np.float32)  # probabilities are stored in fp16
    assert (np.abs(probs - saved) <= one_ulp).all(), f"{name}: max diff {np.abs(probs - saved).max():.2e}"
    assert entry.top1("test") == float((probs.argmax(1) == labels).mean())
