"""The other INT8 paths, measured for the record against the shipped one (ONNX Runtime static QDQ): torch.ao FX,
PT2E, and QDQ of only the trunk or only the trained layers (``reports/quantization.md``)."""
from __future__ import annotations

import os
import time
import traceback
import warnings
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

from .engine import predict_logits
from .onnx_edits import layer_nodes, quantised_op_counts
from .quantise import export_onnx, quantise_onnx_static, with_static_padding
from .timing import measure
from .weights import OnnxClassifier

INPUT_NAME, OUTPUT_NAME = "input", "logits"


def quantise_torch_fx(model: nn.Module, calib: torch.Tensor, batch_size: int = 16) -> torch.jit.ScriptModule:
    """``torch.ao.quantization`` FX static PTQ (x86 engine), frozen to TorchScript."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.backends.quantized.engine = "x86"
        example = calib[:1]
        model = with_static_padding(model, calib.shape[-1])  # FX cannot trace timm's dynamic SAME padding
        prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), (example,))
        for i in range(0, len(calib), batch_size):
            prepared(calib[i: i + batch_size])
        quantized = convert_fx(prepared)
        return torch.jit.freeze(torch.jit.trace(quantized, example).eval())


def quantise_pt2e(model: nn.Module, calib: torch.Tensor, batch_size: int = 16) -> Callable:
    """torchao PT2E static PTQ with the X86 Inductor quantizer, run without ``torch.compile``
    (compiling it needs a C++ toolchain at load time, which the app must not require). torchao is imported
    here: it is a training-only package and this backend a comparison, not the shipped path."""
    from torchao.quantization.pt2e.quantise_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())
    with torch.no_grad():
        model = with_static_padding(model, calib.shape[-1])
        batch = torch.export.Dim("batch", min=1, max=1024)
        exported = torch.export.export(model, (calib[:2],), dynamic_shapes=({0: batch},)).module()
        prepared = prepare_pt2e(exported, quantizer)
        for i in range(0, len(calib), batch_size):
            prepared(calib[i: i + batch_size])
        return convert_pt2e(prepared)


# the INT8 paths, their fp32 references, and the shipped QDQ path with only one part of the network in INT8
# (where its error comes from: the frozen trunk, or the layers trained after it)
BACKENDS = ("fp32_torch", "fp32_onnx", "onnx_qdq", "onnx_qdq_trunk_only", "onnx_qdq_trained_only", "torch_fx", "pt2e")


PARTIAL_QDQ = {"onnx_qdq_trunk_only": True, "onnx_qdq_trained_only": False}  # backend -> leave the trained layers in fp32?


def compare_backends(model: nn.Module, calib: torch.Tensor, images: torch.Tensor, labels: torch.Tensor,
                     workdir: str | Path, threads: int = 2, iters: int = 30, warmup: int = 5,
                     backends: Iterable[str] = BACKENDS,
                     qdq_config: dict | None = None) -> list[dict]:
    """Accuracy on ``images``, the share of fp32 torch's answers kept (when ``fp32_torch`` runs first)
    and batch-1 latency of each INT8 backend (and the fp32 references)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    size = images.shape[-1]
    fp32_onnx = workdir / "student_fp32.onnx"
    rows, reference = [], None  # reference: fp32 torch's answers, which every INT8 path should keep
    for backend in backends:
        row = {"backend": backend}
        t0 = time.time()
        try:
            file = None
            if backend == "fp32_torch":
                fn = model.eval()
            elif backend == "fp32_onnx":
                export_onnx(model, fp32_onnx, size)
                fn, file = OnnxClassifier(fp32_onnx, threads), fp32_onnx
            elif backend == "onnx_qdq" or backend in PARTIAL_QDQ:
                if not fp32_onnx.is_file():
                    export_onnx(model, fp32_onnx, size)
                excluded = layer_nodes(fp32_onnx, model.frozen_stages, PARTIAL_QDQ[backend]) if backend in PARTIAL_QDQ else []
                file = quantise_onnx_static(fp32_onnx, workdir / f"student_int8_{backend}.onnx", calib,
                                            **(qdq_config or {}), nodes_to_exclude=excluded)
                row["config"] = qdq_config or {}
                row["int8_ops"] = quantised_op_counts(file)
                fn = OnnxClassifier(file, threads)
            elif backend == "torch_fx":
                fn = quantise_torch_fx(model, calib)
                file = workdir / "student_int8_fx.pt"
                torch.jit.save(fn, str(file))
            elif backend == "pt2e":
                fn = quantise_pt2e(model, calib)
            else:
                raise ValueError(f"unknown backend {backend!r}")
            row["convert_seconds"] = round(time.time() - t0, 1)
            answers = predict_logits(fn, images, batch_size=32).argmax(-1)
            row["accuracy"] = float((answers == labels).float().mean())
            if backend == "fp32_torch":
                reference = answers
            if reference is not None:
                row["agreement_with_fp32"] = float((answers == reference).float().mean())
            lat = measure(fn, images[:1], iters=iters, warmup=warmup, threads=threads)
            row.update(p50_ms=lat["p50_ms"], p95_ms=lat["p95_ms"])
            if file is not None:
                row["bytes"] = os.path.getsize(file)
        except Exception as e:  # a backend that cannot handle this network is a result, not a crash
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            row["traceback_tail"] = traceback.format_exc().splitlines()[-3:]
        rows.append(row)
    return rows


def comparison_markdown(rows: list[dict], threads: int, n_images: int, chosen: str = "onnx_qdq") -> str:
    lines = ["# INT8 backends for the student (measured by `python -m train.level5`)", "",
             f"Accuracy on {n_images} validation images (eval view); batch-1 latency after warm-up at "
             f"{threads} threads. Chosen: **{chosen}**.", "",
             "| backend | top-1 | agrees with fp32 | p50 ms | p95 ms | file MB | convert s | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mb = f"{r['bytes'] / 1e6:.2f}" if "bytes" in r else ""
        if "error" in r:
            lines.append(f"| {r['backend']} | – | – | – | – | {mb} | | failed: {r['error']} |")
        else:
            agree = f"{r['agreement_with_fp32'] * 100:.2f}%" if "agreement_with_fp32" in r else ""
            lines.append(f"| {r['backend']} | {r['accuracy'] * 100:.2f}% | {agree} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} "
                         f"| {mb} | {r.get('convert_seconds', '')} | {r.get('note', '')} |")
    return "\n".join(lines) + "\n"
