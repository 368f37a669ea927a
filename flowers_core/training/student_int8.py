"""Level 5, step 2: the student exported to ONNX and quantised statically to INT8 (ONNX Runtime QDQ), the
configuration chosen on validation; the other INT8 backends measured for the record."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from ..shipped import catalog, paths
from ..shipped import manifest as art
from ..shipped.splits import SHIPPED_PROTOCOL
from . import weights
from .distill import student_calibration
from .engine import predict_logits
from .levels import (
    Workspace,
    image_forward,
)
from .models import FlowerNet
from .onnx_edits import add_class_map_output, add_feature_output
from .quantise import export_onnx, quantise_onnx_static
from .quantise_compare import BACKENDS, compare_backends, comparison_markdown
from .recipes import MAX_PTQ_DROP, STUDENT, StudentSpec
from .timing import measure
from .transforms import eval_view
from .weights import OnnxClassifier


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
    rel = paths.onnx_file(int8_name(spec.name))
    return root / rel if protocol == SHIPPED_PROTOCOL else root / "_work" / protocol / Path(rel).name


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
        quantise_onnx_static(fp32_onnx, path, calib, **trial)
        q = OnnxClassifier(path, threads=threads)
        val_logits = predict_logits(image_forward(q, pre), val_squares, batch_size=64).numpy()
        acc = float((val_logits.argmax(-1) == val_labels).mean())
        x1 = eval_view(pre, val_squares[:1])
        tried.append({**trial, "val_top1": acc, "drop_vs_fp32": fp32_val_top1 - acc,
                      "p50_ms": round(measure(q, x1, max(3, latency_iters // 2), 3, threads)["p50_ms"], 3)})
        print(f"[{int8_name(spec.name)}/{protocol}] PTQ {trial}: val top1 {acc:.4f} (fp32 {fp32_val_top1:.4f})", flush=True)
        if fp32_val_top1 - acc <= MAX_PTQ_DROP:
            break
    best = tried[-1] if tried[-1]["drop_vs_fp32"] <= MAX_PTQ_DROP else max(tried, key=lambda r: r["val_top1"])
    config = dict(spec.quantization_trials[tried.index(best)])
    if best is not tried[-1]:  # the file on disk is the last trial's
        quantise_onnx_static(fp32_onnx, path, calib, **config)
    fp32_onnx.unlink(missing_ok=True)
    add_feature_output(path, calib[:16].numpy())  # for the novelty check (train.novelty)
    add_class_map_output(path, calib[:16].numpy())  # for the localisation stage (train.localise)
    return Quantised(path, OnnxClassifier(path, threads=threads), config, best["drop_vs_fp32"], tried, calib)




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
    rows = compare_backends(model, calibration, eval_view(pre, val_squares[:n]), ws.labels("val")[:n],
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
