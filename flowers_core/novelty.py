"""Is this flower one of the 102 species? A check in the model's own feature space.

The softmax of a classifier is confident on flowers it was never trained on (an astilbe or a tulip
gets a species name with a low entropy), so a flower photo also gets a **typicality** score: minus
the squared Mahalanobis distance of its pooled features (the classifier's input) to the nearest
training-class mean, with one covariance shared by all classes (Lee et al., NeurIPS 2018). Below a
threshold set like the flower gate's (``evaluate.pass_threshold``: 99% of the validation flowers
pass) the answer is "not sure". The ensemble has no feature space of its own: its typicality is the
mean of its members', each standardised by its spread over the validation flowers
(``EnsembleTypicality``). This module is numpy only: the packs are numpy arrays; the features come
from the INT8 file's second output (``FEATURES_OUTPUT``) or a torch model's pooling
(``inference.Predictor.logits_and_features``); ``python -m train.novelty`` fits the packs and thresholds.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from threadpoolctl import ThreadpoolController

FEATURES_OUTPUT = "features"  # the ONNX output with the pooled features the classifier reads
NOVELTY_CMD = "python -m train.novelty"
RIDGE = 1e-3  # added to the covariance's diagonal: the features are 1,280-d from ~6.5k images
STORED_DTYPE = np.float16  # the pack is stored in half precision (small artifact); scores are computed in fp32
_BLAS: ThreadpoolController | None = None
_BLAS_LOCK = threading.RLock()


@contextmanager
def single_threaded_blas():
    """numpy's BLAS on one thread for the duration. The scores are one small product per batch, and
    OpenBLAS threads left spinning after a two-thread product take the cores from the model's next run
    (onnxruntime's or torch's threads). The BLAS thread count is one setting for the whole process, so
    concurrent callers (the app's sessions) take turns: each restores what it found, and none can leave
    another's limit behind."""
    global _BLAS
    with _BLAS_LOCK:
        if _BLAS is None:  # inspects the libraries loaded so far: numpy's OpenBLAS is
            _BLAS = ThreadpoolController()
        with _BLAS.limit(limits=1, user_api="blas"):
            yield


@dataclass(frozen=True)
class Typicality:
    """Class means and the whitening of the shared covariance: ``scores(features)`` is minus the squared
    Mahalanobis distance to the nearest class mean (0 = at a class mean, more negative = less typical)."""

    whiten: np.ndarray  # [D, D] lower-triangular L with L @ L.T = inverse covariance
    means: np.ndarray  # [C, D] class means, whitened (mean @ whiten)

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, num_classes: int, ridge: float = RIDGE) -> "Typicality":
        x = np.asarray(features, dtype=np.float64)
        labels = np.asarray(labels)
        means = np.stack([x[labels == c].mean(0) for c in range(num_classes)])
        centred = x - means[labels]
        cov = centred.T @ centred / len(x) + ridge * np.eye(x.shape[1])
        whiten = np.linalg.cholesky(np.linalg.inv(cov))
        stored = whiten.astype(STORED_DTYPE).astype(np.float32)  # what ``save`` keeps: fit = shipped file
        return cls(stored, (means.astype(np.float32) @ stored).astype(STORED_DTYPE).astype(np.float32))

    def scores(self, features: np.ndarray) -> np.ndarray:
        with single_threaded_blas():
            z = np.asarray(features, dtype=np.float32) @ self.whiten
            d2 = (z * z).sum(1)[:, None] - 2.0 * z @ self.means.T + (self.means * self.means).sum(1)[None]
        return -d2.min(1)

    def save(self, path: str | Path) -> int:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, whiten=self.whiten.astype(STORED_DTYPE), means=self.means.astype(STORED_DTYPE))
        return path.stat().st_size

    @classmethod
    def load(cls, path: str | Path) -> "Typicality":
        with np.load(path, allow_pickle=False) as z:
            return cls(z["whiten"].astype(np.float32), z["means"].astype(np.float32))


def standardisation(val_scores: np.ndarray) -> tuple[float, float]:
    """Centre and scale of a model's typicality over the validation flowers (mean, standard deviation)."""
    scores = np.asarray(val_scores, dtype=np.float64)
    return float(scores.mean()), float(scores.std() or 1.0)


@dataclass(frozen=True)
class EnsembleTypicality:
    """The ensemble's typicality: the mean over its members of ``(member typicality - centre) / scale``,
    each member standardised by ``standardisation`` of its validation scores, so that no member's
    feature space dominates the vote by the size of its distances."""

    members: tuple[Typicality, ...]
    centres: tuple[float, ...]
    scales: tuple[float, ...]

    def member_scores(self, member_features: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Each member's standardised typicality."""
        return [(t.scores(f) - c) / s for t, f, c, s in zip(self.members, member_features, self.centres, self.scales,
                                                            strict=True)]

    def scores(self, member_features: Sequence[np.ndarray]) -> np.ndarray:
        return np.mean(self.member_scores(member_features), axis=0)
