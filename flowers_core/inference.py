"""Image bytes -> safe RGB -> prediction. The one path used by the CLI, the app and the benchmarks.

Users upload anything: ``load_image`` turns every supported file into an upright 8-bit RGB image
or raises ``ImageError`` with a message meant for a person, never a traceback.
"""
from __future__ import annotations

import functools
import io
import itertools
import logging
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import artifacts as art
from . import catalog
from .data import SHIPPED_PROTOCOL
from .evaluate import entropy as entropy_of
from .evaluate import softmax
from .gate import FlowerGate, has_gate
from .localise import (
    CLASS_MAPS_OUTPUT,
    LOCALISE_CMD,
    Localisation,
    LocaliseRule,
    combine_stage,
    localise,
)
from .novelty import FEATURES_OUTPUT, NOVELTY_CMD, EnsembleTypicality, Typicality
from .preprocess import Preprocess
from .runtime import OnnxSession

log = logging.getLogger(__name__)

# The one upload size limit, in bytes, as people count them (1 MB = 1,000,000 bytes, like browsers and
# phones). The app's `.streamlit/config.toml` sets its uploader's transport cap well above this
# (server.maxUploadSize, in MiB) so that this module's message is what a visitor reads;
# tests/test_app.py checks that the two agree.
MAX_MB = 30
MAX_BYTES = MAX_MB * 1_000_000  # larger than any phone photo
# Decompression-bomb guard for the formats decoded at full size (PNG, TIFF, HEIC…): 70 megapixels takes an
# 8000×8000 image (64 MP) and today's 50-64 MP phone and camera files; one decodes to ~210 MB as RGB (~280 MB
# RGBA), one at a time (the lock below), then is reduced. A JPEG is decoded reduced (``draft``: at most
# 1/8 of each side) so it costs a fraction of that: FORMAT_MAX_PIXELS lets JPEGs go up to 200 MP (the
# largest phone sensors), which draft-decode to ~3 MP.
MAX_PIXELS = 70_000_000
# Bounded memory for large accepted images: a JPEG is decoded reduced (``draft``); any other format above
# LARGE_PIXELS is decoded one at a time (the lock) and reduced right away, before the RGB conversions copy
# it, so several visitors' huge PNGs never hold more than one full-size decode in memory at once
# (`python -m tools.decode_memory` measures it: 4 near-limit files at once, bounded vs not).
LARGE_PIXELS = 16_000_000
REDUCED_SIDE = 1024  # the reduced image keeps at least this many pixels on its shorter side
# Formats whose decoder holds several full-size copies: Pillow's WebP decoder peaks at ~16 bytes a pixel
# (~950 MB at 60 MP, against ~240-470 MB for a PNG), so WebP gets a lower pixel limit (phones save 12-50 MP).
FORMAT_MAX_PIXELS = {"WEBP": 25_000_000, "JPEG": 200_000_000, "MPO": 200_000_000}
_LARGE_DECODE = threading.Lock()
MIN_SIDE = 16  # below this there is nothing to classify
SMALL_SIDE = 96  # below this we warn that the result is unreliable

try:  # HEIC/HEIF from phones, when the optional plugin is installed
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - optional
    pass


class ImageError(ValueError):
    """The upload cannot be classified; ``str(e)`` is a message for the person who uploaded it."""


def load_image(source: bytes | str | Path | BinaryIO, notes: list[str] | None = None) -> Image.Image:
    """Decode an upload into an upright RGB image; append human-readable remarks to ``notes``."""
    notes = notes if notes is not None else []
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"File not found: {path}")
        if path.stat().st_size > MAX_BYTES:
            raise ImageError(too_large_message(path.stat().st_size))
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        data = source.read(MAX_BYTES + 1)
    if len(data) == 0:
        raise ImageError("The file is empty (0 bytes).")
    if len(data) > MAX_BYTES:
        raise ImageError(too_large_message(len(data)))

    previous = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = max(MAX_PIXELS, *FORMAT_MAX_PIXELS.values())  # each format's own bound below
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            limit = FORMAT_MAX_PIXELS.get(img.format, MAX_PIXELS)
            if img.width * img.height > limit:
                raise ImageError(f"This image is too large to process safely ({img.width}×{img.height} pixels; "
                                 f"the limit is {limit // 1_000_000} megapixels for {img.format}). "
                                 "Please upload it smaller, or as a JPEG.")
            if getattr(img, "n_frames", 1) > 1:
                if img.format != "MPO":  # phone JPEGs with a depth/preview frame are not animations
                    notes.append(f"Animated image: the first of {img.n_frames} frames was used.")
                img.seek(0)
            if img.format == "JPEG":  # decode a reduced JPEG directly: faster and lighter for big photos
                img.draft("RGB", (REDUCED_SIDE, REDUCED_SIDE))
            if img.width * img.height > LARGE_PIXELS and img.format != "JPEG":
                with _LARGE_DECODE:
                    img.load()
                    img = reduced(img)
            else:
                img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"The image is too large to process safely (limit {MAX_PIXELS // 1_000_000} "
                         "megapixels).") from None
    except UnidentifiedImageError:
        raise ImageError("This file is not an image we can read. Please upload a JPEG, PNG, WebP or HEIC photo.") from None
    except ImageError:
        raise
    except Exception as e:  # OSError, SyntaxError, struct.error, EOFError…: malformed files break decoders in many ways
        # the message is for the visitor; the decoder's own words stay in the exception chain, for developers
        raise ImageError("The image file is damaged or incomplete and cannot be opened (it may have been cut off while "
                         "copying or uploading). Please try the original photo again.") from e
    finally:
        Image.MAX_IMAGE_PIXELS = previous

    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # malformed EXIF: keep the pixels as stored
        notes.append("The photo's orientation tag could not be read; the image is used as stored.")
    try:
        img = to_rgb(img, notes)
    except Exception as e:  # exotic modes (LAB, HSV, multi-band TIFF) PIL cannot convert
        raise ImageError(f"This image's colour format ({img.mode}) is not supported; please upload a normal "
                         f"RGB photo ({type(e).__name__}).") from None
    if min(img.size) < MIN_SIDE:
        raise ImageError(f"The image is too small to classify ({img.width}×{img.height} px); please upload a larger photo "
                         f"(at least {SMALL_SIDE} px per side gives a reliable answer).")
    if min(img.size) < SMALL_SIDE:
        notes.append(f"The image is very small ({img.width}×{img.height} px); the result may be unreliable.")
    return img


def size_limit_text() -> str:
    """The one upload limit as every message and help text says it."""
    return f"{MAX_MB} MB ({MAX_BYTES:,} bytes)"


def too_large_message(size: int) -> str:
    megabytes = -(-size // 100_000) / 10  # rounded up, so a file just over the limit never reads as "30.0 MB"
    return (f"The file is too large ({megabytes:.1f} MB, {size:,} bytes); the limit is {size_limit_text()}. "
            "Please upload a smaller photo (a phone photo is usually 2–12 MB).")


def reduced(img: Image.Image, side: int | None = None) -> Image.Image:
    """A decoded image shrunk by an integer factor (box filter, one pass) so that its
    shorter side stays at least ``side``; the modes ``Image.reduce`` cannot average become their nearest
    averageable mode first (what ``to_rgb`` would make of them anyway)."""
    factor = min(img.size) // (side or REDUCED_SIDE)
    if factor < 2:
        return img
    if img.mode == "1":
        img = img.convert("L")
    elif img.mode in ("P", "PA"):
        img = img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB")
    elif img.mode.startswith("I;16"):  # reduce() refuses 16-bit; a box resize is the same average, no 32-bit copy
        return img.resize((-(-img.width // factor), -(-img.height // factor)), Image.BOX)  # as reduce() rounds
    try:
        return img.reduce(factor)
    except ValueError:  # an exotic mode: keep the full-size image (still decoded one at a time)
        return img


def to_rgb(img: Image.Image, notes: list[str]) -> Image.Image:
    """Any PIL mode -> 8-bit RGB; transparency is composited on white (how people see a PNG)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.astype(np.uint8), "L")
        notes.append("High bit-depth image converted to 8 bits.")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
        notes.append("Transparent areas were filled with white.")
    if img.mode == "CMYK":
        notes.append("CMYK image converted to RGB.")
    elif img.mode == "L":
        notes.append("Greyscale image: colour is an important cue for flowers, so confidence may be lower.")
    return img.convert("RGB")


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
    """Whether photos sent as one plant do not all agree (``agreeing_photos``): at least one of them is left out
    of the combined answer, or none is combined."""
    return bool(agreeing_photos(preds).apart)


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


def member_packs(entry: art.ModelEntry, protocol: str, root=None) -> dict[str, tuple[Path, float] | None]:
    """An ensemble's members' novelty packs and thresholds, by member (None for a member without a check or
    missing from the manifest)."""
    entries = art.model_entries(protocol, root)  # one manifest read for all members
    novelty = {m: entries[m].novelty if m in entries else None for m in entry.members}
    return {m: (art.artifacts_dir(root) / n["file"], float(n["threshold"])) if n and n.get("file") else None
            for m, n in novelty.items()}


def novelty_check(entry: art.ModelEntry, protocol: str, root, model) -> Typicality | EnsembleTypicality | None:
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
        usable = files[0].is_file() and (not isinstance(model, OnnxSession) or FEATURES_OUTPUT in model.output_names)
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

    An ONNX model (the INT8 student) runs on onnxruntime and numpy only, so a process that classifies
    with it never loads torch; torch models are rebuilt by ``weights.load_model``.
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
                 novelty: bool = True, localise: bool | LocaliseRule | None = None, locator: OnnxSession | None = None):
        self.name = name
        self.entry = art.model_entry(name, protocol, root)
        self.classes = art.class_names(root)
        if self.entry.format == "onnx":
            self.model = OnnxSession(art.model_file(self.entry, root), threads)
        else:
            import torch  # only when a torch model is asked for: the ONNX path starts without it

            from .weights import load_model

            if threads:
                torch.set_num_threads(threads)
            self.model = load_model(name, protocol, root)
        if novelty and self.entry.novelty:
            self.typicality = novelty_check(self.entry, protocol, root, self.model)
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
        if isinstance(self.model, OnnxSession) and CLASS_MAPS_OUTPUT in self.model.output_names:
            return self.model
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
    def runs_on_torch(self) -> bool:
        return not isinstance(self.model, OnnxSession)

    @property
    def flower_threshold(self) -> float | None:
        return None if self.gate is None else self.gate.threshold

    def logits(self, batch) -> np.ndarray:
        """Normalised batch (numpy array or torch tensor) -> the model's logits (numpy)."""
        if not self.runs_on_torch:
            return self.model(np.asarray(batch))
        import torch  # already loaded by the torch model this predictor holds

        with torch.inference_mode():
            return self.model(torch.as_tensor(batch)).float().numpy()

    def logits_and_features(self, batch) -> tuple[np.ndarray, np.ndarray | list[np.ndarray]]:
        """The logits and the pooled features the classifier read (the novelty check's input): the INT8
        file's features output, a torch model's pooling, or, for the ensemble, one array per member."""
        if not self.runs_on_torch:
            out = self.model.outputs(np.asarray(batch), [self.model.output_names[0], FEATURES_OUTPUT])
            return out[self.model.output_names[0]], out[FEATURES_OUTPUT]
        import torch  # already loaded by the torch model this predictor holds

        with torch.inference_mode():
            x = torch.as_tensor(batch)
            if self.entry.format == "ensemble":
                logits, features = self.model.logits_and_member_features(x)
                return logits.float().numpy(), [f.float().numpy() for f in features]
            logits, features = self.model.logits_and_features(x)
            return logits.float().numpy(), features.float().numpy()

    def logits_and_typicality(self, batch) -> tuple[np.ndarray, np.ndarray | None]:
        """The logits, and each image's typicality when the model's novelty check is on (else None)."""
        if self.typicality is None:
            return self.logits(batch), None
        logits, features = self.logits_and_features(batch)
        return logits, self.typicality.scores(features)

    def predict(self, img: Image.Image) -> Prediction:
        return self.predict_many([img])[0]

    def predict_many(self, images: list[Image.Image], flower_scores=None) -> list[Prediction]:
        """Classify a batch; the gate scores them too unless ``flower_scores`` (computed once, shared by
        several models) are given. ``latency_ms`` is the batch's time per image."""
        start = time.perf_counter()
        batch = np.concatenate([self.preprocess.array_from_pil(img) for img in images])
        if flower_scores is None and self.gate is not None:
            same = self.gate.preprocess == self.preprocess  # one resize for both (the shipped gate's default)
            flower_scores = self.gate.scores(batch) if same else self.gate.score_images(images)
        return self.predict_batch(batch, flower_scores, start, images)

    def logits_typicality_and_maps(self, batch) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """``logits_and_typicality`` and the locator's class activation map of its best guess per image
        ([B, h, w]); one pass when the locator is this model's own session."""
        batch = np.asarray(batch)
        own = self.locator is self.model
        names = [self.locator.output_names[0], CLASS_MAPS_OUTPUT]
        if own and self.typicality is not None:
            names.append(FEATURES_OUTPUT)
        out = self.locator.outputs(batch, names)
        if own:
            logits = out[names[0]]
            typicality = None if self.typicality is None else self.typicality.scores(out[FEATURES_OUTPUT])
        else:
            logits, typicality = self.logits_and_typicality(batch)
        best = out[names[0]].argmax(-1)
        return logits, typicality, out[CLASS_MAPS_OUTPUT][np.arange(len(best)), best]

    def localised(self, images: list[Image.Image], batch, flower_scores, start: float) -> list[Prediction]:
        """``predict_batch`` with the localisation stage: each photo the gate passes gets the crop around its
        strongest bloom (``localise.localise`` on ``class_maps``) classified too, the two views combined by the
        rule's ``combine``; the verdict is recomputed from the combined probabilities, the whole photo's flower
        score and the views' typicality (``combine_typicality``). A photo the gate rejects, or whose bloom fills the view, is
        answered from the whole photo alone (its ``localisation.used`` False)."""
        rule, pre = self.localise_rule, self.preprocess
        logits, typicality, maps = self.logits_typicality_and_maps(batch)
        whole = softmax(logits, self.temperature).astype(np.float32)
        places = [localise(m, img.size, pre.input_size, pre.resize_size, rule) for m, img in zip(maps, images)]
        if flower_scores is not None and self.gate is not None:
            for place, passed in zip(places, self.gate.passes(flower_scores)):
                place.used = place.used and bool(passed)
        cropped = [i for i, place in enumerate(places) if place.used]
        probs, typical = whole, None if typicality is None else np.asarray(typicality, dtype=np.float64)
        if cropped:
            crops = np.concatenate([pre.array_from_pil(images[i].crop(places[i].box.as_tuple())) for i in cropped])
            crop_logits, crop_typicality = self.logits_and_typicality(crops)
            crop_probs = softmax(crop_logits, self.temperature).astype(np.float32)
            probs, typical = combine_stage(whole, typical, crop_probs, crop_typicality, cropped, rule.combine)
        latency = (time.perf_counter() - start) * 1000 / len(probs)
        scores = [None] * len(probs) if flower_scores is None else [float(s) for s in flower_scores]
        typical = [None] * len(probs) if typical is None else [float(t) for t in typical]
        preds = [self.describe(p, latency, s, t) for p, s, t in zip(probs, scores, typical)]
        alone = [None] * len(probs) if typicality is None else [float(t) for t in typicality]
        for pred, place, p, s, t in zip(preds, places, whole, scores, alone):
            pred.localisation, pred.whole_photo = place, self.describe(p, latency, s, t)
        return preds

    def predict_batch(self, batch, flower_scores=None, start: float | None = None,
                      images: list[Image.Image] | None = None) -> list[Prediction]:
        """Classify a preprocessed batch (array or tensor in this model's view); ``flower_scores`` from the
        gate, if any. ``latency_ms`` is the time per image since ``start`` (default: now). With localisation
        on and the ``images`` the batch was made from, each flower's crop is classified too (``localised``)."""
        start = time.perf_counter() if start is None else start
        if self.localise_rule is not None and images is not None:
            return self.localised(images, batch, flower_scores, start)
        logits, typicality = self.logits_and_typicality(batch)
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
