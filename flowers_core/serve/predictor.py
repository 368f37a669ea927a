"""A shipped model ready to classify photos: ``Predictor`` over a small backend protocol.

The ONNX backend (the INT8 student) runs on onnxruntime and numpy only, so a process that classifies with it
never loads torch. A torch model's backend is built in ``flowers_core.training.torch_backend`` and handed in by
``flowers_core.open_model.open_predictor``; this package never imports torch (an import-linter contract).
"""
from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from ..metrics import entropy as entropy_of
from ..metrics import softmax
from ..shipped import catalog
from ..shipped import manifest as art
from ..shipped.splits import SHIPPED_PROTOCOL
from .answer import TOP_LISTED, Agreement, Prediction, agreeing_photos, combine_probs, unfamiliar, verdict
from .gate import FlowerGate, has_gate
from .localise import CLASS_MAPS_OUTPUT, LOCALISE_CMD, LocaliseRule, combine_stage, localise
from .novelty import FEATURES_OUTPUT, NOVELTY_CMD, EnsembleTypicality, Typicality
from .preprocess import Preprocess
from .runtime import OnnxSession

log = logging.getLogger(__name__)
Lap = Callable[[str], None]  # called with a stage's name (``serve.stages.STAGES``) as the stage ends


def _no_lap(stage: str) -> None:
    """No clock: the path as the app runs it."""


def localise_rule(root=None, on: bool | None = None, name: str | None = None) -> LocaliseRule | None:
    """The recorded localisation rule (the manifest's ``localise`` section, ``train.localise``) when ``on``, or,
    with ``on`` None, when that section ships it for model ``name`` (one whose test split it did not lower:
    ``models``); the rule's defaults when ``on`` and nothing is recorded."""
    record = art.localise_record(root)
    if on is False or (on is None and not (record and record.ships_for(name))):
        return None
    return LocaliseRule.from_dict(record.rule if record else {})


@functools.lru_cache(maxsize=4)
def _locator_session(path: str, mtime_ns: int, threads: int | None) -> OnnxSession:
    """One session of the production INT8 file for every model that localises with its class maps (the ensemble
    and the fp32 student each opened their own; ONNX Runtime sessions run safely from several threads). The file's
    modification time is in the key, so a rewritten file is opened afresh."""
    return OnnxSession(Path(path), threads)


@functools.lru_cache(maxsize=16)
def _twin_session(path: str, mtime_ns: int, threads: int | None) -> OnnxSession:
    """One session per ONNX twin file and thread count, shared by the model's own predictor and the ensemble's
    vote over it (Compare opens both: one copy of each network in memory, not two)."""
    return OnnxSession(Path(path), threads)


class Backend(Protocol):
    """What a ``Predictor`` runs a model on: normalised batches (numpy) in, logits and pooled features out."""

    session: OnnxSession | None  # the ONNX session when the model is an ONNX file (its extra outputs), else None
    runtime: str  # "onnxruntime" or "torch": what the Latency page says each row runs on

    def logits(self, batch) -> np.ndarray: ...

    def logits_and_features(self, batch) -> tuple[np.ndarray, np.ndarray | list[np.ndarray]]:
        """The logits and the pooled features the classifier read (the novelty check's input); an ensemble
        gives one feature array per member."""
        ...


class OnnxBackend:
    """An ONNX file on onnxruntime and numpy: the INT8 student, or a torch model's ONNX twin (``onnx`` in its
    manifest entry, ``train.onnx_twins``); the features are an output of the file."""

    runtime = "onnxruntime"

    def __init__(self, session: OnnxSession):
        self.session = session

    @property
    def model(self) -> OnnxSession:
        return self.session

    def logits(self, batch) -> np.ndarray:
        return self.session(np.asarray(batch))

    def logits_and_features(self, batch) -> tuple[np.ndarray, np.ndarray]:
        first = self.session.output_names[0]
        out = self.session.outputs(np.asarray(batch), [first, FEATURES_OUTPUT])
        return out[first], out[FEATURES_OUTPUT]


class EnsembleBackend:
    """The ensemble on its members' ONNX twins: the soft vote of ``training.models.Ensemble`` (the weighted mean of each
    member's ``softmax(logits / T_member)``) in numpy, its log returned as logits, as the torch module does."""

    runtime = "onnxruntime"
    session = None  # no single file: the members' features come from their own twins

    def __init__(self, members: list[OnnxBackend], temperatures: list[float], weights: list[float] | None = None):
        self.members = members
        self.temperatures = [float(t) for t in temperatures]
        w = np.asarray(weights if weights is not None else [1.0] * len(members), dtype=np.float64)
        self.weights = w / w.sum()

    @property
    def model(self):
        return None  # nothing to take gradients of: Explain opens the torch model itself

    def vote(self, member_logits: list[np.ndarray]) -> np.ndarray:
        probs = sum(w * softmax(m, t) for w, m, t in zip(self.weights, member_logits, self.temperatures))
        return np.log(np.maximum(probs, 1e-12)).astype(np.float32)

    def logits(self, batch) -> np.ndarray:
        return self.vote([m.logits(batch) for m in self.members])

    def logits_and_features(self, batch) -> tuple[np.ndarray, list[np.ndarray]]:
        outputs = [m.logits_and_features(batch) for m in self.members]
        return self.vote([logits for logits, _ in outputs]), [features for _, features in outputs]


def has_onnx_twin(entry: art.ModelEntry, protocol: str = SHIPPED_PROTOCOL, root=None) -> bool:
    """Whether a torch model can run on ONNX twins: its own recorded and present (a single network), or every
    member's (the ensemble). What ``onnx_twin_backend`` opens, and what the app asks before loading torch."""
    if entry.format == "safetensors":
        nets = [entry]
    elif entry.format == "ensemble":
        entries = art.model_entries(protocol, root)
        nets = [entries.get(m) for m in entry.members]
    else:
        return False
    return all(n is not None and n.onnx and (art.artifacts_dir(root) / n.onnx["file"]).is_file() for n in nets)


def onnx_twin_backend(entry: art.ModelEntry, protocol: str = SHIPPED_PROTOCOL, root=None,
                      threads: int | None = None) -> OnnxBackend | EnsembleBackend | None:
    """A torch model on its recorded ONNX twin(s), or None when it has none (or a member of an ensemble has none):
    the model then needs torch."""
    if not has_onnx_twin(entry, protocol, root):
        return None
    if entry.format == "safetensors":
        path = art.artifacts_dir(root) / entry.onnx["file"]
        if entry.onnx.get("file_bytes") not in (None, path.stat().st_size):  # another model's file, or a stale one
            raise ValueError(f"{path.name} is not the ONNX twin the manifest records for {entry.name} "
                             f"({path.stat().st_size} bytes, not {entry.onnx['file_bytes']}); run "
                             "`python -m train.onnx_twins`")
        return OnnxBackend(_twin_session(str(path), path.stat().st_mtime_ns, threads))
    if entry.format == "ensemble":
        entries = art.model_entries(protocol, root)
        members = [onnx_twin_backend(entries[m], protocol, root, threads) for m in entry.members]
        return EnsembleBackend(members, entry.member_temperatures or [1.0] * len(members), entry.weights_per_member)


def member_packs(entry: art.ModelEntry, protocol: str, root=None) -> dict[str, tuple[Path, float] | None]:
    """An ensemble's members' novelty packs and thresholds, by member (None for a member without a check or
    missing from the manifest)."""
    entries = art.model_entries(protocol, root)  # one manifest read for all members
    novelty = {m: entries[m].novelty if m in entries else None for m in entry.members}
    return {m: (art.artifacts_dir(root) / n["file"], float(n["threshold"])) if n and n.get("file") else None
            for m, n in novelty.items()}


def novelty_check(entry: art.ModelEntry, protocol: str, root, backend: Backend) -> Typicality | EnsembleTypicality | None:
    """The recorded novelty check of ``entry`` (``train.novelty``), ready to score ``model``'s features;
    None, with a warning, when it is recorded but cannot run: a pack missing or of an older format, the ONNX
    features output missing, or (the ensemble) a member's check re-fitted since the ensemble's was (its
    standardisation is stale)."""
    if entry.format == "ensemble":
        stats, packs = entry.novelty.get("members", {}), member_packs(entry, protocol, root)
        usable = all(packs[m] is not None and packs[m][0].is_file() and m in stats
                     and stats[m].get("member_threshold") == packs[m][1] for m in entry.members)
        files = [packs[m][0] for m in entry.members] if usable else []
    else:
        files = [art.artifacts_dir(root) / entry.novelty["file"]]
        usable = files[0].is_file() and (backend.session is None or FEATURES_OUTPUT in backend.session.output_names)
    try:
        typicality = [Typicality.load(f) for f in files] if usable else None
    except ValueError:  # a pack of an older format
        typicality = None
    if typicality is None:  # the answers would lose a safety signal, so say so
        log.warning("%s: its novelty check is recorded but cannot run (a pack missing or of an older format, the "
                    "ONNX '%s' output missing, or a member's check changed since); run `%s --models %s`", entry.name,
                    FEATURES_OUTPUT, NOVELTY_CMD, " ".join([*entry.members, entry.name]) if entry.members else entry.name)
        return None
    if entry.format != "ensemble":
        return typicality[0]
    return EnsembleTypicality(tuple(typicality), tuple(float(stats[m]["centre"]) for m in entry.members),
                              tuple(float(stats[m]["scale"]) for m in entry.members))


class Predictor:
    """A shipped model ready to classify PIL images; read-only after construction (thread-safe).

    ``backend``: what runs the model (``Backend``); None opens an ONNX file on onnxruntime (a torch model's backend
    comes from ``flowers_core.open_model.open_predictor``, so this package never imports torch).
    ``threads``: intra-op threads (None: the runtime's default).
    ``gate``: True loads the shipped flower gate when there is one; pass a ``FlowerGate`` to share one
    between models, or None for no gate (then no photo is called "not a flower").
    ``novelty``: False leaves the model's novelty check off (entropy alone decides "not sure"), for the
    benchmarks' measurement of what the check changes.
    ``localise``: classify a crop around the flower too and combine the two views (``localise``): None
    follows the manifest (on when ``train.localise`` shipped it for this model), True/False force it on/off (with
    the recorded rule), or a ``LocaliseRule``. ``locator``: the ONNX session whose class maps find the flower (default: this
    model's own when it has them, else the production INT8 file's)."""

    localise_rule: LocaliseRule | None = None
    locator: OnnxSession | None = None

    typicality: Typicality | EnsembleTypicality | None = None  # the novelty check, when the model ships one
    typicality_threshold: float | None = None

    def __init__(self, name: str, protocol: str = SHIPPED_PROTOCOL, root=None, gate=True, threads: int | None = None,
                 novelty: bool = True, localise: bool | LocaliseRule | None = None, locator: OnnxSession | None = None,
                 backend: Backend | None = None):
        self.name = name
        self.entry = art.model_entry(name, protocol, root)
        self.classes = art.class_names(root)
        if backend is None:
            if self.entry.format != "onnx":
                raise ValueError(f"{name} is a torch model ({self.entry.format}): open it with "
                                 "flowers_core.open_model.open_predictor, which brings its torch backend")
            backend = OnnxBackend(OnnxSession(art.model_file(self.entry, root), threads))
        self.backend = backend
        if novelty and self.entry.novelty:
            self.typicality = novelty_check(self.entry, protocol, root, self.backend)
            if self.typicality is not None:
                self.typicality_threshold = float(self.entry.novelty["threshold"])
        self.preprocess = Preprocess.from_dict(self.entry.preprocess)
        self.temperature = self.entry.temperature
        self.threshold = self.entry.entropy_threshold
        if gate is True:
            gate = FlowerGate(root) if has_gate(root) else None
        self.gate = gate or None
        rule = localise if isinstance(localise, LocaliseRule) else localise_rule(root, localise, name)
        if rule is not None:
            self.locator = locator or self.own_locator(protocol, root, threads)
            self.localise_rule = rule if self.locator is not None else None

    def own_locator(self, protocol: str, root, threads: int | None) -> OnnxSession | None:
        """This model's session when it outputs class maps, else the production INT8 file's; None (with a
        warning) when neither does."""
        own = self.backend.session
        if own is not None and CLASS_MAPS_OUTPUT in own.output_names:
            return own
        production = art.model_entry(catalog.PRODUCTION, protocol, root)
        if Preprocess.from_dict(production.preprocess) != self.preprocess:  # its maps would be of another view
            log.warning("%s: localisation asked for, but its view differs from %s's", self.name, production.name)
            return None
        path = art.model_file(production, root)
        session = _locator_session(str(path), path.stat().st_mtime_ns, threads) if path.is_file() else None
        if session is None or CLASS_MAPS_OUTPUT not in session.output_names:
            log.warning("%s: localisation asked for, but %s has no '%s' output; run `%s`", self.name, path.name,
                        CLASS_MAPS_OUTPUT, LOCALISE_CMD)
            return None
        return session

    @property
    def model(self):
        """What the backend runs: the torch module (Explain's maps need it) or the ONNX session."""
        return self.backend.model

    @property
    def runtime(self) -> str:
        """What the model runs on: "onnxruntime" (the INT8 student, an ONNX twin) or "torch"."""
        return getattr(self.backend, "runtime", "torch")

    @property
    def flower_threshold(self) -> float | None:
        return None if self.gate is None else self.gate.threshold

    def logits(self, batch) -> np.ndarray:
        """Normalised batch (numpy array or torch tensor) -> the model's logits (numpy)."""
        return self.backend.logits(batch)

    def logits_and_features(self, batch) -> tuple[np.ndarray, np.ndarray | list[np.ndarray]]:
        return self.backend.logits_and_features(batch)

    def logits_and_typicality(self, batch, lap: Lap = _no_lap) -> tuple[np.ndarray, np.ndarray | None]:
        """The logits, and each image's typicality when the model's novelty check is on (else None)."""
        if self.typicality is None:
            logits = self.logits(batch)
            lap("classify")
            return logits, None
        logits, features = self.logits_and_features(batch)
        lap("classify")
        typicality = self.typicality.scores(features)
        lap("novelty check")
        return logits, typicality

    def predict(self, img: Image.Image) -> Prediction:
        return self.predict_many([img])[0]

    def predict_many(self, images: list[Image.Image], flower_scores=None, lap: Lap = _no_lap) -> list[Prediction]:
        """Classify a batch; the gate scores them too unless ``flower_scores`` (computed once, shared by
        several models) are given. ``latency_ms`` is the batch's time per image. ``lap(stage)`` is called as each
        of ``STAGES`` ends (``serve.stages`` times the app's path with it: the same path, with a clock)."""
        start = time.perf_counter()
        batch = np.concatenate([self.preprocess.array_from_pil(img) for img in images])
        lap("decode")
        if flower_scores is None and self.gate is not None:
            same = self.gate.preprocess == self.preprocess  # one resize for both (the shipped gate's default)
            flower_scores = self.gate.scores(batch) if same else self.gate.score_images(images)
        lap("flower gate")
        return self.predict_batch(batch, flower_scores, start, images, lap)

    def logits_typicality_and_maps(self, batch, lap: Lap = _no_lap) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """``logits_and_typicality`` and the locator's class activation map of its best guess per image
        ([B, h, w]); one pass when the locator is this model's own session."""
        batch = np.asarray(batch)
        own = self.locator is self.backend.session
        names = [self.locator.output_names[0], CLASS_MAPS_OUTPUT]
        if own and self.typicality is not None:
            names.append(FEATURES_OUTPUT)
        out = self.locator.outputs(batch, names)
        if own:
            logits = out[names[0]]
            lap("classify")
            typicality = None if self.typicality is None else self.typicality.scores(out[FEATURES_OUTPUT])
            lap("novelty check")
        else:
            lap("find the flower")  # the locator's own pass
            logits, typicality = self.logits_and_typicality(batch, lap)
        best = out[names[0]].argmax(-1)
        return logits, typicality, out[CLASS_MAPS_OUTPUT][np.arange(len(best)), best]

    def localised(self, images: list[Image.Image], batch, flower_scores, start: float,
                  lap: Lap = _no_lap) -> list[Prediction]:
        """``predict_batch`` with the localisation stage: each photo the gate passes gets the crop around its
        strongest bloom (``localise.localise`` on ``class_maps``) classified too, the two views combined by the
        rule's ``combine``; the verdict is recomputed from the combined probabilities, the whole photo's flower
        score and the views' typicality (``combine_typicality``). A photo the gate rejects, or whose bloom fills the view, is
        answered from the whole photo alone (its ``localisation.used`` False)."""
        rule, pre = self.localise_rule, self.preprocess
        logits, typicality, maps = self.logits_typicality_and_maps(batch, lap)
        whole = softmax(logits, self.temperature).astype(np.float32)
        places = [localise(m, img.size, pre.input_size, pre.resize_size, rule) for m, img in zip(maps, images)]
        if flower_scores is not None and self.gate is not None:
            for place, passed in zip(places, self.gate.passes(flower_scores)):
                place.used = place.used and bool(passed)
        cropped = [i for i, place in enumerate(places) if place.used]
        probs, typical = whole, None if typicality is None else np.asarray(typicality, dtype=np.float64)
        if cropped:
            crops = np.concatenate([pre.array_from_pil(images[i].crop(places[i].box.as_tuple())) for i in cropped])
            lap("find the flower")
            crop_logits, crop_typicality = self.logits_and_typicality(crops, lap)
            crop_probs = softmax(crop_logits, self.temperature).astype(np.float32)
            probs, typical = combine_stage(whole, typical, crop_probs, crop_typicality, cropped, rule.combine)
        latency = (time.perf_counter() - start) * 1000 / len(probs)
        scores = [None] * len(probs) if flower_scores is None else [float(s) for s in flower_scores]
        typical = [None] * len(probs) if typical is None else [float(t) for t in typical]
        preds = [self.describe(p, latency, s, t) for p, s, t in zip(probs, scores, typical)]
        alone = [None] * len(probs) if typicality is None else [float(t) for t in typicality]
        for pred, place, p, s, t in zip(preds, places, whole, scores, alone):
            pred.localisation, pred.whole_photo = place, self.describe(p, latency, s, t)
        lap("find the flower")  # locating, cropping and combining the two views
        return preds

    def predict_batch(self, batch, flower_scores=None, start: float | None = None,
                      images: list[Image.Image] | None = None, lap: Lap = _no_lap) -> list[Prediction]:
        """Classify a preprocessed batch (array or tensor in this model's view); ``flower_scores`` from the
        gate, if any. ``latency_ms`` is the time per image since ``start`` (default: now). With localisation
        on and the ``images`` the batch was made from, each flower's crop is classified too (``localised``)."""
        start = time.perf_counter() if start is None else start
        if self.localise_rule is not None and images is not None:
            return self.localised(images, batch, flower_scores, start, lap)
        logits, typicality = self.logits_and_typicality(batch, lap)
        probs = softmax(logits, self.temperature).astype(np.float32)
        latency = (time.perf_counter() - start) * 1000 / len(probs)
        scores = [None] * len(probs) if flower_scores is None else [float(s) for s in flower_scores]
        typical = [None] * len(probs) if typicality is None else [float(t) for t in typicality]
        return [self.describe(p, latency, s, t) for p, s, t in zip(probs, scores, typical)]

    def combine(self, preds: list[Prediction]) -> Prediction:
        """One answer from several photos of the same plant: ``combine_probs`` of their (calibrated)
        probabilities, the mean flower score and typicality, and the verdict recomputed from those by
        ``verdict``. ``latency_ms`` is the total of the photos'."""
        if len(preds) == 1:
            return preds[0]

        def mean_of(values):
            values = [v for v in values if v is not None]
            return float(np.mean(values)) if values else None

        return self.describe(combine_probs([p.probs for p in preds]), sum(p.latency_ms for p in preds),
                             mean_of(p.flower_score for p in preds), mean_of(p.typicality for p in preds))

    def answer(self, preds: list[Prediction]) -> tuple[Prediction, Agreement]:
        """The answer to photos of one plant and which of them agree (``agreeing_photos``): their combined answer
        (``combine``) when every photo agrees, else the first photo's own (the page then shows each photo's answer
        and says which disagree: a different flower is never outvoted)."""
        agreement = agreeing_photos(preds)
        return (preds[0] if agreement.apart else self.combine(preds)), agreement

    def doubts(self, entropy: float, typicality: float | None) -> bool | None:
        """The model's own doubt (the ``uncertain`` of the CLI): its entropy or its novelty check says "not
        sure", the flower gate aside; None when the model has no threshold for either."""
        if self.threshold is None and self.typicality_threshold is None:
            return None
        return verdict(entropy, self.threshold, None, None, typicality, self.typicality_threshold) == "not_sure"

    def verdict_at(self, pred: Prediction, typicality_threshold: float | None) -> str:
        """The verdict ``pred`` would get with the novelty check at another threshold, the rest unchanged."""
        return verdict(pred.entropy, self.threshold, pred.flower_score, self.flower_threshold, pred.typicality,
                       typicality_threshold)

    def describe(self, probs: np.ndarray, latency_ms: float = 0.0, flower_score: float | None = None,
                 typicality: float | None = None) -> Prediction:
        top = np.argsort(-probs)[:TOP_LISTED]
        ent = float(entropy_of(probs[None])[0])
        return Prediction(
            class_id=int(top[0]), label=self.classes[top[0]], prob=float(probs[top[0]]), entropy=ent,
            top5=[(self.classes[i], float(probs[i])) for i in top],
            uncertain=self.doubts(ent, typicality),
            verdict=verdict(ent, self.threshold, flower_score, self.flower_threshold, typicality,
                            self.typicality_threshold),
            unfamiliar=unfamiliar(typicality, self.typicality_threshold),
            flower_score=flower_score, typicality=typicality, latency_ms=latency_ms, probs=probs,
        )
