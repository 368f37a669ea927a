"""What one level's training run does, end to end, for the ``train/`` scripts.

data + split -> decoded squares -> (CPU) cached trunk features per view -> ``engine.fit`` on the
late stages + head -> validation/test probabilities -> metrics, logs, weights, manifest entry.

Training writes the split of a protocol (``prepare_workspace``) before anything reads it; a
``Workspace`` only reads, so benchmarks and tools can open one on the shipped artifacts.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..metrics import classification_metrics, error_correlation, logits_from_saved, softmax, summary
from ..shipped import catalog, paths
from ..shipped import manifest as art
from ..shipped.manifest import ModelEntry
from ..shipped.paths import split_file
from ..shipped.splits import SHIPPED_PROTOCOL, save_split
from . import weights
from .calibration import fit_temperature
from .data import FlowersIndex, decoded_images, load_index, make_split
from .engine import AugmentedImages, CachedViews, TrainConfig, fit, predict_logits, seed_everything
from .features import trunk_features
from .models import ARCHS, FlowerNet, create_model, soft_vote
from .recipes import FullFinetune, LevelSpec
from .transforms import batch_mix, eval_view, train_augment


def write_split(protocol: str, index: FlowersIndex, artifacts_root=None) -> dict[str, list[int]]:
    """Make ``protocol``'s split of ``index`` and write it to the artifacts, with the manifest's
    ``classes`` and ``splits`` sections (what the app and the reports read)."""
    split = make_split(index, protocol)
    save_split(split, art.artifacts_dir(artifacts_root) / split_file(protocol))
    art.update_manifest(artifacts_root, classes=list(index.classes),
                        splits={protocol: {"file": split_file(protocol), **{k: len(v) for k, v in split.items()}}})
    return split


def prepare_workspace(protocol: str, data_root=None, download: bool = False, artifacts_root=None) -> "Workspace":
    """Training's first step on a protocol: (download the dataset,) write its split and the
    manifest's classes/splits, and open the ``Workspace`` that reads them."""
    write_split(protocol, load_index(data_root, download=download), artifacts_root)
    return Workspace(protocol, data_root, artifacts_root)


class Workspace:
    """The data of one protocol, read-only: the dataset index, the split recorded in the artifacts
    (written by ``prepare_workspace``), decoded squares and cached trunk features."""

    def __init__(self, protocol: str, data_root=None, artifacts_root=None):
        self.protocol, self.artifacts_root = protocol, artifacts_root
        self.split = art.read_split(protocol, artifacts_root)
        self.index: FlowersIndex = load_index(data_root)
        if max((max(ids) for ids in self.split.values() if ids), default=0) > len(self.index.image_ids):
            raise ValueError(f"{split_file(protocol)} names images beyond the {len(self.index.image_ids)} of {self.index.base}: "
                             "the split was written for another copy of the dataset.")
        self._squares: dict[int, torch.Tensor] = {}

    def ids(self, part: str) -> np.ndarray:
        return np.asarray(self.split[part])

    def labels(self, part: str) -> torch.Tensor:
        return torch.as_tensor(self.index.label_of(self.ids(part)))

    def squares(self, size: int, part: str) -> torch.Tensor:
        if size not in self._squares:
            self._squares[size] = decoded_images(self.index, size)
        return self._squares[size][self.ids(part) - 1]

    def features(self, model: FlowerNet, part: str, view: str = "eval", seed: int = 0,
                 trunk: Callable | None = None, trunk_name: str = "") -> torch.Tensor:
        """``features.trunk_features`` of this part's images (``trunk``: another trunk than the model's own)."""
        squares = self.squares(model.preprocess.resize_size, part)
        return trunk_features(model, squares, view, seed, tag=f"{self.protocol}/{part}", trunk=trunk,
                              trunk_name=trunk_name)


def image_forward(fn: Callable, preprocess) -> Callable:
    """uint8 squares -> the eval view -> ``fn``: scores whole images the way the app and the CLI do."""
    return lambda squares: fn(eval_view(preprocess, squares))


IMAGE_BATCH = 32  # full-network scoring batch: larger batches overflow the CPU caches at 112×112


def training_views(spec: LevelSpec, model: FlowerNet, ws: "Workspace") -> torch.Tensor:
    """The cached trunk features a level trains on: ``[V, N, ...]`` (eval view and/or augmented views)."""
    views = [ws.features(model, "train", spec.augment, seed=s) for s in range(spec.aug_views)]
    if spec.aug_views == 0 or spec.include_eval_view:
        views.insert(0, ws.features(model, "train", "eval"))
    views += [ws.features(model, "train", "photo", seed=s) for s in range(spec.photo_views)]
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
        recipe = {"augment": spec.augment, "aug_views": spec.aug_views, "include_eval_view": spec.include_eval_view,
                  "photo_views": spec.photo_views}
    else:
        train = full_finetune_batches(ws, model.preprocess, full, cfg, device)
        module, forward = model, model.forward
        val_inputs = eval_view(model.preprocess, ws.squares(model.preprocess.resize_size, "val"))
        recipe = {"augment": full.augment, "aug_views": 0, "include_eval_view": False, "photo_views": 0,
                  "batch_mix": full.mix}
    prep_seconds = time.time() - t0
    result = fit(module, forward, train, val_inputs, ws.labels("val"), cfg, log_path,
                 desc=desc or f"{spec.name}/{ws.protocol}")
    return TrainedLevel(weights.round_to_shipped(model.eval().cpu()), cfg, result["best"]["epoch"], prep_seconds,
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
    record = entry.details
    return TrainedLevel(weights.build_flowernet(entry, source_root), TrainConfig(**record["train_config"]),
                        record["best_epoch"], record["feature_cache_seconds"], record["train_seconds"],
                        {k: record[k] for k in ("augment", "aug_views", "include_eval_view", "photo_views", "batch_mix") if k in record})


def flowernet_entry(model: FlowerNet, name: str, level: int, description: str, protocol: str, device: str,
                    **details) -> ModelEntry:
    """The manifest entry of a trained FlowerNet (levels 1-3, the student) before it is scored:
    what it is and how to rebuild it; ``details`` (training record, ...) go to the reports."""
    return ModelEntry(
        name=name, level=level, protocol=protocol, format="safetensors", preprocess=model.preprocess.to_dict(),
        description=description, split=split_file(protocol), num_classes=model.head.fc.out_features,
        params=sum(p.numel() for p in model.parameters()), arch=model.arch, head=model.head_type,
        frozen_stages=model.frozen_stages,
        details={"trunk_weights": ARCHS[model.arch].weights_source if model.frozen_stages else None, "device": device,
                 "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad), **details},
    )


def save_shipped_weights(entry: ModelEntry, model: FlowerNet, artifacts_root=None) -> None:
    """Write ``model``'s weights to ``models/<name>.safetensors`` and point ``entry`` at them."""
    entry.weights = paths.weights_file(entry.name)
    entry.details["weights_bytes"] = weights.save_weights(model, entry.weights, artifacts_root)


def run_level(spec: LevelSpec, protocol: str, ws: Workspace, device: str = "cpu", epochs: int | None = None,
              artifacts_root=None, frozen_stages: int | None = None, trained: TrainedLevel | None = None) -> ModelEntry:
    """Train one level on one protocol (or take ``trained``, a run from elsewhere) and record
    everything it produced."""
    root = art.artifacts_dir(artifacts_root)
    log_rel = paths.log_file(spec.name, protocol)
    if trained is None:
        trained = train_level(spec, ws, device, epochs, frozen_stages, root / log_rel)
    model = trained.model
    entry = flowernet_entry(
        model, spec.name, spec.level, spec.description, protocol, trained.config.device,
        **trained.recipe, train_config=trained.config.to_dict(), best_epoch=trained.best_epoch, log=log_rel,
        feature_cache_seconds=round(trained.prep_seconds, 1), train_seconds=round(trained.train_seconds, 1))
    score_on_images(entry, model, ws, device, artifacts_root)
    if protocol == SHIPPED_PROTOCOL:
        save_shipped_weights(entry, model, artifacts_root)
    art.record_model(entry, artifacts_root)
    print(f"[{spec.name}/{protocol}] val top1 {entry.top1('val'):.4f} test top1 {entry.top1('test'):.4f}", flush=True)
    return entry


def score_on_images(entry: ModelEntry, model: FlowerNet, ws: Workspace, device: str = "cpu",
                    artifacts_root=None) -> dict[str, np.ndarray]:
    """``record_predictions`` for a trained FlowerNet, through its full forward pass on the decoded images.

    Cached trunk features are fp16 and only drive model selection; the recorded scores come from
    the same computation as the app's: fp32 trunk, eval view, shipped weights.
    """
    pre = model.preprocess
    squares = {p: ws.squares(pre.resize_size, p) for p in ("val", "test")}
    with torch.inference_mode():
        model = model.to(device, memory_format=torch.channels_last)  # ~1.5× faster convolutions on CPU
        return record_predictions(entry, image_forward(model, pre), squares, ws, device, artifacts_root,
                                  batch_size=IMAGE_BATCH)


def record_predictions(entry: ModelEntry, forward, inputs: dict, ws: Workspace, device: str = "cpu",
                       artifacts_root=None, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Score val and test once, save their probabilities and full metrics into ``entry``'s files
    (``save_scores``). Returns the logits per part (for callers that compare models)."""
    logits = {part: predict_logits(forward, x, batch_size, device).numpy() for part, x in inputs.items()}
    save_scores(entry, {part: (softmax(l), ws.ids(part), ws.labels(part).numpy()) for part, l in logits.items()},
                artifacts_root)
    return logits


def save_scores(entry: ModelEntry, scored: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                artifacts_root=None) -> None:
    """Save each part's probabilities and full metrics (``scored``: part -> probs, image ids, labels)
    and set ``entry``'s metric summaries and the files written."""
    stem = f"{entry.name}_{entry.protocol}"
    entry.metrics, entry.probs, entry.metrics_file = {}, {}, paths.metrics_file(stem)
    full = {}
    for part, (probs, ids, labels) in scored.items():
        full[part] = classification_metrics(probs, labels)
        entry.probs[part] = paths.probs_file(stem, part)
        art.save_probs(entry.probs[part], probs, ids, labels, artifacts_root)
        entry.metrics[part] = summary(full[part])
    path = art.artifacts_dir(artifacts_root) / entry.metrics_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(full))


def run_ensemble(protocol: str, members=tuple(catalog.names(levels=(1, 2, 3))), artifacts_root=None) -> ModelEntry:
    """Level 4: soft voting over the members' saved probabilities, scored as one model.

    Each member's probabilities are first temperature-scaled (one temperature per member, fitted
    on validation): level 1 is trained without label smoothing and is far more confident than
    levels 2-3, so in a plain mean its vote would outweigh theirs. Both variants are scored on
    validation and recorded; the better one there (calibrated on a tie) is the shipped ensemble.
    """
    entries = [art.model_entry(m, protocol, artifacts_root) for m in members]
    if any(e.preprocess != entries[0].preprocess for e in entries):
        raise ValueError("ensemble members must share one preprocessing (the ensemble takes one input batch)")
    loaded = {part: [art.load_probs(e.probs[part], artifacts_root) for e in entries] for part in ("val", "test")}
    val_labels = loaded["val"][0][2]
    fitted = [fit_temperature(logits_from_saved(p), val_labels) for p, _, _ in loaded["val"]]

    def vote(part: str, temperatures) -> np.ndarray:  # the vote ``models.Ensemble`` computes, on saved probabilities
        logits = [torch.from_numpy(logits_from_saved(p)) for p, _, _ in loaded[part]]
        return soft_vote(logits, temperatures).numpy()

    variants = {name: {"temperatures": temps, "val": summary(classification_metrics(vote("val", temps), val_labels))}
                for name, temps in (("plain mean", [1.0] * len(members)), ("temperature-scaled", fitted))}
    chosen = max(variants, key=lambda k: (variants[k]["val"]["top1"], k == "temperature-scaled"))
    temperatures = variants[chosen]["temperatures"]

    correlations = {}
    for part in ("val", "test"):
        labels = loaded[part][0][2]
        preds = [p.argmax(-1) for p, _, _ in loaded[part]]
        correlations[part] = {f"{a}~{b}": error_correlation(preds[i], preds[j], labels)
                              for i, a in enumerate(members) for j, b in enumerate(members) if i < j}
    entry = ModelEntry(
        name=catalog.TEACHER, level=catalog.get(catalog.TEACHER).level, protocol=protocol, format="ensemble", preprocess=entries[0].preprocess,
        description="Soft voting: equal-weight mean of the members' probabilities"
                    + (", each temperature-scaled (temperature fitted on validation)." if chosen == "temperature-scaled" else "."),
        split=split_file(protocol), num_classes=entries[0].num_classes, params=sum(e.params for e in entries),
        members=list(members), weights_per_member=None, member_temperatures=temperatures,
        details={"voting": chosen, "voting_variants_val": variants,
                 "member_metrics": {m: e.metrics for m, e in zip(members, entries)},
                 "member_archs": {m: e.arch for m, e in zip(members, entries)},
                 "error_correlation": correlations,
                 "weights_bytes": sum(e.details.get("weights_bytes", 0) for e in entries)},
    )
    save_scores(entry, {part: (vote(part, temperatures), *loaded[part][0][1:]) for part in ("val", "test")},
                artifacts_root)
    art.record_model(entry, artifacts_root)
    print(f"[ensemble/{protocol}] val top1 {entry.top1('val'):.4f} test top1 {entry.top1('test'):.4f}", flush=True)
    return entry
