"""The manifest (``artifacts/manifest.json``) and its typed entries, class names, splits and saved probabilities.

Torch-free, so the app's Classify page starts without torch. The weights of torch models are read
and written by ``training.weights`` (``load_model(name)`` is how training, evaluation and the torch
pages get a model); the INT8 student is a self-contained ONNX file run by ``serve.runtime``.
Nothing here unpickles: the manifest is JSON, probabilities are plain ``.npz`` arrays.
"""
from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import numpy as np

from . import catalog
from .paths import MANIFEST, ArtifactMissing, artifacts_dir, split_file
from .splits import SHIPPED_PROTOCOL, load_split


class _Entry:
    """A typed manifest section: the fields its readers use are typed; ``details`` keeps what only reports read,
    written at the top level beside the typed fields, so the manifest stays one flat object per entry."""

    details: dict

    @classmethod
    def from_dict(cls, d: dict):
        typed = {f.name for f in fields(cls)} - {"details"}
        return cls(**{k: v for k, v in d.items() if k in typed},
                   details={k: v for k, v in d.items() if k not in typed})

    def to_dict(self) -> dict:
        """The manifest's JSON object: typed fields (those left at their default are not written), then ``details``."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            if f.name != "details" and (default is MISSING or value != default):
                out[f.name] = value
        return {**out, **self.details}


@dataclass
class ModelEntry(_Entry):
    """One model's record in the manifest (``models.<protocol>.<name>``), written by the command that
    produces it (``catalog``'s ``produced_by``) and read by everything else through these fields.

    ``format`` says how it runs: "safetensors" (a FlowerNet: ``arch``/``head``/``frozen_stages`` and the
    trained late stages in ``weights``), "ensemble" (soft vote of ``members``) or "onnx" (``file``).
    ``details`` keeps what only reports read (hyper-parameters, training log, timings, ...).
    """

    name: str
    level: int
    protocol: str
    format: str
    preprocess: dict
    description: str = ""
    split: str = ""
    num_classes: int | None = None  # None: the dataset's 102
    params: int | None = None
    metrics: dict = field(default_factory=dict)  # {"val": {...}, "test": {...}} from evaluate.summary
    probs: dict = field(default_factory=dict)  # {"val": rel, "test": rel}
    metrics_file: str | None = None
    uncertainty: dict = field(default_factory=dict)  # temperature, entropy_threshold, ... (train.uncertainty)
    latency: dict | None = None
    weights: str | None = None  # safetensors
    arch: str | None = None
    head: str | None = None
    frozen_stages: int | None = None
    members: list = field(default_factory=list)  # ensemble
    weights_per_member: list | None = None
    member_temperatures: list | None = None
    file: str | None = None  # onnx
    fp32_twin: str | None = None
    quantization: dict | None = None
    novelty: dict | None = None  # the typicality check (file, threshold, ...; train.novelty)
    onnx: dict | None = None  # a torch model's ONNX twin (file, check against torch; train.onnx_twins)
    details: dict = field(default_factory=dict)

    def top1(self, part: str = "test") -> float | None:
        return self.metrics.get(part, {}).get("top1")

    @property
    def temperature(self) -> float:
        return float(self.uncertainty.get("temperature", 1.0))

    @property
    def entropy_threshold(self) -> float | None:
        return self.uncertainty.get("entropy_threshold")

    def own_file(self) -> str | None:
        """The file this entry is loaded from (none for an ensemble: its members' files)."""
        return self.file if self.format == "onnx" else self.weights


@dataclass
class GateEntry(_Entry):
    """The flower gate (the manifest's ``gate``), written by ``fits.build_gate`` and read by ``gate.FlowerGate``."""

    name: str
    format: str
    file: str
    preprocess: dict
    classes: list  # the ImageNet classes whose softmax mass is the flower score
    threshold: float
    description: str = ""
    file_bytes: int | None = None
    split: str = ""
    mass: float | None = None
    target_pass_rate: float | None = None
    val_pass_rate: float | None = None
    val_score_median: float | None = None
    produced_by: str = ""
    date: str = ""
    details: dict = field(default_factory=dict)


@dataclass
class ReferencePhotosEntry(_Entry):
    """The reference photos of every species (the manifest's ``reference_photos``), written by
    ``gallery.build_reference`` and read by ``gallery.ReferencePhotos``."""

    file: str
    protocol: str
    split: str  # always "train": the app never shows a validation or test image as a reference
    per_class: int
    size_px: int
    count: int = 0
    command: str = ""
    details: dict = field(default_factory=dict)


@dataclass
class LocaliseEntry(_Entry):
    """The localisation stage's rule (the manifest's ``localise``), chosen by ``localise_fit.run`` on validation and
    shipped for ``models`` (those whose test split ``localise_fit.score_test`` found not lowered); read by
    ``predictor.localise_rule``."""

    rule: dict
    shipped: bool
    locator: str = ""  # the model whose class maps find the flower
    models: list = field(default_factory=list)
    test_top1: dict = field(default_factory=dict)
    command: str = ""
    date: str = ""
    details: dict = field(default_factory=dict)

    def ships_for(self, name: str) -> bool:
        return self.shipped and name in self.models


def manifest_path(root=None) -> Path:
    return artifacts_dir(root) / MANIFEST


def read_manifest(root=None) -> dict:
    path = manifest_path(root)
    if not path.is_file():
        return {"models": {}, "classes": [], "splits": {}}
    return json.loads(path.read_text())


def write_manifest(manifest: dict, root=None) -> None:
    path = manifest_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=False))
    tmp.replace(path)


def update_manifest(root=None, **sections) -> dict:
    """Merge top-level sections (dicts are merged one level deep) and write the manifest."""
    manifest = read_manifest(root)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(manifest.get(key), dict):
            manifest[key].update(value)
        else:
            manifest[key] = value
    write_manifest(manifest, root)
    return manifest


def record_model(entry: ModelEntry, root=None) -> None:
    manifest = read_manifest(root)
    manifest.setdefault("models", {}).setdefault(entry.protocol, {})[entry.name] = entry.to_dict()
    write_manifest(manifest, root)


def _section(key: str, entry_type, root=None):
    """The manifest's section ``key`` as an ``entry_type``, or None when it is not recorded."""
    d = read_manifest(root).get(key)
    return entry_type.from_dict(d) if d else None


def gate_record(root=None) -> GateEntry | None:
    return _section("gate", GateEntry, root)


def record_gate(entry: GateEntry, root=None) -> None:
    manifest = read_manifest(root)
    manifest["gate"] = entry.to_dict()
    write_manifest(manifest, root)


def localise_record(root=None) -> LocaliseEntry | None:
    return _section("localise", LocaliseEntry, root)


def reference_photos_record(root=None) -> ReferencePhotosEntry | None:
    return _section("reference_photos", ReferencePhotosEntry, root)


def model_entries(protocol: str = SHIPPED_PROTOCOL, root=None) -> dict[str, ModelEntry]:
    """Every recorded model of ``protocol``, by name (manifest order)."""
    recorded = read_manifest(root).get("models", {}).get(protocol, {})
    return {name: ModelEntry.from_dict(d) for name, d in recorded.items()}


def model_entry(name: str, protocol: str = SHIPPED_PROTOCOL, root=None) -> ModelEntry:
    entry = read_manifest(root).get("models", {}).get(protocol, {}).get(name)
    if entry is None:
        raise ArtifactMissing(
            f"model '{name}' ({protocol} protocol) is not in {manifest_path(root)}; "
            f"produce it with `{catalog.produced_by(name)}`."
        )
    return ModelEntry.from_dict(entry)


def read_split(protocol: str, root=None) -> dict[str, list[int]]:
    """The split training wrote for ``protocol`` (image ids per part), or ArtifactMissing naming the command."""
    path = artifacts_dir(root) / split_file(protocol)
    if not path.is_file():
        raise ArtifactMissing(f"{path} is missing; run `python -m train.all --protocol {protocol}` "
                              "(training writes the splits).")
    return load_split(path)


def model_file(entry: ModelEntry, root=None) -> Path:
    """The file an entry is loaded from, which must exist (an ArtifactMissing naming its command otherwise)."""
    path = artifacts_dir(root) / (entry.own_file() or "")
    if not entry.own_file() or not path.is_file():
        raise ArtifactMissing(f"{path} is missing; produce it with `{catalog.produced_by(entry.name)}`.")
    return path


def model_files(name: str, protocol: str = SHIPPED_PROTOCOL, root=None) -> list[str]:
    """The files ``name`` is loaded from: its own, or its members' for an ensemble."""
    entry = model_entry(name, protocol, root)
    if entry.format == "ensemble":
        return [f for m in entry.members for f in model_files(m, protocol, root)]
    return [entry.own_file()] if entry.own_file() else []


def class_names(root=None) -> list[str]:
    classes = read_manifest(root).get("classes")
    if not classes:
        raise ArtifactMissing(f"no class names in {manifest_path(root)}; run `python -m train.all`.")
    return list(classes)


def file_size(rel: str, root=None) -> int:
    return (artifacts_dir(root) / rel).stat().st_size


# ---------------------------------------------------------------------------------------------
# Saved probabilities (the app explores confusions from these, without the dataset)
# ---------------------------------------------------------------------------------------------
def save_probs(rel: str, probs: np.ndarray, image_ids, labels, root=None) -> None:
    path = artifacts_dir(root) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, probs=np.asarray(probs, dtype=np.float16),
                        image_ids=np.asarray(image_ids, dtype=np.int32), labels=np.asarray(labels, dtype=np.int16))


def load_probs(rel: str, root=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probs float32 [N, 102], image_ids [N], labels [N])."""
    path = artifacts_dir(root) / rel
    if not path.is_file():
        raise ArtifactMissing(f"{path} is missing; run `python -m train.all`.")
    with np.load(path) as z:
        return z["probs"].astype(np.float32), z["image_ids"].astype(np.int64), z["labels"].astype(np.int64)
