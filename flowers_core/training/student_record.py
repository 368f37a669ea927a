"""Level 5, step 3: both students scored as the app runs them, timed, and recorded in the manifest with their
uncertainty."""
from __future__ import annotations

import numpy as np

from ..shipped import manifest as art
from ..shipped import paths
from ..shipped.manifest import ModelEntry
from ..shipped.splits import SHIPPED_PROTOCOL
from .fits import update_uncertainty
from .levels import (
    Workspace,
    flowernet_entry,
    image_forward,
    record_predictions,
    save_shipped_weights,
)
from .models import FlowerNet
from .onnx_edits import quantised_op_counts
from .quantise import portability_record
from .recipes import MAX_PTQ_DROP, StudentSpec
from .student_int8 import Quantised, int8_name
from .timing import measure
from .transforms import eval_view


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
                      "ops": quantised_op_counts(quantised.path),
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
    x1 = eval_view(pre, ws.squares(pre.resize_size, "test")[:1])
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
        int8.file = paths.onnx_file(quantised.path.stem)
        save_shipped_weights(student, model, artifacts_root)
    else:
        quantised.path.unlink(missing_ok=True)
    art.record_model(student, artifacts_root)
    art.record_model(int8, artifacts_root)
    update_uncertainty(student.protocol, artifacts_root, (student.name, int8.name))
    return {e.name: art.model_entry(e.name, e.protocol, artifacts_root) for e in (student, int8)}
