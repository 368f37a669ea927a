"""What one level's training run does, end to end, for the ``train/`` scripts.

data + split -> decoded squares -> (CPU) cached trunk features per view -> ``engine.fit`` on the
late stages + head -> validation/test probabilities -> metrics, logs, weights, manifest entry.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import artifacts as art
from .data import FlowersIndex, decoded_images, load_index, make_split, save_split
from .engine import AugmentedImages, CachedViews, TrainConfig, fit, predict_logits, seed_everything
from .evaluate import classification_metrics, error_correlation, fit_temperature, logits_from_saved, softmax, summary
from .features import trunk_features
from .models import ARCHS, FlowerNet, create_model
from .transforms import batch_mix, train_augment

SHIPPED_PROTOCOL = "stratified"  # weights are shipped for this protocol; the other keeps metrics + probabilities


@dataclass(frozen=True)
class FullFinetune:
    """A level's recipe when the whole network is trained (``--device cuda``): images are augmented
    on the fly (``augment``, a ``transforms.train_augment`` preset) and a share ``mix`` of the
    batches is mixed by CutMix/MixUp."""

    augment: str
    config: TrainConfig
    mix: float = 0.0


@dataclass
class LevelSpec:
    level: int
    name: str
    description: str
    arch: str = "efficientnet_lite0"
    head: str = "linear"
    augment: str = "baseline"  # baseline | strong (see transforms.train_augment)
    aug_views: int = 0  # pre-augmented views cached per training image on CPU (0: eval view only)
    include_eval_view: bool = False  # also draw the un-augmented view during training (with aug_views > 0)
    input_size: int | None = None  # None: the architecture's native resolution
    config: TrainConfig = field(default_factory=TrainConfig)
    full: FullFinetune | None = None  # the recipe with no frozen trunk (None: ``augment`` and ``config``)


# Full fine-tuning for people's photos (levels 2-3): the whole network, photo-like augmentation and
# CutMix/MixUp on half the batches, a lower learning rate than the frozen-trunk recipe (every ImageNet layer
# moves), no early stop: the cosine schedule runs out and the best validation epoch is kept.
PHOTO_RECIPE = TrainConfig(epochs=30, lr=5e-4, weight_decay=0.05, label_smoothing=0.1, warmup_epochs=1.0, patience=30)

LEVELS: dict[str, LevelSpec] = {
    "level1": LevelSpec(
        1, "level1", "Baseline: ImageNet EfficientNet-Lite2 (260 px), new 102-way head, late stages fine-tuned; "
        "no augmentation, no label smoothing, no weight decay, constant LR.",
        arch="efficientnet_lite2",
        config=TrainConfig(epochs=8, lr=1e-3, schedule="constant", warmup_epochs=0.0, patience=3),
        full=FullFinetune("baseline", TrainConfig(epochs=15, lr=2e-4, schedule="constant", warmup_epochs=0.0,
                                                  patience=5)),
    ),
    "level2": LevelSpec(
        2, "level2", "Regularised: random resized crops, flips, 90° rotations, colour jitter, cutout; "
        "label smoothing 0.1, weight decay 0.05, cosine schedule with warm-up (level 1's trunk: a clean ablation).",
        arch="efficientnet_lite2", augment="strong", aug_views=4, include_eval_view=True,
        config=TrainConfig(epochs=12, lr=1e-3, weight_decay=0.05, label_smoothing=0.1, patience=4),
        full=FullFinetune("photo", PHOTO_RECIPE, mix=0.5),
    ),
    # Level 3 uses the other trunk (EfficientNet-Lite0) at the same 260-px input, so the ensemble keeps one
    # preprocessing and the student's cached views are the same images for every member: members on one shared
    # frozen trunk made errors that were too correlated (0.69-0.84) for soft voting to gain anything.
    "level3": LevelSpec(
        3, "level3", "Spatial attention on EfficientNet-Lite0 (260 px): feature map -> 1×1 conv + sigmoid -> "
        "attention-weighted pooling -> classifier, trained with the level-2 recipe.",
        arch="efficientnet_lite0", input_size=260,
        head="attention", augment="strong", aug_views=4, include_eval_view=True,
        config=TrainConfig(epochs=12, lr=1e-3, weight_decay=0.05, label_smoothing=0.1, patience=4),
        full=FullFinetune("photo", PHOTO_RECIPE, mix=0.5),
    ),
}


class Workspace:
    """The data of one protocol: index, split ids (saved), decoded squares and cached features."""

    def __init__(self, protocol: str, data_root=None, download: bool = False, artifacts_root=None,
                 limit_per_class: int | None = None):
        self.protocol, self.artifacts_root = protocol, artifacts_root
        self.index: FlowersIndex = load_index(data_root, download=download)
        self.split = make_split(self.index, protocol)
        save_split(self.split, art.artifacts_dir(artifacts_root) / "splits" / f"{protocol}.json")
        art.update_manifest(artifacts_root, classes=list(self.index.classes),
                            splits={protocol: {"file": f"splits/{protocol}.json",
                                               **{k: len(v) for k, v in self.split.items()}}})
        self._squares: dict[int, torch.Tensor] = {}

    def ids(self, part: str) -> np.ndarray:
        return np.asarray(self.split[part])

    def labels(self, part: str) -> torch.Tensor:
        return torch.as_tensor(self.index.label_of(self.ids(part)))

    def squares(self, size: int, part: str) -> torch.Tensor:
        if size not in self._squares:
            self._squares[size] = decoded_images(self.index, size)
        return self._squares[size][self.ids(part) - 1]

    def features(self, model: FlowerNet, part: str, view: str = "eval", seed: int = 0) -> torch.Tensor:
        squares = self.squares(model.preprocess.resize_size, part)
        return trunk_features(model, squares, view, seed, tag=f"{self.protocol}/{part}")


def image_forward(fn: Callable, preprocess) -> Callable:
    """uint8 squares -> the eval view -> ``fn``: scores whole images the way the app and the CLI do."""
    return lambda squares: fn(preprocess.eval_view(squares))


IMAGE_BATCH = 32  # full-network scoring batch: larger batches overflow the CPU caches at 112×112


def training_views(spec: LevelSpec, model: FlowerNet, ws: "Workspace") -> torch.Tensor:
    """The cached trunk features a level trains on: ``[V, N, ...]`` (eval view and/or augmented views)."""
    views = [ws.features(model, "train", spec.augment, seed=s) for s in range(spec.aug_views)]
    if spec.aug_views == 0 or spec.include_eval_view:
        views.insert(0, ws.features(model, "train", "eval"))
    return torch.stack(views)


@dataclass
class TrainedLevel:
    """What ``train_level`` hands back: the model (best epoch, weights at their shipped precision)."""

    model: FlowerNet
    config: TrainConfig
    best_epoch: int
    prep_seconds: float
    train_seconds: float
    recipe: dict  # how the training images were drawn: augmentation, cached views, batch mixing


def training_workers(device: str) -> int:
    """Processes augmenting images on the fly: none on CPU (the cores train), the host's cores on a GPU."""
    return 0 if device == "cpu" else max(1, min(16, os.cpu_count() or 1) - 1)


def train_level(spec: LevelSpec, ws: Workspace, device: str = "cpu", epochs: int | None = None,
                frozen_stages: int | None = None, log_path: Path | None = None, desc: str | None = None) -> TrainedLevel:
    """Train one level's model on ``ws``'s training split; the best epoch on validation is kept.

    On CPU the frozen trunk's features are cached and only the late stages + head are trained;
    with ``device='cuda'`` (or ``frozen_stages=0``) the whole network is fine-tuned on images
    augmented on the fly with the level's ``full`` recipe. The returned weights are rounded to the
    precision they ship in.
    """
    frozen = frozen_stages if frozen_stages is not None else (ARCHS[spec.arch].cpu_frozen_stages if device == "cpu" else 0)
    full = spec.full or FullFinetune(spec.augment, spec.config)
    recipe_config = spec.config if frozen else full.config
    cfg = replace(recipe_config, device=device, epochs=epochs or recipe_config.epochs)
    seed_everything(cfg.seed)
    model = create_model(spec.arch, spec.head, num_classes=len(ws.index.classes), input_size=spec.input_size,
                         frozen_stages=frozen)
    model.freeze_trunk()
    t0 = time.time()
    if frozen:
        train = CachedViews(training_views(spec, model, ws), ws.labels("train"), cfg.batch_size, seed=cfg.seed)
        module, forward = model.trainable(), model.forward_from_trunk
        val_inputs = ws.features(model, "val")
        recipe = {"augment": spec.augment, "aug_views": spec.aug_views, "include_eval_view": spec.include_eval_view}
    else:
        train = full_finetune_batches(ws, model.preprocess, full, cfg, device)
        module, forward = model, model.forward
        val_inputs = model.preprocess.eval_view(ws.squares(model.preprocess.resize_size, "val"))
        recipe = {"augment": full.augment, "aug_views": 0, "include_eval_view": False, "batch_mix": full.mix}
    prep_seconds = time.time() - t0
    result = fit(module, forward, train, val_inputs, ws.labels("val"), cfg, log_path,
                 desc=desc or f"{spec.name}/{ws.protocol}")
    return TrainedLevel(art.round_to_shipped(model.eval().cpu()), cfg, result["best"]["epoch"], prep_seconds,
                        time.time() - t0 - prep_seconds, recipe)


def full_finetune_batches(ws: Workspace, pre, full: FullFinetune, cfg: TrainConfig, device: str) -> AugmentedImages:
    """The training images of ``ws``, augmented on the fly with ``full``'s preset (and batch mixing)."""
    return AugmentedImages(ws.squares(pre.resize_size, "train"), ws.labels("train"), train_augment(full.augment, pre),
                           cfg.batch_size, seed=cfg.seed, workers=training_workers(device),
                           mix=batch_mix(len(ws.index.classes), full.mix) if full.mix else None)


def load_trained(name: str, protocol: str, source_root) -> TrainedLevel:
    """A level trained elsewhere (``--train-only`` on a GPU machine), read back from that run's
    artifacts folder: weights, training configuration and times, ready to be recorded here."""
    entry = art.model_entry(name, protocol, source_root)
    return TrainedLevel(art.build_flowernet(entry, source_root), TrainConfig(**entry["train_config"]),
                        entry["best_epoch"], entry["feature_cache_seconds"], entry["train_seconds"],
                        {k: entry[k] for k in ("augment", "aug_views", "include_eval_view", "batch_mix") if k in entry})


def model_fields(model: FlowerNet, name: str, level: int, description: str, protocol: str, device: str) -> dict:
    """The manifest fields every trained FlowerNet (levels 1-3, the student) records about itself."""
    return {
        "name": name, "level": level, "description": description, "protocol": protocol, "format": "safetensors",
        "num_classes": model.head.fc.out_features, "arch": model.arch, "head": model.head_type,
        "frozen_stages": model.frozen_stages,
        "trunk_weights": ARCHS[model.arch].weights_source if model.frozen_stages else None,
        "preprocess": model.preprocess.to_dict(), "split": f"splits/{protocol}.json", "device": device,
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def run_level(spec: LevelSpec, protocol: str, ws: Workspace, device: str = "cpu", epochs: int | None = None,
              artifacts_root=None, frozen_stages: int | None = None, trained: TrainedLevel | None = None) -> dict:
    """Train one level on one protocol (or take ``trained``, a run from elsewhere) and record
    everything it produced."""
    root = art.artifacts_dir(artifacts_root)
    log_rel = f"logs/{spec.name}_{protocol}.jsonl"
    if trained is None:
        trained = train_level(spec, ws, device, epochs, frozen_stages, root / log_rel)
    model = trained.model
    entry = {
        **model_fields(model, spec.name, spec.level, spec.description, protocol, trained.config.device),
        **trained.recipe, "train_config": trained.config.to_dict(), "best_epoch": trained.best_epoch, "log": log_rel,
        "feature_cache_seconds": round(trained.prep_seconds, 1), "train_seconds": round(trained.train_seconds, 1),
    }
    fields, _ = score_on_images(spec.name, protocol, model, ws, device, artifacts_root)
    entry.update(fields)
    if protocol == SHIPPED_PROTOCOL:
        entry["weights"] = f"models/{spec.name}.safetensors"
        entry["weights_bytes"] = art.save_weights(model, entry["weights"], artifacts_root)
    art.record_model(protocol, spec.name, entry, artifacts_root)
    print(f"[{spec.name}/{protocol}] val top1 {entry['metrics']['val']['top1']:.4f} "
              f"test top1 {entry['metrics']['test']['top1']:.4f}", flush=True)
    return entry


def score_on_images(name: str, protocol: str, model: FlowerNet, ws: Workspace, device: str = "cpu",
                    artifacts_root=None) -> tuple[dict, dict[str, np.ndarray]]:
    """``record_predictions`` for a trained FlowerNet, through its full forward pass on the decoded images.

    Cached trunk features are fp16 and only drive model selection; the recorded scores come from
    the same computation as the app's: fp32 trunk, eval view, shipped weights.
    """
    pre = model.preprocess
    squares = {p: ws.squares(pre.resize_size, p) for p in ("val", "test")}
    with torch.inference_mode():
        model = model.to(device, memory_format=torch.channels_last)  # ~1.5× faster convolutions on CPU
        return record_predictions(name, protocol, image_forward(model, pre), squares, ws, device,
                                  artifacts_root, batch_size=IMAGE_BATCH)


def record_predictions(name: str, protocol: str, forward, inputs: dict, ws: Workspace, device: str = "cpu",
                       artifacts_root=None, batch_size: int = 256) -> tuple[dict, dict[str, np.ndarray]]:
    """Score val and test once, save their probabilities and full metrics.

    Returns the manifest fields and the logits per part (for callers that compare models).
    """
    logits = {part: predict_logits(forward, x, batch_size, device).numpy() for part, x in inputs.items()}
    scored = {part: (softmax(l), ws.ids(part), ws.labels(part).numpy()) for part, l in logits.items()}
    return save_scores(name, protocol, scored, artifacts_root), logits


def save_scores(name: str, protocol: str, scored: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                artifacts_root=None) -> dict:
    """Save each part's probabilities and full metrics (``scored``: part -> probs, image ids, labels);
    return the manifest fields: metric summaries and the files written."""
    out = {"metrics": {}, "probs": {}, "metrics_file": f"metrics/{name}_{protocol}.json"}
    full = {}
    for part, (probs, ids, labels) in scored.items():
        full[part] = classification_metrics(probs, labels)
        out["probs"][part] = f"probs/{name}_{protocol}_{part}.npz"
        art.save_probs(out["probs"][part], probs, ids, labels, artifacts_root)
        out["metrics"][part] = summary(full[part])
    path = art.artifacts_dir(artifacts_root) / out["metrics_file"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(full))
    return out


def run_ensemble(protocol: str, members=("level1", "level2", "level3"), artifacts_root=None) -> dict:
    """Level 4: soft voting over the members' saved probabilities, scored as one model.

    Each member's probabilities are first temperature-scaled (one temperature per member, fitted
    on validation): level 1 is trained without label smoothing and is far more confident than
    levels 2-3, so in a plain mean its vote would outweigh theirs. Both variants are scored on
    validation and recorded; the better one there (calibrated on a tie) is the shipped ensemble.
    """
    manifest = art.read_manifest(artifacts_root)
    entries = [manifest["models"][protocol][m] for m in members]
    if any(e["preprocess"] != entries[0]["preprocess"] for e in entries):
        raise ValueError("ensemble members must share one preprocessing (the ensemble takes one input batch)")
    loaded = {part: [art.load_probs(e["probs"][part], artifacts_root) for e in entries] for part in ("val", "test")}
    val_labels = loaded["val"][0][2]
    fitted = [fit_temperature(logits_from_saved(p), val_labels) for p, _, _ in loaded["val"]]

    def vote(part: str, temperatures) -> np.ndarray:
        return np.mean([softmax(logits_from_saved(p), t) for (p, _, _), t in zip(loaded[part], temperatures)], axis=0)

    variants = {name: {"temperatures": temps, "val": summary(classification_metrics(vote("val", temps), val_labels))}
                for name, temps in (("plain mean", [1.0] * len(members)), ("temperature-scaled", fitted))}
    chosen = max(variants, key=lambda k: (variants[k]["val"]["top1"], k == "temperature-scaled"))
    temperatures = variants[chosen]["temperatures"]

    out = save_scores("ensemble", protocol, {part: (vote(part, temperatures), *loaded[part][0][1:])
                                             for part in ("val", "test")}, artifacts_root)
    correlations = {}
    for part in ("val", "test"):
        labels = loaded[part][0][2]
        preds = [p.argmax(-1) for p, _, _ in loaded[part]]
        correlations[part] = {f"{a}~{b}": error_correlation(preds[i], preds[j], labels)
                              for i, a in enumerate(members) for j, b in enumerate(members) if i < j}
    entry = {
        "name": "ensemble", "level": 4, "protocol": protocol, "format": "ensemble", "members": list(members),
        "weights_per_member": None, "member_temperatures": temperatures, "voting": chosen,
        "voting_variants_val": variants,
        "description": "Soft voting: equal-weight mean of the members' probabilities"
                       + (", each temperature-scaled (temperature fitted on validation)." if chosen == "temperature-scaled" else "."),
        "member_metrics": {m: e["metrics"] for m, e in zip(members, entries)},
        "member_archs": {m: e["arch"] for m, e in zip(members, entries)},
        "error_correlation": correlations, "preprocess": entries[0]["preprocess"],
        "split": f"splits/{protocol}.json", "params": sum(e["params"] for e in entries),
        "weights_bytes": sum(e.get("weights_bytes", 0) for e in entries), **out,
    }
    art.record_model(protocol, "ensemble", entry, artifacts_root)
    print(f"[ensemble/{protocol}] val top1 {entry['metrics']['val']['top1']:.4f} "
          f"test top1 {entry['metrics']['test']['top1']:.4f}", flush=True)
    return entry
