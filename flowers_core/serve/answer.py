"""The answer to a photo: the three-way verdict rules, ``Prediction``, and combining several photos of one plant.

Decided here only, for the CLI, the app and the benchmarks alike.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field

import numpy as np

from .localise import Localisation

VERDICTS = ("species", "not_sure", "not_a_flower")
CANDIDATES_SHOWN = 3  # a "not sure" answer shows up to this many candidate species, each with reference photos
# ...each with at least this probability (the most probable always): a species the model gives less than one
# chance in twenty is not a possibility worth a visitor's comparison, and showing it beside reference photos
# would suggest it were. One bound for every class and model (calibrated probabilities), not tuned on photos.
CANDIDATE_MIN_PROB = 0.05
TOP_LISTED = max(5, CANDIDATES_SHOWN)  # a Prediction's ``top5``: the bar chart's classes, the candidates among them


def verdict(entropy: float, entropy_threshold: float | None = None, flower_score: float | None = None,
            flower_threshold: float | None = None, typicality: float | None = None,
            typicality_threshold: float | None = None) -> str:
    """The three-way answer, decided here only (CLI, app and benchmarks): "not_a_flower" when the flower
    gate's score is below its threshold, else "not_sure" when the calibrated softmax entropy is above the
    model's threshold or the photo's features are less typical of the 102 species than the model's
    threshold (``novelty``), else "species". A signal without a threshold (or a missing signal) never rejects."""
    if flower_score is not None and flower_threshold is not None and flower_score < flower_threshold:
        return "not_a_flower"
    if entropy_threshold is not None and entropy > entropy_threshold:
        return "not_sure"
    if unfamiliar(typicality, typicality_threshold):
        return "not_sure"
    return "species"


def unfamiliar(typicality: float | None, typicality_threshold: float | None) -> bool | None:
    """Whether the novelty check finds the photo unlike the 102 species (its features less typical than the
    threshold); None when there is no check to say."""
    if typicality is None or typicality_threshold is None:
        return None
    return typicality < typicality_threshold


def combine_probs(probs: list[np.ndarray]) -> np.ndarray:
    """Several photos of one plant -> one distribution: the mean of their log-probabilities, renormalised
    (a normalised geometric mean: a species must fit every photo, one confident photo cannot outvote)."""
    logp = np.mean([np.log(np.clip(np.asarray(p, dtype=np.float64), 1e-12, None)) for p in probs], axis=0)
    out = np.exp(logp - logp.max())
    return (out / out.sum()).astype(np.float32)


@dataclass
class Prediction:
    class_id: int
    label: str
    prob: float
    entropy: float
    top5: list[tuple[str, float]]
    uncertain: bool | None = None
    verdict: str = "species"
    unfamiliar: bool | None = None  # the novelty check finds it unlike every species (None: no check)
    flower_score: float | None = None
    typicality: float | None = None
    latency_ms: float = 0.0
    probs: np.ndarray | None = field(default=None, repr=False)
    localisation: Localisation | None = field(default=None, repr=False)  # where it looked (localisation on)
    whole_photo: "Prediction | None" = field(default=None, repr=False)  # the whole photo's own answer (localisation on)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("probs")
        d.pop("localisation")
        d.pop("whole_photo")
        if self.localisation is not None:
            d["localisation"] = self.localisation.to_json()
        d["top5"] = [[label, round(p, 6)] for label, p in self.top5]
        for key in ("uncertain", "flower_score", "typicality", "unfamiliar"):
            if d[key] is None:
                d.pop(key)
        return d

    def candidates(self, min_prob: float = CANDIDATE_MIN_PROB) -> list[tuple[str, float]]:
        """The species a "not sure" answer shows (label, probability), most probable first: up to
        CANDIDATES_SHOWN, those below ``min_prob`` left out (none at all when no species reaches it).
        ``min_prob=0``: always the top CANDIDATES_SHOWN (what the real-world benchmark scores as "the top 3")."""
        return [(label, p) for label, p in self.top5[:CANDIDATES_SHOWN] if p >= min_prob]

    def candidate_ids(self, min_prob: float = CANDIDATE_MIN_PROB) -> list[int]:
        """The class ids of ``candidates``."""
        probs = np.asarray(self.probs)
        return [int(i) for i in np.argsort(-probs)[:CANDIDATES_SHOWN] if probs[i] >= min_prob]

    @property
    def leading(self) -> bool:
        """The best guess is more probable than all the other species together (> 50%): a "not sure" can
        still name it as the most likely one, with the reason for the doubt."""
        return self.prob > 0.5


# Two photos of one plant agree when the overlap of their answers reaches this. Chosen by
# `python -m flowers_core.bench.answer_rules` (reports/answer_rules.json): the largest candidate that splits at most
# 1% of the pairs of validation photos of the same species; measured on people's photos there too.
AGREEMENT_MIN_OVERLAP = 0.05


def answer_overlap(p: Prediction, q: Prediction) -> float:
    """How much two photos' answers overlap: the Bhattacharyya coefficient of their probabilities, sum sqrt(p*q),
    1 for the same answer, 0 when every species one gives weight to the other gives none (a sunflower at 99% and a
    poppy at 78% overlap about 0.05). Two photos the gate calls "not a flower" agree; one such and a flower never do."""
    if (p.verdict == "not_a_flower") != (q.verdict == "not_a_flower"):
        return 0.0
    if p.verdict == "not_a_flower":
        return 1.0
    a, b = (np.clip(np.asarray(x.probs, dtype=np.float64), 0, None) for x in (p, q))
    return float(np.sqrt(a * b).sum())


@dataclass
class Agreement:
    """Which photos of one plant join the combined answer (``joined``, indices, empty when no two agree) and which
    are shown apart (``apart``), each with its own answer."""

    joined: list[int]
    apart: list[int]


def agreeing_photos(preds: list[Prediction], min_overlap: float | None = None) -> Agreement:
    """The largest group of photos that all agree pairwise (``answer_overlap`` >= ``min_overlap``), preferring a
    group with the first photo (the visitor's question), then the one that agrees best; every other photo is apart,
    so a different flower is never outvoted into a confident answer. No two photos agreeing: none is combined."""

    limit = AGREEMENT_MIN_OVERLAP if min_overlap is None else min_overlap
    n = len(preds)
    if n <= 1:
        return Agreement(list(range(n)), [])
    pair = {(i, j): answer_overlap(preds[i], preds[j]) for i, j in itertools.combinations(range(n), 2)}
    for size in range(n, 1, -1):
        groups = [g for g in itertools.combinations(range(n), size)
                  if all(pair[i, j] >= limit for i, j in itertools.combinations(g, 2))]
        if groups:
            best = max(groups, key=lambda g: (0 in g, min(pair[i, j] for i, j in itertools.combinations(g, 2))))
            return Agreement(list(best), [i for i in range(n) if i not in best])
    return Agreement([], list(range(n)))
