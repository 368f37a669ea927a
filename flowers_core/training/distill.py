"""Level 5, step 1: distil the level-4 ensemble into one small student.

Student = EfficientNet-Lite0 with the same frozen ImageNet trunk as level 3, trained by
``engine.fit`` on the cached trunk features with
``α·T²·KL(ensemble_T ‖ student_T) + (1−α)·CE(labels)``. The ensemble's soft targets are computed
once per cached training view: every member runs ``forward_from_trunk`` on its own trunk's cached
features of the same images (level 3 and the student share the Lite0 cache, levels 1-2 share
their Lite2 one), so the teacher costs head passes, not whole networks, and is cached on disk.

Level 5 reads top to bottom in ``level5.run_level5``: this module trains the student (``train_student``);
``student_int8`` quantises it, ``student_record`` scores and records both files.
"""
from __future__ import annotations

import functools
import hashlib
import json
import time
from dataclasses import replace
from typing import Callable

import numpy as np
import torch

from ..shipped import catalog, paths
from ..shipped import manifest as art
from ..shipped.manifest import ModelEntry
from . import weights
from .data import default_cache_dir
from .engine import CachedViews, TrainConfig, WithTeacher, fit, predict_logits, seed_everything
from .features import parse_view
from .levels import Workspace, full_finetune_batches, image_forward, train_level
from .models import Ensemble, FlowerNet, create_model, soft_vote
from .quantise import (
    calibration_images,
    quantised_trunk,
)
from .recipes import LEVELS, STUDENT, StudentSpec
from .transforms import eval_view


# ---------------------------------------------------------------------------------------------
# Teacher
# ---------------------------------------------------------------------------------------------
def teacher_members(protocol: str, ws: Workspace, device: str = "cpu", teacher: str = catalog.TEACHER,
                    artifacts_root=None) -> list[FlowerNet]:
    """The ensemble's members with their trained weights. Weights are shipped for the stratified
    protocol only; on the other protocol a member is re-trained with its level's recipe (same seed,
    same cached features, so the same model ``run_level`` produced)."""
    members = []
    for name in art.model_entry(teacher, protocol, artifacts_root).members:
        m_entry = art.model_entry(name, protocol, artifacts_root)
        if m_entry.weights and (art.artifacts_dir(artifacts_root) / m_entry.weights).is_file():
            members.append(weights.build_flowernet(m_entry, artifacts_root))
            continue
        spec = replace(LEVELS[name], input_size=m_entry.preprocess["input_size"],
                       config=TrainConfig(**{**m_entry.details["train_config"], "device": device}))
        print(f"[student/{protocol}] re-training teacher member {name} (weights not shipped for this protocol)")
        members.append(train_level(spec, ws, device, frozen_stages=int(m_entry.frozen_stages),
                                   desc=f"teacher {name}/{protocol}").model)
    return members


@torch.no_grad()
def teacher_soft_targets(members: list[FlowerNet], views_of: Callable[[FlowerNet], torch.Tensor], temperature: float,
                         member_weights: list[float] | None = None, cache_key: str | None = None, device: str = "cpu",
                         batch_size: int = 256, member_temperatures: list[float] | None = None) -> torch.Tensor:
    """The ensemble's ``soft_vote`` at temperatures T_m·T for every cached view, as probabilities:
    ``[V, N, C]`` float16, where T_m is the member's calibration temperature in the ensemble (1 by
    default) and T the distillation temperature.

    ``views_of(member)`` gives that member's trunk features ``[V, N, ...]`` of the student's
    training views (the same images: every model here shares the decoded squares and the view seeds);
    members with the same trunk share one tensor. With ``cache_key`` the result is stored under
    the feature cache and reused.
    """
    path = None
    if cache_key is not None:
        trunks = sorted({m.trunk_key for m in members})
        digest = hashlib.sha1(f"{cache_key}|{temperature}|{member_weights}|{member_temperatures}|{trunks}".encode()).hexdigest()[:12]
        path = default_cache_dir() / "teacher" / f"soft_T{temperature:g}_{digest}.npy"
        if path.is_file():
            return torch.from_numpy(np.load(path))
    features: dict[tuple, torch.Tensor] = {}
    logits = []
    for m in members:
        if m.trunk_key not in features:
            features[m.trunk_key] = views_of(m)
        views = features[m.trunk_key]
        m.eval().to(device)
        logits.append(torch.stack([predict_logits(m.forward_from_trunk, views[v], batch_size, device)
                                   for v in range(views.shape[0])]))
    temperatures = [tm * temperature for tm in member_temperatures or [1.0] * len(members)]
    soft = soft_vote(logits, temperatures, member_weights).to(torch.float16)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, soft.numpy())
    return soft


# ---------------------------------------------------------------------------------------------
# Level 5, step 1: train
# ---------------------------------------------------------------------------------------------
def train_student(spec: StudentSpec, protocol: str, ws: Workspace, device: str = "cpu", epochs: int | None = None,
                  artifacts_root=None, frozen_stages: int | None = None) -> tuple[FlowerNet, dict]:
    """Distil the teacher into the student: on cached trunk features on CPU, or the whole network
    with the teacher run on the fly (``device='cuda'`` or ``frozen_stages=0``)."""
    teacher_entry = art.model_entry(spec.teacher, protocol, artifacts_root)
    members = teacher_members(protocol, ws, device, spec.teacher, artifacts_root)
    input_size = spec.input_size or teacher_entry.preprocess["input_size"]
    if frozen_stages is None and device != "cpu":
        frozen_stages = 0
    if frozen_stages == 0:
        return train_student_full(spec, protocol, ws, members, teacher_entry, device, epochs, artifacts_root)
    cfg = replace(spec.config, device=device, epochs=epochs or spec.config.epochs)
    frozen = next((m.frozen_stages for m in members if m.arch == spec.arch), None)  # share a member's trunk cache
    seed_everything(cfg.seed)
    model = create_model(spec.arch, spec.head, len(ws.index.classes), input_size=input_size, frozen_stages=frozen)
    model.freeze_trunk()
    t0 = time.time()
    stacked: dict[tuple, torch.Tensor] = {}

    def views_of(m: FlowerNet) -> torch.Tensor:  # one [V, N, ...] tensor per trunk (the student shares level 3's)
        if m.trunk_key not in stacked:
            stacked[m.trunk_key] = torch.stack([ws.features(m, "train", *parse_view(v)) for v in spec.views])
        return stacked[m.trunk_key]

    views = views_of(model)
    soft = teacher_soft_targets(members, views_of, cfg.kd_temperature, teacher_entry.weights_per_member,
                                member_temperatures=teacher_entry.member_temperatures,
                                cache_key=f"{protocol}|{spec.teacher}|{spec.views}|{teacher_entry.metrics}",
                                device=device)
    teacher_agree = float((soft[0].float().argmax(-1) == ws.labels("train")).float().mean())
    if spec.int8_trunk_views:
        trunk, trunk_name = int8_trunk(model, spec, ws, artifacts_root)
        views = torch.cat([views, torch.stack([ws.features(model, "train", *parse_view(v), trunk=trunk, trunk_name=trunk_name)
                                               for v in spec.int8_trunk_views])])
        soft = torch.cat([soft, soft[[spec.views.index(v) for v in spec.int8_trunk_views]]])
        val_features = ws.features(model, "val", trunk=trunk, trunk_name=trunk_name)
    else:
        val_features = ws.features(model, "val")
    prep_seconds = time.time() - t0
    train = CachedViews(views, ws.labels("train"), cfg.batch_size, soft=soft, seed=cfg.seed)
    root = art.artifacts_dir(artifacts_root)
    log_rel = paths.log_file(spec.name, protocol)
    result = fit(model.trainable(), model.forward_from_trunk, train, val_features, ws.labels("val"),
                 cfg, root / log_rel, desc=f"{spec.name}/{protocol}")
    info = {"best_epoch": result["best"]["epoch"], "log": log_rel, "train_config": cfg.to_dict(),
            "feature_cache_seconds": round(prep_seconds, 1),
            "train_seconds": round(time.time() - t0 - prep_seconds, 1),
            "teacher": spec.teacher, "teacher_members": list(teacher_entry.members),
            "teacher_train_top1_eval_view": teacher_agree, "views": list(spec.views),
            "int8_trunk_views": list(spec.int8_trunk_views),
            "epoch_chosen_on": "validation through the INT8 trunk" if spec.int8_trunk_views else "validation"}
    return weights.round_to_shipped(model.eval()), info


def student_calibration(model: FlowerNet, ws: Workspace, n: int) -> torch.Tensor:
    """The ``n`` training images (eval view) that the student's INT8 files are calibrated on: the shipped file,
    the backend comparison's remake of it and the INT8 trunk it is distilled on compute the same trunk only
    if they share them."""
    pre = model.preprocess
    return calibration_images(ws.squares(pre.resize_size, "train"), pre, n)


def int8_trunk(model: FlowerNet, spec: StudentSpec, ws: Workspace, artifacts_root=None) -> tuple[Callable, str]:
    """The trunk of the INT8 file that ``quantise_student`` makes first for ``model`` (same calibration
    images, the first of ``spec.quantization_trials``), and a name for its cached features. The file is
    made on the first call only: a run whose features are all cached never quantises."""
    config = spec.quantization_trials[0]
    name = "int8-" + hashlib.sha1(json.dumps([config, spec.calibration_images], sort_keys=True).encode()).hexdigest()[:8]
    workdir = art.artifacts_dir(artifacts_root) / "_work" / f"int8_trunk_{ws.protocol}"

    @functools.cache
    def built() -> Callable:
        calib = student_calibration(model, ws, spec.calibration_images)
        return quantised_trunk(model, calib, config, workdir, threads=torch.get_num_threads())

    return (lambda x: built()(x)), name


def train_student_full(spec: StudentSpec, protocol: str, ws: Workspace, members: list[FlowerNet],
                       teacher_entry: ModelEntry, device: str, epochs: int | None,
                       artifacts_root=None) -> tuple[FlowerNet, dict]:
    """The whole student trained on images augmented on the fly, its soft targets the teacher's
    (temperature-scaled soft vote, ``models.Ensemble``) on the very same augmented batch."""
    full = spec.full
    cfg = replace(full.config, device=device, epochs=epochs or full.config.epochs)
    seed_everything(cfg.seed)
    model = create_model(spec.arch, spec.head, len(ws.index.classes),
                         input_size=spec.input_size or teacher_entry.preprocess["input_size"], frozen_stages=0)
    pre = model.preprocess
    temperatures = teacher_entry.member_temperatures or [1.0] * len(members)
    teacher = Ensemble(members, teacher_entry.weights_per_member,
                       [t * cfg.kd_temperature for t in temperatures]).eval().to(device)
    t0 = time.time()
    train = WithTeacher(full_finetune_batches(ws, pre, full, cfg, device), lambda x: teacher(x).exp(), device)
    teacher_logits = predict_logits(image_forward(teacher, pre), ws.squares(pre.resize_size, "train"), 64, device)
    teacher_agree = float((teacher_logits.argmax(-1) == ws.labels("train")).float().mean())
    prep_seconds = time.time() - t0
    log_rel = paths.log_file(spec.name, protocol)
    result = fit(model, model.forward, train, eval_view(pre, ws.squares(pre.resize_size, "val")), ws.labels("val"),
                 cfg, art.artifacts_dir(artifacts_root) / log_rel, desc=f"{spec.name}/{protocol}")
    teacher.cpu()
    info = {"best_epoch": result["best"]["epoch"], "log": log_rel, "train_config": cfg.to_dict(),
            "feature_cache_seconds": round(prep_seconds, 1), "train_seconds": round(time.time() - t0 - prep_seconds, 1),
            "teacher": spec.teacher, "teacher_members": list(teacher_entry.members),
            "teacher_train_top1_eval_view": teacher_agree, "augment": full.augment, "batch_mix": full.mix,
            "views": "augmented on the fly; the teacher scores each batch"}
    return weights.round_to_shipped(model.eval().cpu()), info


def load_trained_student(protocol: str, source_root, spec: StudentSpec = STUDENT) -> tuple[FlowerNet, dict]:
    """A student trained elsewhere (``train.level5 --train-only``): its weights and training record."""
    entry = art.model_entry(spec.name, protocol, source_root)
    keys = ("best_epoch", "log", "train_config", "feature_cache_seconds", "train_seconds", "teacher",
            "teacher_members", "teacher_train_top1_eval_view", "views", "int8_trunk_views", "epoch_chosen_on", "augment",
            "batch_mix")
    return weights.build_flowernet(entry, source_root), {k: entry.details[k] for k in keys if k in entry.details}
