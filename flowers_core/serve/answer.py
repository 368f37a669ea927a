"""The answer to a photo: the three-way verdict rules, ``Prediction``, and combining several photos of one plant.

Decided here only, for the CLI, the app and the benchmarks alike.
"""
from __future__ import annotations

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


def photos_disagree(preds: list[Prediction]) -> bool:
    """Whether photos sent as one plant look like different flowers: at least two of them are each
    answered with a species on their own (each photo passes the model's own checks, so no new threshold)
    and those species differ. Their combined answer would then describe no photo, so the app shows each
    photo's answer instead."""
    named = {p.class_id for p in preds if p.verdict == "species"}
    return len(named) > 1
