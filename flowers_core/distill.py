"""Level 5: distil the level-4 ensemble into one small student, quantise it to INT8, calibrate
its uncertainty and export it.

Student = EfficientNet-Lite0 with the same frozen ImageNet trunk as level 3, trained by
``engine.fit`` on the cached trunk features with
``α·T²·KL(ensemble_T ‖ student_T) + (1−α)·CE(labels)``. The ensemble's soft targets are computed
once per cached training view: every member runs ``forward_from_trunk`` on its own trunk's cached
features of the same images (level 3 and the student share the Lite0 cache, levels 1-2 share
their Lite2 one), so the teacher costs head passes, not whole networks, and is cached on disk.

``run_student`` runs the level in three steps: train (``train_student``), quantise
(``quantise_student``: ONNX export, INT8 trials, the chosen file) and record (scores, latency,
the two manifest entries, uncertainty, the INT8 backend comparison).
"""
from __future__ import annotations

import functools
import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import artifacts as art
from . import catalog, weights
from .artifacts import ModelEntry
from .checks import update_uncertainty
from .data import SHIPPED_PROTOCOL, default_cache_dir
from .engine import CachedViews, TrainConfig, WithTeacher, fit, predict_logits, seed_everything
from .features import parse_view
from .models import Ensemble, FlowerNet, create_model, soft_vote
from .pipeline import (
    LEVELS,
    FullFinetune,
    Workspace,
    flowernet_entry,
    full_finetune_batches,
    image_forward,
    record_predictions,
    save_shipped_weights,
    score_on_images,
    train_level,
)
from .quantize import (
    BACKENDS,
    PORTABLE_QDQ,
    add_class_map_output,
    add_feature_output,
    calibration_images,
    compare_backends,
    comparison_markdown,
    export_onnx,
    portability_record,
    quantised_trunk,
    quantize_onnx_static,
    quantized_op_counts,
)
from .timing import measure
from .weights import OnnxClassifier

MAX_PTQ_DROP = 0.005  # quantisation-aware fine-tuning would be warranted beyond this loss of top-1


@dataclass
class StudentSpec:
    name: str = catalog.fp32_twin(catalog.PRODUCTION)
    level: int = 5
    description: str = ("Distilled student: EfficientNet-Lite0 (frozen ImageNet trunk of level 3), late stages + linear "
                        "head trained on the level-4 ensemble's soft targets (α·T²·KL + (1−α)·CE) over the "
                        "cached eval, strong-augmentation and photo-augmentation views, and the eval view through the INT8 file's "
                        "trunk; shipped as an ONNX Runtime static INT8 model.")
    arch: str = "efficientnet_lite0"
    head: str = "linear"
    teacher: str = catalog.TEACHER
    # view name + seed: the eval and strong views cached by levels 1-3, and two of the photo preset (people's photos:
    # wide frames, colour casts, blur, JPEG), which made the student better on validation and on people's photos
    views: tuple[str, ...] = ("eval", "strong0", "strong1", "strong2", "strong3", "photo0", "photo1")
    # views also run through the trunk of the INT8 file (``quantize.quantised_trunk``: the calibration images and the
    # first quantisation trial): most of the INT8 file's error is its frozen trunk's, so the trained layers learn to
    # read what that trunk computes (soft targets: the teacher's on the same view), and the epoch is chosen on the
    # validation images through that trunk, the path the app runs
    int8_trunk_views: tuple[str, ...] = ("eval",)
    input_size: int | None = None
    calibration_images: int = 256
    # ONNX Runtime static PTQ configurations, in order of preference (the first within 0.5 point of fp32
    # on val is shipped). Full-range u8s8 is left out: its accuracy depends on the CPU that runs it (exact
    # on VNNI CPUs, saturating on AVX2-only ones, where an earlier student lost 4 points), and the trials
    # only see the CPU they run on. 7-bit weights (reduce_range) cannot saturate; the first trial widens
    # them to 8 bits wherever the AVX2 kernels still cannot saturate (``quantize.u8s8_pair_bound``), which
    # brought the frozen trunk's INT8 output from 22% to 14% off fp32's (relative L2 on val).
    quantization_trials: tuple[dict, ...] = (
        PORTABLE_QDQ,
        {"method": "MinMax", "types": "u8s8", "reduce_range": True},
        {"method": "MinMax", "types": "u8u8", "reduce_range": False},
        {"method": "Percentile", "types": "u8u8", "reduce_range": False},
    )
    config: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=15, lr=1e-3, weight_decay=0.05, label_smoothing=0.0, patience=5, kd_alpha=0.7, kd_temperature=4.0))
    # With the whole network trained (a GPU), the teacher runs on every augmented batch the student sees, so
    # the student learns the teacher's function on people's-photo views rather than on a few cached ones.
    full: FullFinetune = field(default_factory=lambda: FullFinetune("photo", TrainConfig(
        epochs=40, lr=5e-4, weight_decay=0.05, warmup_epochs=1.0, patience=40, kd_alpha=0.9, kd_temperature=2.0),
        mix=0.5))

    def __post_init__(self):
        if not set(self.int8_trunk_views) <= set(self.views):
            raise ValueError(f"int8_trunk_views {self.int8_trunk_views} must be among the views {self.views}: "
                             "they take the teacher's soft targets of those views")


STUDENT = StudentSpec()


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
    log_rel = f"logs/{spec.name}_{protocol}.jsonl"
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
    log_rel = f"logs/{spec.name}_{protocol}.jsonl"
    result = fit(model, model.forward, train, pre.eval_view(ws.squares(pre.resize_size, "val")), ws.labels("val"),
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


# ---------------------------------------------------------------------------------------------
# Level 5, step 2: quantise
# ---------------------------------------------------------------------------------------------
@dataclass
class Quantised:
    """The student's INT8 file as ``quantise_student`` leaves it, and how it was chosen."""

    path: Path
    model: OnnxClassifier  # the file, loaded
    config: dict  # the chosen trial of ``StudentSpec.quantization_trials``
    drop_vs_fp32: float  # the chosen file's loss of val top-1 against fp32
    trials: list[dict]  # every trial run: its configuration, val top-1, drop vs fp32 and p50 latency
    calibration: torch.Tensor  # the eval-view training images the activation ranges were calibrated on


def int8_name(student: str) -> str:
    """The INT8 twin's name: the catalogue's, or ``<student>_int8`` for a student the catalogue does not ship."""
    return catalog.int8_twin(student) or f"{student}_int8"


def int8_path(spec: StudentSpec, protocol: str, artifacts_root=None) -> Path:
    """Where the INT8 file is written: ``models/`` on the shipped protocol, a scratch folder otherwise."""
    root = art.artifacts_dir(artifacts_root)
    folder = root / "models" if protocol == SHIPPED_PROTOCOL else root / "_work" / protocol
    return folder / f"{int8_name(spec.name)}.onnx"


def quantise_student(model: FlowerNet, spec: StudentSpec, protocol: str, ws: Workspace, fp32_val_top1: float,
                     artifacts_root=None, threads: int = 2, latency_iters: int = 50) -> Quantised:
    """Export the student to ONNX and quantise it statically (ONNX Runtime QDQ) to ``int8_path``:
    ``spec``'s trials in order of preference, the first within ``MAX_PTQ_DROP`` of fp32 on val wins
    (none: the most accurate)."""
    pre = model.preprocess
    path = int8_path(spec, protocol, artifacts_root)
    fp32_onnx = export_onnx(model, art.artifacts_dir(artifacts_root) / "_work" / f"{spec.name}_{protocol}_fp32.onnx",
                            pre.input_size)
    calib = student_calibration(model, ws, spec.calibration_images)
    val_squares, val_labels = ws.squares(pre.resize_size, "val"), ws.labels("val").numpy()
    tried = []
    for trial in spec.quantization_trials:
        quantize_onnx_static(fp32_onnx, path, calib, **trial)
        q = OnnxClassifier(path, threads=threads)
        val_logits = predict_logits(image_forward(q, pre), val_squares, batch_size=64).numpy()
        acc = float((val_logits.argmax(-1) == val_labels).mean())
        x1 = pre.eval_view(val_squares[:1])
        tried.append({**trial, "val_top1": acc, "drop_vs_fp32": fp32_val_top1 - acc,
                      "p50_ms": round(measure(q, x1, max(3, latency_iters // 2), 3, threads)["p50_ms"], 3)})
        print(f"[{int8_name(spec.name)}/{protocol}] PTQ {trial}: val top1 {acc:.4f} (fp32 {fp32_val_top1:.4f})", flush=True)
        if fp32_val_top1 - acc <= MAX_PTQ_DROP:
            break
    best = tried[-1] if tried[-1]["drop_vs_fp32"] <= MAX_PTQ_DROP else max(tried, key=lambda r: r["val_top1"])
    config = dict(spec.quantization_trials[tried.index(best)])
    if best is not tried[-1]:  # the file on disk is the last trial's
        quantize_onnx_static(fp32_onnx, path, calib, **config)
    fp32_onnx.unlink(missing_ok=True)
    add_feature_output(path, calib[:16].numpy())  # for the novelty check (train.novelty)
    add_class_map_output(path, calib[:16].numpy())  # for the localisation stage (train.localise)
    return Quantised(path, OnnxClassifier(path, threads=threads), config, best["drop_vs_fp32"], tried, calib)


# ---------------------------------------------------------------------------------------------
# Level 5, step 3: record (scores, manifest entries, reports)
# ---------------------------------------------------------------------------------------------
def student_entry(model: FlowerNet, spec: StudentSpec, protocol: str, info: dict) -> ModelEntry:
    """The fp32 student's manifest entry with its training record (``info``), before scoring."""
    return flowernet_entry(model, spec.name, spec.level, spec.description, protocol, info["train_config"]["device"],
                           **{"augment": "distillation", **info})  # whole-network training names its own


def int8_entry(student: ModelEntry, quantised: Quantised) -> ModelEntry:
    """The INT8 twin's manifest entry, before scoring: what it is and how it was quantised."""
    calib = len(quantised.calibration)
    return ModelEntry(
        name=int8_name(student.name), level=student.level, protocol=student.protocol, format="onnx",
        preprocess=student.preprocess, split=student.split, num_classes=student.num_classes, params=student.params,
        description="The student, static post-training INT8 (ONNX Runtime QDQ: per-channel int8 weights, uint8 "
                    "activations) of the whole network, convolutions and classifier; calibrated on "
                    f"{calib} training images (eval view, {quantised.config}).",
        fp32_twin=student.name,
        quantization={"runtime": "onnxruntime", "format": "QDQ", "per_channel": True, "config": quantised.config,
                      "calibration_images": calib, "trials": quantised.trials,
                      "ops": quantized_op_counts(quantised.path),
                      **portability_record(quantised.path),
                      "qat": "not needed" if quantised.drop_vs_fp32 <= MAX_PTQ_DROP
                      else "warranted (PTQ loses more than 0.5 points on val) but not run"},
    )


def score_int8(int8: ModelEntry, quantised: Quantised, pre, student_logits: dict[str, np.ndarray], ws: Workspace,
               teacher: str, artifacts_root=None) -> None:
    """Score the INT8 file on val and test as the app runs it (``pre``'s eval view); record how
    often it agrees with the fp32 student and how far below the teacher it lands on test."""
    squares = {p: ws.squares(pre.resize_size, p) for p in ("val", "test")}
    q_logits = record_predictions(int8, image_forward(quantised.model, pre), squares, ws, "cpu", artifacts_root)
    int8.details["agreement_with_fp32"] = {p: float((q_logits[p].argmax(-1) == student_logits[p].argmax(-1)).mean())
                                           for p in q_logits}
    teacher_top1 = art.model_entry(teacher, int8.protocol, artifacts_root).top1("test")
    int8.details["test_gap_vs_ensemble"] = teacher_top1 - int8.top1("test")


def add_latencies(student: ModelEntry, model: FlowerNet, int8: ModelEntry, quantised: Quantised, ws: Workspace,
                  threads: int, iters: int) -> None:
    """Batch-1 latency of both files in this process, after warm-up, on a test image."""
    pre = model.preprocess
    x1 = pre.eval_view(ws.squares(pre.resize_size, "test")[:1])
    for entry, fn, runtime in ((int8, quantised.model, "onnxruntime"), (student, model, "torch eager")):
        entry.latency = {**{k: round(v, 3) for k, v in measure(fn, x1, iters, 10, threads).items()
                            if k != "times_ms"},  # the manifest keeps the summary, not every call
                         "threads": threads, "runtime": runtime}


def record_students(student: ModelEntry, model: FlowerNet, int8: ModelEntry, quantised: Quantised,
                    artifacts_root=None) -> dict[str, ModelEntry]:
    """Ship both files (shipped protocol; elsewhere the INT8 file is dropped), record both entries
    and fit their uncertainty from the saved probabilities. Returns the entries as recorded."""
    int8.details["file_bytes"] = quantised.path.stat().st_size
    if student.protocol == SHIPPED_PROTOCOL:
        int8.file = f"models/{quantised.path.name}"
        save_shipped_weights(student, model, artifacts_root)
    else:
        quantised.path.unlink(missing_ok=True)
    art.record_model(student, artifacts_root)
    art.record_model(int8, artifacts_root)
    update_uncertainty(student.protocol, artifacts_root, (student.name, int8.name))
    return {e.name: art.model_entry(e.name, e.protocol, artifacts_root) for e in (student, int8)}


BACKEND_NOTES = {  # what a row of the INT8 backend comparison is, where its name does not say
    "pt2e": "eager reference kernels (inductor compile needs a C++ toolchain at load)",
    "torch_fx": "torch.ao FX is deprecated in this torch",
    "onnx_qdq_trunk_only": "onnx_qdq with the trained layers left in fp32: the frozen trunk's share of the INT8 error",
    "onnx_qdq_trained_only": "onnx_qdq with the frozen trunk left in fp32: the trained layers' share of the INT8 error",
}


def compare_int8_backends(model: FlowerNet, calibration: torch.Tensor, qdq_config: dict, ws: Workspace, protocol: str,
                          artifacts_root=None, threads: int = 2, iters: int = 50, backends: tuple[str, ...] = BACKENDS) -> None:
    """Measure the other INT8 backends against the chosen one (ONNX Runtime QDQ with ``qdq_config``),
    each calibrated on ``calibration``, on val: the manifest's ``quantization_comparison`` and
    ``reports/quantization.md``."""
    root = art.artifacts_dir(artifacts_root)
    pre = model.preprocess
    val_squares = ws.squares(pre.resize_size, "val")
    n = min(len(val_squares), 512)
    rows = compare_backends(model, calibration, pre.eval_view(val_squares[:n]), ws.labels("val")[:n],
                            root / "_work" / "compare", threads=threads, iters=iters, qdq_config=qdq_config,
                            backends=backends)
    for r in rows:
        if "error" not in r and r["backend"] in BACKEND_NOTES:
            r["note"] = BACKEND_NOTES[r["backend"]]
    comparison = {"chosen": "onnx_qdq", "threads": threads, "n_images": n, "split": "val", "rows": rows,
                  "reason": "static INT8 of the whole network that loads with onnxruntime alone (no training "
                            "classes, no compile step); see reports/quantization.md for the measurements"}
    art.update_manifest(artifacts_root, quantization_comparison={protocol: comparison})
    report = root / "reports" / "quantization.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(comparison_markdown(rows, threads, n))
    shutil.rmtree(root / "_work" / "compare", ignore_errors=True)


def compare_shipped_int8_backends(protocol: str, ws: Workspace, artifacts_root=None, spec: StudentSpec = STUDENT,
                                  threads: int = 2, iters: int = 50, backends: tuple[str, ...] = BACKENDS) -> None:
    """``compare_int8_backends`` for the recorded student, with the calibration images and QDQ
    configuration its INT8 twin was made with (no training, no re-scoring)."""
    student = art.model_entry(spec.name, protocol, artifacts_root)
    int8 = art.model_entry(int8_name(spec.name), protocol, artifacts_root)
    model = weights.build_flowernet(student, artifacts_root).eval()
    calib = student_calibration(model, ws, int8.quantization["calibration_images"])
    compare_int8_backends(model, calib, int8.quantization["config"], ws, protocol, artifacts_root, threads, iters,
                          backends)


# ---------------------------------------------------------------------------------------------
# Level 5, end to end
# ---------------------------------------------------------------------------------------------
def run_student(protocol: str, ws: Workspace, device: str = "cpu", epochs: int | None = None, artifacts_root=None,
                spec: StudentSpec = STUDENT, threads: int = 2, latency_iters: int = 50,
                compare: bool | None = None, trained: tuple[FlowerNet, dict] | None = None,
                train_only: bool = False) -> dict[str, ModelEntry]:
    """Train the student, record it (fp32, "student") and its INT8 twin ("student_int8").

    On the shipped protocol both files go to ``models/`` and the INT8 backends are compared;
    on the other protocol the same steps run in a scratch folder and only metrics are recorded.
    """
    compare = protocol == SHIPPED_PROTOCOL if compare is None else compare
    model, info = trained or train_student(spec, protocol, ws, device, epochs, artifacts_root)
    student = student_entry(model, spec, protocol, info)
    if train_only:  # the machine has only the training images: keep the weights and the record for --from-trained
        save_shipped_weights(student, model, artifacts_root)
        art.record_model(student, artifacts_root)
        return {student.name: student}

    student_logits = score_on_images(student, model, ws, device, artifacts_root)  # shipped fp16 weights, as the app
    model = model.cpu().eval()
    quantised = quantise_student(model, spec, protocol, ws, student.top1("val"), artifacts_root, threads,
                                 latency_iters)
    int8 = int8_entry(student, quantised)
    score_int8(int8, quantised, model.preprocess, student_logits, ws, spec.teacher, artifacts_root)
    add_latencies(student, model, int8, quantised, ws, threads, latency_iters)
    recorded = record_students(student, model, int8, quantised, artifacts_root)
    if compare:
        compare_int8_backends(model, quantised.calibration, quantised.config, ws, protocol, artifacts_root, threads,
                              latency_iters)

    for e in recorded.values():
        print(f"[{e.name}/{protocol}] val top1 {e.top1('val'):.4f} test top1 {e.top1('test'):.4f} "
              f"p50 {e.latency['p50_ms']:.1f} ms", flush=True)
    return recorded
