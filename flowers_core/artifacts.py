"""``artifacts/``: the manifest, class names, split files, weights and saved probabilities.

``load_model(name)`` is the one way training, evaluation, the CLI and the app get a model.
Weights are safetensors (fp16) and never unpickled; the INT8 student is a self-contained ONNX file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import catalog
from .data import REPO_ROOT
from .models import Ensemble, FlowerNet, create_model
from .quantize import OnnxClassifier

MODEL_NAMES = catalog.NAMES
PRODUCED_BY = {m.name: m.produced_by for m in catalog.MODELS}


class ArtifactMissing(FileNotFoundError):
    """A model or file the caller needs has not been produced (the message names the command)."""


def artifacts_dir(root: str | Path | None = None) -> Path:
    if root is not None:
        return Path(root)
    return Path(os.environ.get("FLOWERS_ARTIFACTS", REPO_ROOT / "artifacts"))


def manifest_path(root=None) -> Path:
    return artifacts_dir(root) / "manifest.json"


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


def record_model(protocol: str, name: str, entry: dict, root=None) -> None:
    manifest = read_manifest(root)
    manifest.setdefault("models", {}).setdefault(protocol, {})[name] = entry
    write_manifest(manifest, root)


def model_entry(name: str, protocol: str = "stratified", root=None) -> dict:
    entry = read_manifest(root).get("models", {}).get(protocol, {}).get(name)
    if entry is None:
        raise ArtifactMissing(
            f"model '{name}' ({protocol} protocol) is not in {manifest_path(root)}; "
            f"produce it with `{catalog.produced_by(name)}`."
        )
    return entry


def class_names(root=None) -> list[str]:
    classes = read_manifest(root).get("classes")
    if not classes:
        raise ArtifactMissing(f"no class names in {manifest_path(root)}; run `python -m train.all`.")
    return list(classes)


def file_size(rel: str, root=None) -> int:
    return (artifacts_dir(root) / rel).stat().st_size


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------
def trained_state(model: FlowerNet) -> dict[str, torch.Tensor]:
    """What training changed: the stages after the frozen trunk and the head. The trunk is the
    pinned ImageNet weights of the registry, so it is rebuilt at load time instead of shipped."""
    prefixes = tuple(f"stages.{i}." for i in range(model.frozen_stages, len(model.stages))) + ("head.",)
    return {k: v for k, v in model.state_dict().items() if k.startswith(prefixes)}


SHIPPED_DTYPE = torch.float16  # trained weights are stored in half precision (small artifacts)


@torch.no_grad()
def round_to_shipped(model: FlowerNet) -> FlowerNet:
    """Round the trained weights, in place, to the precision ``save_weights`` stores.

    Called before a model is scored, exported or quantised, so that the recorded metrics are those
    of the file that ships (and that ``build_flowernet`` loads), not of fp32 weights that no one gets.
    """
    for v in trained_state(model).values():  # state_dict tensors share storage with the module's
        if v.is_floating_point():
            v.copy_(v.to(SHIPPED_DTYPE).to(v.dtype))
    return model


def save_weights(model: FlowerNet, rel: str, root=None) -> int:
    from safetensors.torch import save_file

    path = artifacts_dir(root) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(SHIPPED_DTYPE if v.is_floating_point() else v.dtype).contiguous()
             for k, v in trained_state(model).items()}
    save_file(state, str(path), metadata={"arch": model.arch, "head": model.head_type,
                                          "frozen_stages": str(model.frozen_stages)})
    return path.stat().st_size


def build_flowernet(entry: dict, root=None, pretrained_trunk: bool | None = None) -> FlowerNet:
    from safetensors.torch import load_file

    path = artifacts_dir(root) / entry["weights"]
    if not path.is_file():
        raise ArtifactMissing(f"weights file {path} is missing; produce it with "
                              f"`{catalog.produced_by(entry.get('name', ''))}`.")
    frozen = int(entry["frozen_stages"])
    pretrained = frozen > 0 if pretrained_trunk is None else pretrained_trunk
    model = create_model(entry["arch"], entry["head"], entry.get("num_classes", 102),
                         pretrained=pretrained, frozen_stages=frozen,
                         input_size=entry["preprocess"]["input_size"])
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    result = model.load_state_dict(state, strict=False)
    expected = set(trained_state(model))
    if result.unexpected_keys or expected - set(state):
        raise ValueError(f"{path} does not match {entry['arch']}/{entry['head']}: "
                         f"unexpected {result.unexpected_keys[:3]}, missing {sorted(expected - set(state))[:3]}")
    # channels_last weights: oneDNN's convolutions run ~20% faster at batch 1 and ~1.5× on batches on CPU
    return model.eval().to(memory_format=torch.channels_last)


def load_model(name: str, protocol: str = "stratified", root=None) -> nn.Module:
    """An eval-mode module mapping a normalised image batch to logits (log-probs for the ensemble)."""
    entry = model_entry(name, protocol, root)
    fmt = entry.get("format", "safetensors")
    if fmt == "safetensors":
        return build_flowernet(entry, root)
    if fmt == "ensemble":
        members = [load_model(m, protocol, root) for m in entry["members"]]
        return Ensemble(members, entry.get("weights_per_member"), entry.get("member_temperatures")).eval()
    if fmt == "onnx":
        path = artifacts_dir(root) / entry["file"]
        if not path.is_file():
            raise ArtifactMissing(f"{path} is missing; produce it with `{catalog.produced_by(name)}`.")
        return OnnxClassifier(path)
    raise ValueError(f"unknown model format {fmt!r} for {name}")


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
