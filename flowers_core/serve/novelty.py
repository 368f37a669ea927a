"""Is this flower one of the 102 species? A check in the model's own feature space.

The softmax of a classifier is confident on flowers it was never trained on (an astilbe or a tulip
gets a species name with a low entropy), so a flower photo also gets a **typicality** score: minus
the relative squared Mahalanobis distance of its pooled features (the classifier's input) to the
nearest training-class mean: the distance with one covariance shared by all classes (Lee et al.,
NeurIPS 2018) minus the distance to a single Gaussian of all training features (Ren et al., 2021).
Below a threshold set on the validation flowers (``metrics.pass_threshold``: ``PASS_RATE`` of them pass,
chosen on species held out of training) the answer is "not sure". The ensemble has no feature space of its own: its typicality is the
mean of its members', each standardised by its spread over the validation flowers
(``EnsembleTypicality``). This module is numpy only: the packs are numpy arrays; the features come
from the INT8 file's second output (``FEATURES_OUTPUT``) or a torch model's pooling
(``Predictor.logits_and_features``); ``python -m train.novelty`` fits the packs and thresholds.
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
# The share of validation flowers the check lets through. ``operating_point`` over the held-out-species
# benchmark (``python -m flowers_core.bench.unseen_species``) chooses it: at 0.99, as the flower gate, the
# app's rule still named a species for 29% of the images of species held out of training.
PASS_RATE = 0.95
# the pass rates every check also records a threshold for (``train.novelty``), and the benchmarks measure
SWEPT_PASS_RATES = (0.995, 0.99, 0.98, 0.97, 0.95, 0.9)
MAX_UNSEEN_ANSWERED = 0.20  # at most this share of unknown species' images may be given a species name
DISTANCE = "relative Mahalanobis"  # recorded with every check, so that reports can tell which distance scored them
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


def _precision(centred: np.ndarray, ridge: float) -> np.ndarray:
    """The inverse of the covariance of already-centred features, with ``ridge`` on its diagonal."""
    return np.linalg.inv(centred.T @ centred / len(centred) + ridge * np.eye(centred.shape[1]))


@dataclass(frozen=True)
class Typicality:
    """``scores(features)``: minus the relative squared Mahalanobis distance to the nearest class mean, in
    one quadratic form per class, ``x·Q·x - 2 x·L_c + o_c`` (higher = more typical of the 102 species).

    Relative (Ren et al., 2021, "A simple fix to Mahalanobis distance"): each class's distance minus the
    distance to one Gaussian fitted to all the training features, so that directions in which the classes
    do not differ count for nothing and a photo is judged by how unlike every species it is where species
    differ. ``relative=False`` gives the plain distance (Lee et al., NeurIPS 2018)."""

    quadratic: np.ndarray  # [D, D] Q: the class precision (minus the background's when relative)
    linear: np.ndarray  # [C, D] L_c
    offset: np.ndarray  # [C] o_c

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, num_classes: int, ridge: float = RIDGE,
            relative: bool = True) -> "Typicality":
        x = np.asarray(features, dtype=np.float64)
        labels = np.asarray(labels)
        means = np.stack([x[labels == c].mean(0) for c in range(num_classes)])
        precision = _precision(x - means[labels], ridge)  # one covariance shared by the classes
        quadratic, linear = precision, means @ precision
        offset = np.einsum("cd,cd->c", linear, means)
        if relative:
            centre = x.mean(0)
            background = _precision(x - centre, ridge)
            quadratic = quadratic - background
            linear = linear - centre @ background
            offset = offset - centre @ background @ centre
        # what ``save`` keeps, so that the fit's scores are the shipped file's
        return cls(*(a.astype(STORED_DTYPE).astype(np.float32) for a in (quadratic, linear, offset)))

    def scores(self, features: np.ndarray) -> np.ndarray:
        with single_threaded_blas():
            x = np.asarray(features, dtype=np.float32)
            distances = ((x @ self.quadratic) * x).sum(1)[:, None] - 2.0 * x @ self.linear.T + self.offset[None]
        return -distances.min(1)

    def save(self, path: str | Path) -> int:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, quadratic=self.quadratic.astype(STORED_DTYPE),
                            linear=self.linear.astype(STORED_DTYPE), offset=self.offset.astype(STORED_DTYPE))
        return path.stat().st_size

    @classmethod
    def load(cls, path: str | Path) -> "Typicality":
        with np.load(path, allow_pickle=False) as z:
            if "quadratic" not in z:
                raise ValueError(f"{path} is a novelty pack of an older format: fit it again ({NOVELTY_CMD})")
            return cls(*(z[k].astype(np.float32) for k in ("quadratic", "linear", "offset")))


def operating_point(app_rule_by_pass_rate: dict[str, dict], max_unseen_answered: float = MAX_UNSEEN_ANSWERED) -> float | None:
    """The pass rate to ship: the largest one at which the app's "not sure" rule (entropy or this check) gave a
    species name to at most ``max_unseen_answered`` of the held-out species' images (``unseen_passing``, mean
    over the folds of ``bench.unseen_species``; keys are the swept pass rates); None when none did."""
    good = [float(rate) for rate, r in app_rule_by_pass_rate.items() if r["unseen_passing"] <= max_unseen_answered]
    return max(good, default=None)


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
