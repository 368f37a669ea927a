"""How far a heatmap can be trusted on one photo, without torch: hide what it marks and ask the model again.

ROAD (RemOve And Debias, Rong et al. 2022): the pixels a map marks most are hidden, filled in from their
neighbours by a noisy linear imputation (so the hole itself is no clue), and the model's confidence in the
explained class is measured again. ``impute`` is pytorch-grad-cam's ``NoisyLinearImputer`` (the same sparse
system, the same neighbour weights) in numpy and scipy, so the Explain page's check runs on the model that answered
(onnxruntime) with no torch in the process; a test holds the two equal. The offline explanations report keeps the
library's own classes (``explain.faithfulness``).

Two measures, one per audience:

- ``HidingCheck`` (the Explain page): one share (``SENTENCE_SHARE``) of the photo hidden where the map marks most,
  against ``CHECK_DRAWS`` random maps hiding the same share. Its verdict decides on exactly the numbers its sentence
  quotes: "explains" only when hiding the marked part lowers the confidence, and lowers it more than hiding random
  parts does on average, by at least ``MARGIN`` and by at least twice the standard error of the random draws' mean.
- ``Faithfulness`` (the report over test images): ROADCombined over ``SHARES``, most- and least-marked first.

Random maps are coarse noise on the model's feature-map grid upsampled like a class map, so both hide blobs of
similar size (per-pixel noise would hide scattered pixels that the imputer restores almost perfectly).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

# Shares of the photo hidden by the report's ROADCombined (the library's percentiles are 100 × (1 − share)).
SHARES = (0.05, 0.1, 0.2)
SENTENCE_SHARE = 0.2  # the one share the page hides, quotes and decides on
RANDOM_DRAWS = 3  # random maps averaged into the report's per-image baseline
CHECK_DRAWS = 8  # random maps the page's check draws: their spread is stated beside the verdict
# A map "explains the answer" when hiding what it marks lowers the confidence at least this many probability points
# more than hiding random parts (and more than twice the standard error of the random draws' mean).
MARGIN = 0.05
# pytorch-grad-cam's NoisyLinearImputer: the weights of the 8 neighbours, and the noise added to imputed values.
NEIGHBOURS = (((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12), ((0, -1), 1 / 6),
              ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6))
NOISE = 0.01


def impute(image: np.ndarray, keep: np.ndarray, noise: float = NOISE, rng: np.random.Generator | None = None
           ) -> np.ndarray:
    """``image`` [C, H, W] with the pixels where ``keep`` [H, W] is 0 filled in: each hidden pixel is the weighted
    mean of its 8 neighbours (kept or hidden: one sparse linear system), plus Gaussian ``noise``."""
    from scipy.sparse import csc_matrix
    from scipy.sparse.linalg import spsolve

    c, h, w = image.shape
    flat = image.reshape(c, -1).astype(np.float64)
    kept = keep.reshape(-1) > 0.5
    hidden = np.flatnonzero(~kept)
    if len(hidden) == 0:
        return image.astype(np.float32).copy()
    var = np.full(h * w, -1, dtype=np.int64)
    var[hidden] = np.arange(len(hidden))
    rows, cols, vals = [], [], []
    b = np.zeros((len(hidden), c))
    diagonal = np.ones(len(hidden))
    y, x = np.divmod(hidden, w)
    eq = np.arange(len(hidden))
    for (dy, dx), weight in NEIGHBOURS:
        ny, nx = y + dy, x + dx
        inside = (ny >= 0) & (nx >= 0) & (ny < h) & (nx < w)
        diagonal[~inside] -= weight  # the library lowers the diagonal by the weight of a neighbour off the image
        where = ny[inside] * w + nx[inside]
        known = kept[where]
        b[eq[inside][known]] -= weight * flat[:, where[known]].T
        rows.append(eq[inside][~known])
        cols.append(var[where[~known]])
        vals.append(np.full(int((~known).sum()), weight))
    rows.append(eq)
    cols.append(eq)
    vals.append(-diagonal)
    a = csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(len(hidden),) * 2)
    solved = spsolve(a, b).reshape(len(hidden), c)
    out = flat.copy()
    out[:, hidden] = solved.T
    if noise:
        out[:, hidden] += noise * (rng or np.random.default_rng(0)).standard_normal((c, len(hidden)))
    return out.reshape(c, h, w).astype(np.float32)


def unique_ranks(heatmap: np.ndarray, seed: int = 0) -> np.ndarray:
    """``heatmap`` with its ties broken by a seeded jitter far below its own resolution (the order of distinct
    values is kept): a map with ties (LIME leaves most patches at 0) then hides the share asked for, not all or none."""
    heat = np.nan_to_num(np.asarray(heatmap, dtype=np.float64))
    span = float(heat.max() - heat.min()) or 1.0
    jitter = np.random.default_rng(seed).random(heat.shape) * span * 1e-9
    return (heat + jitter).astype(np.float64)


def keep_mask(heatmap: np.ndarray, share: float, most_first: bool = True, seed: int = 0) -> np.ndarray:
    """1 where a pixel stays, 0 where it is hidden: the ``share`` of the pixels ``heatmap`` marks most (or least),
    as pytorch-grad-cam's ``RemoveMostRelevantFirst`` / ``RemoveLeastRelevantFirst`` threshold them."""
    ranks = unique_ranks(heatmap, seed)
    ranks = (ranks - ranks.min()) / (ranks.max() - ranks.min() or 1.0)
    if not most_first:
        ranks = 1 - ranks
    return np.float32(ranks < np.percentile(ranks, 100.0 * (1.0 - share)))


def random_map(size: int, grid: int, seed: int) -> np.ndarray:
    """A random heatmap at the model's feature-map resolution (``grid`` × ``grid``), upsampled to ``size``."""
    coarse = np.random.default_rng(seed).random((grid, grid)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_LINEAR)


def centre_blob(size: int, sigma: float = 0.25) -> np.ndarray:
    """A Gaussian centred in the view (``sigma`` a share of the side): "the flower is in the middle"."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    return np.exp(-(axis[:, None] ** 2 + axis[None, :] ** 2) / (2 * sigma ** 2)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The page's check: one share, the sentence's numbers, the verdict from them
# ---------------------------------------------------------------------------------------------
@dataclass
class HidingCheck:
    """Hiding ``share`` of a view where one map marks most, against random maps hiding the same share."""

    target: int
    share: float
    confidence: float  # the probability of ``target`` on the untouched view
    after_map: float  # ... with the share the map marks most hidden
    after_random: np.ndarray  # ... with a random share hidden, one per draw
    after_centre: float | None = None  # ... with the central share hidden (a map that ignores the photo)
    margin: float = MARGIN

    @property
    def random_mean(self) -> float:
        return float(np.mean(self.after_random))

    @property
    def random_spread(self) -> float:
        """The standard deviation of the random draws (what one random hiding varies by)."""
        return float(np.std(self.after_random, ddof=1)) if len(self.after_random) > 1 else 0.0

    @property
    def needed(self) -> float:
        """The gap a verdict other than "chance" needs: the margin, or twice the standard error of the random
        draws' mean when that is larger (a noisy baseline asks for a clearer difference)."""
        return max(self.margin, 2 * self.random_spread / np.sqrt(max(len(self.after_random), 1)))

    @property
    def gap(self) -> float:
        """How much more hiding the map's share lowers the confidence than hiding a random share does (points)."""
        return self.random_mean - self.after_map

    @property
    def verdict(self) -> str:
        """'better' (hiding the marked part lowers the confidence, and by ``needed`` more than random parts do),
        'worse' (it lowers it by ``needed`` less, or raises it), 'chance', or 'unmoved': no hiding moves the
        confidence by ``margin`` (a very sure answer: this photo cannot tell)."""
        moved = max(abs(self.confidence - v) for v in (self.after_map, *self.after_random))
        if moved < self.margin:
            return "unmoved"
        if self.gap >= self.needed and self.after_map < self.confidence:
            return "better"
        return "worse" if self.gap <= -self.needed else "chance"

    def as_dict(self) -> dict:
        return {"target": self.target, "share": self.share, "confidence": self.confidence,
                "after_map": self.after_map, "after_random": [float(v) for v in self.after_random],
                "random_mean": self.random_mean, "random_spread": self.random_spread, "needed": self.needed,
                "after_centre": self.after_centre, "verdict": self.verdict}


Confidences = Callable[[np.ndarray], np.ndarray]  # normalised batch [B, C, H, W] -> P(target) per image [B]


def random_hidden(x: np.ndarray, grid: int, share: float = SENTENCE_SHARE, draws: int = CHECK_DRAWS,
                  seed: int = 0) -> np.ndarray:
    """``draws`` copies of the normalised view ``x`` [C, H, W], each with a random ``share`` hidden (the baseline
    depends on the photo and the model's grid, not on the map: computed once per view and shared)."""
    size = x.shape[-1]
    return np.stack([impute(x, keep_mask(random_map(size, grid, seed + 1000 + d), share, seed=seed + d),
                            rng=np.random.default_rng(seed + d)) for d in range(draws)])


def hiding_check(confidences: Confidences, x: np.ndarray, heatmap: np.ndarray, target: int, grid: int,
                 share: float = SENTENCE_SHARE, draws: int = CHECK_DRAWS, seed: int = 0,
                 random_confidences: np.ndarray | None = None, centre: bool = True) -> HidingCheck:
    """The page's check of ``heatmap`` on the normalised view ``x`` [C, H, W]: ``confidences`` runs the model that
    gave the map; ``random_confidences`` (the random draws' confidences of this view and class) when already
    measured; ``centre``: also hide the central share (what a map that only says "the middle" would score)."""
    hidden = [impute(x, keep_mask(heatmap, share, seed=seed), rng=np.random.default_rng(seed))]
    if centre:
        hidden.append(impute(x, keep_mask(centre_blob(x.shape[-1]), share, seed=seed), rng=np.random.default_rng(seed)))
    batch = [x[None], np.stack(hidden)]
    if random_confidences is None:
        batch.append(random_hidden(x, grid, share, draws, seed))
    conf = np.asarray(confidences(np.concatenate(batch)), dtype=np.float64)
    k = 1 + len(hidden)
    after_random = conf[k:] if random_confidences is None else np.asarray(random_confidences, dtype=np.float64)
    return HidingCheck(int(target), share, float(conf[0]), float(conf[1]), after_random,
                       float(conf[2]) if centre else None)


# ---------------------------------------------------------------------------------------------
# The report's measure: ROADCombined over several shares
# ---------------------------------------------------------------------------------------------
@dataclass
class RoadCurve:
    """The confidence in one class after hiding each share of a photo, most- and least-marked first."""

    shares: tuple[float, ...]
    most_first: np.ndarray  # [len(shares)]
    least_first: np.ndarray  # [len(shares)]

    @property
    def combined(self) -> float:
        """ROADCombined: mean over shares of (least-first − most-first) / 2; higher = more faithful."""
        return float(np.mean((self.least_first - self.most_first) / 2))

    def at(self, share: float) -> tuple[float, float]:
        i = self.shares.index(share)
        return float(self.most_first[i]), float(self.least_first[i])

    @staticmethod
    def mean(curves: list[RoadCurve]) -> RoadCurve:
        return RoadCurve(curves[0].shares, np.mean([c.most_first for c in curves], axis=0),
                         np.mean([c.least_first for c in curves], axis=0))


@dataclass
class Faithfulness:
    """One heatmap on one photo, beside random maps of the same photo (the report's per-image record)."""

    target: int
    confidence: float  # the probability of ``target`` on the untouched view
    curve: RoadCurve
    random: RoadCurve
    margin: float = MARGIN

    @property
    def advantage(self) -> float:
        """The map's combined score minus the random maps': probability points it ranks pixels better by."""
        return self.curve.combined - self.random.combined

    @property
    def verdict(self) -> str:
        """'better' | 'chance' | 'worse' than random maps of the same photo by the combined score, or 'unmoved'."""
        moved = max(abs(self.confidence - v) for c in (self.curve, self.random)
                    for v in (*c.most_first, *c.least_first))
        if moved < self.margin:
            return "unmoved"
        if self.advantage >= self.margin:
            return "better"
        return "worse" if self.advantage <= -self.margin else "chance"

    def as_dict(self) -> dict:
        return {"target": self.target, "confidence": self.confidence, "shares": list(self.curve.shares),
                "most_first": self.curve.most_first.tolist(), "least_first": self.curve.least_first.tolist(),
                "random_most_first": self.random.most_first.tolist(),
                "random_least_first": self.random.least_first.tolist(),
                "combined": self.curve.combined, "random_combined": self.random.combined, "verdict": self.verdict}
