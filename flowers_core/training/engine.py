"""The one training loop every level uses, its batch sources and the distillation loss.

A batch source yields ``(inputs, targets, soft_targets_or_None)``. On CPU the inputs are cached
trunk features (``CachedViews``: one of several pre-augmented views per image each epoch); on a
GPU they are images augmented on the fly (``AugmentedImages``). ``fit`` does not care which.
"""
from __future__ import annotations

import copy
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    optimizer: str = "adamw"  # adamw | sgd
    schedule: str = "cosine"  # cosine | constant
    warmup_epochs: float = 0.5
    patience: int = 4  # early stopping on validation accuracy
    seed: int = 0
    device: str = "cpu"
    amp: bool = True  # bf16 autocast on CUDA only
    kd_alpha: float = 0.0  # weight of the distillation term (level 5)
    kd_temperature: float = 4.0

    def to_dict(self) -> dict:
        return asdict(self)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# Batch sources
# ---------------------------------------------------------------------------------------------
class CachedViews:
    """Cached trunk features ``[V, N, ...]``: each epoch, every sample contributes one random view."""

    def __init__(self, views: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 soft: torch.Tensor | None = None, shuffle: bool = True, seed: int = 0):
        self.views, self.labels, self.soft = views, labels, soft
        self.batch_size, self.shuffle = batch_size, shuffle
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(self.views.shape[1] / self.batch_size)

    def __iter__(self) -> Iterator:
        n = self.views.shape[1]
        order = torch.randperm(n, generator=self.gen) if self.shuffle else torch.arange(n)
        view = torch.randint(0, self.views.shape[0], (n,), generator=self.gen)
        for start in range(0, n, self.batch_size):
            idx = order[start: start + self.batch_size]
            v = view[idx] if self.shuffle else torch.zeros_like(idx)
            x = self.views[v, idx].float()
            soft = self.soft[v, idx].float() if self.soft is not None else None
            yield x, self.labels[idx], soft


class _AugmentedSquares(torch.utils.data.Dataset):
    def __init__(self, squares: torch.Tensor, labels: torch.Tensor, transform: Callable):
        self.squares, self.labels, self.transform = squares, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(self.squares[i]), self.labels[i]


class AugmentedImages:
    """uint8 squares augmented on the fly (full fine-tuning, no caching), by ``workers`` processes.

    ``mix`` (e.g. ``transforms.batch_mix``) mixes whole batches (CutMix/MixUp); the targets of a
    mixed batch are class probabilities instead of indices.
    """

    def __init__(self, squares: torch.Tensor, labels: torch.Tensor, transform: Callable, batch_size: int,
                 shuffle: bool = True, seed: int = 0, workers: int = 0, mix: Callable | None = None):
        self.mix = mix
        self.loader = torch.utils.data.DataLoader(
            _AugmentedSquares(squares, labels, transform), batch_size=batch_size, shuffle=shuffle,
            num_workers=workers, persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(),
            generator=torch.Generator().manual_seed(seed), drop_last=shuffle and len(labels) > batch_size)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator:
        for x, y in self.loader:
            if self.mix is not None:
                x, y = self.mix(x, y)
            yield x, y, None


class WithTeacher:
    """A batch source whose soft targets come from a teacher run on the same (augmented) batch on
    ``device``: the student matches the teacher's function on every view it sees."""

    def __init__(self, source: Iterable, teacher: Callable[[torch.Tensor], torch.Tensor], device: str, amp: bool = True):
        self.source, self.teacher, self.device, self.amp = source, teacher, torch.device(device), amp

    def __len__(self) -> int:
        return len(self.source)

    @torch.no_grad()
    def __iter__(self) -> Iterator:
        for x, y, _ in self.source:
            x = x.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp and self.device.type == "cuda"):
                soft = self.teacher(x).float()
            yield x, y, soft


def hard_labels(targets: torch.Tensor) -> torch.Tensor:
    """Class indices of a batch's targets (mixed batches carry class probabilities)."""
    return targets.argmax(-1) if targets.ndim > 1 else targets


# ---------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------
def distillation_loss(student_logits: torch.Tensor, teacher_probs_t: torch.Tensor, targets: torch.Tensor,
                      alpha: float, temperature: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """α·T²·KL(teacher_T ‖ student_T) + (1−α)·CE(labels); ``teacher_probs_t`` already at temperature T."""
    log_student_t = F.log_softmax(student_logits / temperature, dim=-1)
    kl = F.kl_div(log_student_t, teacher_probs_t, reduction="batchmean")
    ce = F.cross_entropy(student_logits, targets, label_smoothing=label_smoothing)
    return alpha * temperature**2 * kl + (1 - alpha) * ce


def lr_at(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the base learning rate: linear warm-up, then cosine to 0 (or constant)."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def predict_logits(forward: Callable, inputs: torch.Tensor, batch_size: int = 256, device: str = "cpu") -> torch.Tensor:
    outs = []
    for start in range(0, len(inputs), batch_size):
        outs.append(forward(inputs[start: start + batch_size].float().to(device)).float().cpu())
    return torch.cat(outs)


def fit(module: nn.Module, forward: Callable, train: Iterable, val_inputs: torch.Tensor, val_labels: torch.Tensor,
        cfg: TrainConfig, log_path: Path | None = None, desc: str = "train") -> dict:
    """Train ``module``'s parameters through ``forward``; keep the best epoch on validation accuracy.

    Returns the history; ``module`` ends holding the best weights. ``log_path`` gets one JSON line
    per epoch (the training curves of the report).
    """
    from tqdm.auto import tqdm  # a training package (requirements-train.txt), not the app's

    seed_everything(cfg.seed)
    device = torch.device(cfg.device)
    module.to(device)
    memory_format = torch.preserve_format
    if device.type == "cuda":  # cuDNN's fastest bf16 convolutions are channels-last
        torch.backends.cudnn.benchmark = True
        module.to(memory_format=torch.channels_last)
        memory_format = torch.channels_last
    params = [p for p in module.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(train)
    total, warmup = cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)
    use_amp = cfg.amp and device.type == "cuda"
    history, best = [], {"val_acc": -1.0, "val_loss": float("inf"), "epoch": -1}
    best_state, step, stale = None, 0, 0
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("")
    for epoch in range(cfg.epochs):
        module.train()
        t0, seen, correct, loss_sum = time.time(), 0, 0, 0.0
        bar = tqdm(train, total=steps_per_epoch, desc=f"{desc} {epoch + 1}/{cfg.epochs}", leave=False, mininterval=2, disable=None)
        for x, y, soft in bar:
            for g in opt.param_groups:
                g["lr"] = cfg.lr * lr_at(step, total, warmup, cfg.schedule)
            x, y = x.to(device, non_blocking=True), y.to(device)
            if x.ndim == 4:
                x = x.contiguous(memory_format=memory_format)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = forward(x).float()
            if soft is not None and cfg.kd_alpha > 0:
                loss = distillation_loss(logits, soft.to(device), y, cfg.kd_alpha, cfg.kd_temperature,
                                         cfg.label_smoothing)
            else:
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            seen += len(y)
            correct += (logits.argmax(-1) == hard_labels(y)).sum().item()
            loss_sum += loss.item() * len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        module.eval()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            val_logits = predict_logits(forward, val_inputs, device=cfg.device)
        val_loss = F.cross_entropy(val_logits, val_labels).item()
        val_acc = (val_logits.argmax(-1) == val_labels).float().mean().item()
        row = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen,
               "val_loss": val_loss, "val_acc": val_acc, "lr": opt.param_groups[0]["lr"],
               "seconds": round(time.time() - t0, 2), "images_per_s": round(seen / (time.time() - t0), 1)}
        history.append(row)
        print(f"[{desc}] epoch {epoch + 1}/{cfg.epochs} train_loss {row['train_loss']:.4f} "
              f"train_acc {row['train_acc']:.4f} val_loss {val_loss:.4f} val_acc {val_acc:.4f} "
              f"({row['seconds']}s, {row['images_per_s']} img/s)", flush=True)
        if log_path is not None:
            with log_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        if (val_acc, -val_loss) > (best["val_acc"], -best["val_loss"]):
            best, stale = {"val_acc": val_acc, "val_loss": val_loss, "epoch": epoch + 1}, 0
            best_state = copy.deepcopy(module.state_dict())
        else:
            stale += 1
            if stale >= cfg.patience:
                print(f"[{desc}] early stop after epoch {epoch + 1} (best epoch {best['epoch']})", flush=True)
                break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return {"history": history, "best": best}
