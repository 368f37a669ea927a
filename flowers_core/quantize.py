"""INT8 conversion and export of the level-5 student.

The shipped INT8 model is an ONNX Runtime **static** QDQ model: every convolution and the
classifier get per-channel INT8 weights and UINT8 activations calibrated on training images (eval
view). It is one self-contained ``.onnx`` file: loading it needs ``onnxruntime`` only (no training
classes, no unpickling, no C++ compile step) and takes well under a second.

``compare_backends`` measures the alternatives the issue names on the same data and thread count
(ORT QDQ, ``torch.ao`` FX x86 -> TorchScript, torchao PT2E X86 when installed) so the choice is a
recorded measurement, written to the manifest and ``reports/quantization.md``.
"""
from __future__ import annotations

import copy
import math
import os
import time
import traceback
import warnings
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from torch import nn
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

from .engine import predict_logits
from .localise import CLASS_MAPS_OUTPUT
from .novelty import FEATURES_OUTPUT
from .runtime import OnnxSession
from .timing import measure
from .weights import OnnxClassifier

INPUT_NAME, OUTPUT_NAME = "input", "logits"
TRUNK_OUTPUT = "trunk"  # the frozen trunk's output, a second output of ``quantised_trunk``'s file


# ---------------------------------------------------------------------------------------------
# Export and ONNX Runtime static quantisation
# ---------------------------------------------------------------------------------------------
def with_static_padding(model: nn.Module, input_size: int) -> nn.Module:
    """A copy of ``model`` whose TF-"SAME" convolutions (timm ``Conv2dSame``: padding computed from
    the input shape at every call) become ``ZeroPad2d`` + ``Conv2d`` with the padding of
    ``input_size``. Same outputs at that size; the exported graph has no shape arithmetic, which
    ONNX Runtime's quantiser and graph fusions handle (the dynamic version breaks QDQ at small sizes).
    """
    model = copy.deepcopy(model).eval()
    same = [(name, m) for name, m in model.named_modules() if type(m).__name__ == "Conv2dSame"]
    shapes: dict[str, tuple[int, int]] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, n=name: shapes.__setitem__(n, tuple(args[0].shape[-2:])))
             for name, m in same]
    with torch.no_grad():
        model(torch.zeros(1, 3, input_size, input_size))
    for h in hooks:
        h.remove()
    for name, m in same:
        pads = []
        for size, k, s, d in zip(shapes[name], m.kernel_size, m.stride, m.dilation):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        conv = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, 0, m.dilation, m.groups,
                         bias=m.bias is not None)
        conv.load_state_dict(m.state_dict())
        (ph, pw) = pads
        replacement = nn.Sequential(nn.ZeroPad2d((pw[0], pw[1], ph[0], ph[1])), conv)
        parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        setattr(parent, name.rsplit(".", 1)[-1], replacement)
    return model


def export_onnx(model: nn.Module, path: str | Path, input_size: int, opset: int = 17,
                output_names: tuple[str, ...] = (OUTPUT_NAME,)) -> Path:
    """The full fp32 network (trunk + late stages + head) with a dynamic batch dimension; ``output_names``
    name the model's outputs (one by default: the logits).

    The TorchScript-based exporter is used (``dynamo=False``; it needs no ``onnxscript``), on a
    copy with static "SAME" padding for ``input_size`` (``with_static_padding``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = with_static_padding(model, input_size)
    example = torch.zeros(1, 3, input_size, input_size)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), input_names=[INPUT_NAME], output_names=list(output_names),
                          dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *output_names)},
                          opset_version=opset, dynamo=False)
    return path


def calibration_images(squares: torch.Tensor, preprocess, n: int = 256, seed: int = 0) -> torch.Tensor:
    """``n`` training images (a fixed random subset), in the eval view the model is run on."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(squares), generator=g)[:n]
    return preprocess.eval_view(squares[idx])


QUANT_TYPES = {"u8s8": ("QUInt8", "QInt8"), "u8u8": ("QUInt8", "QUInt8"), "s8s8": ("QInt8", "QInt8")}


def quantize_onnx_static(fp32_path: str | Path, int8_path: str | Path, calib: torch.Tensor,
                         method: str = "MinMax", types: str = "u8s8", reduce_range: bool = False,
                         batch_size: int = 16, per_channel: bool = True, nodes_to_exclude: Iterable[str] = (),
                         saturation_free_8bit: bool = False) -> Path:
    """Static QDQ INT8 of every Conv and the classifier Gemm: per-channel weights, activations
    calibrated on ``calib``. ``types`` = activation/weight types: ``u8s8`` (fastest with VNNI),
    ``u8u8`` (no u8s8 saturation on AVX2-only CPUs), ``s8s8``; ``reduce_range`` = 7-bit weights;
    ``saturation_free_8bit`` (with u8s8 and ``reduce_range``): 8-bit weights wherever the AVX2 kernels
    cannot saturate (``saturation_free_weight_overrides``), 7-bit elsewhere;
    ``nodes_to_exclude``: nodes left in fp32 (``layer_nodes``)."""
    if saturation_free_8bit and (types != "u8s8" or not reduce_range):
        raise ValueError("saturation_free_8bit refines u8s8 with reduce_range (7-bit weights wherever it cannot widen)")
    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    pre = int8_path.with_name(int8_path.stem + ".pre.onnx")
    quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
    overrides = saturation_free_weight_overrides(pre) if saturation_free_8bit else {}
    arr = calib.float().numpy()

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{INPUT_NAME: np.ascontiguousarray(arr[i: i + batch_size])}
                                 for i in range(0, len(arr), batch_size)])

        def get_next(self):
            return next(self.batches, None)

    try:
        quantize_static(str(pre), str(int8_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=getattr(QuantType, QUANT_TYPES[types][0]),
                        weight_type=getattr(QuantType, QUANT_TYPES[types][1]), reduce_range=reduce_range,
                        calibrate_method=getattr(CalibrationMethod, method), nodes_to_exclude=list(nodes_to_exclude),
                        extra_options={"CalibMovingAverage": False, "TensorQuantOverrides": overrides})
    finally:
        pre.unlink(missing_ok=True)
        for extra in int8_path.parent.glob("augmented_model*.onnx"):
            extra.unlink(missing_ok=True)
    return int8_path


# ONNX Runtime's u8s8 kernels without VNNI (AVX2) multiply with VPMADDUBSW, which adds the products of two
# neighbouring input channels in int16 and saturates: a pair whose same-sign weights sum to more than 128 in
# magnitude can clip with uint8 activations (255 * 128 = 32,640 <= 32,767). Depthwise convolutions take
# another kernel that widens every product to 32 bits (MLAS's depthwise u8s8 kernels), so any int8 weight is
# exact there. Full-range per-channel weights break the pair bound; 7-bit weights (|q| <= 64) keep it
# everywhere but at half the resolution.
U8S8_PAIR_LIMIT = 128
_INT8_MAX = 127
# the configuration of every shipped INT8 file: exact on every x86 CPU, as many weight bits as that allows
PORTABLE_QDQ = {"method": "MinMax", "types": "u8s8", "reduce_range": True, "saturation_free_8bit": True}


def _conv_kind(node: onnx.NodeProto, weight: np.ndarray) -> str:
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    if group > 1 and weight.shape[1] == 1:
        return "depthwise"
    return "pointwise" if weight.shape[2:] == (1, 1) and group == 1 else "other"


def saturation_free_weight_overrides(path: str | Path) -> dict:
    """``TensorQuantOverrides`` for ONNX Runtime's ``quantize_static`` (with ``reduce_range``) that give the
    weights as many bits as the pair bound allows: depthwise convolutions full 8-bit per channel; pointwise
    (1x1) ones a per-channel scale at which no two neighbouring input channels' weights of the same sign
    exceed ``U8S8_PAIR_LIMIT`` together after rounding (so at most 8 bits, at least 7); other convolutions
    and the classifier stay at 7 bits. The bound holds for either pairing of neighbours."""
    graph = onnx.load(str(path)).graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    overrides = {}
    for node in graph.node:
        if node.op_type != "Conv" or node.input[1] not in weights:
            continue
        w = weights[node.input[1]]
        kind = _conv_kind(node, w)
        if kind == "depthwise":
            overrides[node.input[1]] = [{"reduce_range": False, "axis": 0}]
        elif kind == "pointwise":
            rows = w.reshape(w.shape[0], -1).astype(np.float64)
            pair = _pair_sums(rows).max(1)
            # rounding adds at most 1/2 to each of a pair's two codes: a pair at <= 127 steps stays <= 128
            scales = np.maximum(np.abs(rows).max(1) / _INT8_MAX, pair / (U8S8_PAIR_LIMIT - 1))
            scales[scales == 0] = 1.0  # an all-zero channel: ONNX Runtime's own choice, which keeps its bias in range
            overrides[node.input[1]] = [{"scale": np.float32(s), "zero_point": np.int8(0)} for s in scales]
            overrides[node.input[1]][0]["axis"] = 0
    return overrides


def _pair_sums(rows: np.ndarray) -> np.ndarray:
    """For each row and each pair of neighbours, the largest magnitude ``x1*w1 + x2*w2`` reaches per unit of
    non-negative input: the sum of the pair's positive weights or of its negative ones."""
    a, b = rows[:, :-1], rows[:, 1:]
    positive = np.maximum(a, 0) + np.maximum(b, 0)
    negative = np.maximum(-a, 0) + np.maximum(-b, 0)
    return np.maximum(positive, negative) if rows.shape[1] > 1 else np.abs(rows)


def _two_largest(rows: np.ndarray) -> int:
    return int(np.sort(rows, axis=1)[:, -2:].sum(1).max())


def u8s8_pair_bound(path: str | Path) -> int:
    """The largest pair of int8 weight codes that a QDQ file's u8s8 products add in int16 on AVX2, over every
    convolution and the classifier (``U8S8_PAIR_LIMIT`` or less: the file cannot saturate). Depthwise
    convolutions are left out (their kernel widens each product); for pointwise ones and the classifier the
    pairs are neighbouring input channels; for other convolutions any two weights of an output channel."""
    graph = onnx.load(str(path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    quantised = {n.output[0]: init[n.input[0]] for n in graph.node
                 if n.op_type == "DequantizeLinear" and n.input[0] in init and init[n.input[0]].dtype == np.int8}
    worst = 0
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm") or node.input[1] not in quantised:
            continue
        q = quantised[node.input[1]].astype(np.int64)
        if node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            rows = q if trans_b else q.T
            worst = max(worst, int(_pair_sums(rows).max()))
            continue
        kind = _conv_kind(node, q)
        rows = q.reshape(q.shape[0], -1)
        if kind == "pointwise":
            worst = max(worst, int(_pair_sums(rows).max()))
        elif kind == "other":  # pairs follow the kernel's packing of taps and channels: take the worst two
            worst = max(worst, int(max(_two_largest(np.maximum(rows, 0)), _two_largest(np.maximum(-rows, 0)))))
    return worst


def portability_record(path: str | Path) -> dict:
    """The manifest fields that show an INT8 file computes the same on every x86 CPU: its pair bound and the limit."""
    return {"u8s8_pair_bound": u8s8_pair_bound(path), "u8s8_pair_limit": U8S8_PAIR_LIMIT}


class _LogitsAndTrunk(nn.Module):
    """A ``FlowerNet`` whose frozen trunk's output is a second output (exported by ``quantised_trunk``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        trunk = self.model.trunk()(x)
        return self.model.forward_from_trunk(trunk), trunk


def quantised_trunk(model: nn.Module, calib: torch.Tensor, config: dict, workdir: str | Path,
                    threads: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model``'s frozen trunk as its static INT8 file computes it: normalised images -> the dequantised
    trunk output that the file's first trained layer reads.

    The whole network is quantised as ``quantize_onnx_static`` quantises the shipped file (same
    calibration images, same ``config``), its trunk's output exposed as a second output. The trunk's
    weights are frozen and its activation ranges are calibrated on its own outputs, so its quantisation
    does not depend on the layers after it: a file made after those layers are trained computes the
    same trunk, which lets them be trained on what that file will feed them (``StudentSpec.int8_trunk_views``).
    """
    workdir = Path(workdir)
    size = calib.shape[-1]
    fp32 = export_onnx(_LogitsAndTrunk(model.eval()), workdir / "trunk_fp32.onnx", size,
                       output_names=(OUTPUT_NAME, TRUNK_OUTPUT))
    int8 = quantize_onnx_static(fp32, workdir / "trunk_int8.onnx", calib, **config)
    fp32.unlink(missing_ok=True)
    session = OnnxSession(int8, threads=threads)  # holds the model in memory: the file is not needed any more
    int8.unlink(missing_ok=True)
    return lambda x: torch.from_numpy(session.outputs(x.numpy(), [TRUNK_OUTPUT])[TRUNK_OUTPUT])


def add_feature_output(path: str | Path, check: np.ndarray, name: str = FEATURES_OUTPUT) -> Path:
    """Expose the classifier's input (the pooled features) as a second output ``name`` of the ONNX file
    at ``path``, in place: an Identity of the float tensor that the final Gemm/MatMul reads (followed
    back through its QuantizeLinear/DequantizeLinear pair). The logits must not change: they are compared
    on the ``check`` batch, and the file is left as it was (ValueError) if they differ."""
    path = Path(path)
    if (opened := _open_to_add_output(path, name, check)) is None:  # added before
        return path
    model, original, before = opened
    graph = model.graph
    _, _, tensor = _classifier_input(graph)
    graph.node.append(onnx.helper.make_node("Identity", [tensor], [name], name=f"{name}_output"))
    graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return _save_if_logits_unchanged(model, path, original, before, check, f"{tensor} as '{name}'")


def _open_to_add_output(path: Path, name: str, check: np.ndarray):
    """The ONNX file at ``path`` opened to add the output ``name``: its model, its bytes and its logits on ``check``
    (to restore and compare after the edit), or None when it has that output already."""
    model = onnx.load(str(path))
    if any(o.name == name for o in model.graph.output):
        return None
    return model, path.read_bytes(), OnnxSession(path, threads=1)(check)


def _classifier_input(graph) -> tuple[dict, onnx.NodeProto, str]:
    """The graph's nodes by output, its final Gemm/MatMul (the classifier) and the float tensor that the
    classifier reads (followed back through its QuantizeLinear/DequantizeLinear pair)."""
    producer = {out: node for node in graph.node for out in node.output}
    classifier = next(n for n in reversed(graph.node) if n.op_type in ("Gemm", "MatMul"))
    tensor = classifier.input[0]
    while tensor in producer and producer[tensor].op_type in ("DequantizeLinear", "QuantizeLinear"):
        tensor = producer[tensor].input[0]
    return producer, classifier, tensor


def _save_if_logits_unchanged(model, path: Path, original: bytes, before: np.ndarray, check: np.ndarray,
                              what: str) -> Path:
    """Save ``model`` over ``path``; if its logits on ``check`` are no longer ``before``, put the ``original``
    bytes back and raise ValueError."""
    onnx.save(model, str(path))
    if not np.array_equal(OnnxSession(path, threads=1)(check), before):
        path.write_bytes(original)
        raise ValueError(f"exposing {what} changed {path.name}'s logits; the file is unchanged")
    return path


def add_class_map_output(path: str | Path, check: np.ndarray, name: str = CLASS_MAPS_OUTPUT) -> Path:
    """Expose the class activation maps of a linear-head classifier as an output ``name`` of the ONNX file at
    ``path``, in place: a 1x1 Conv of the last feature map (the float tensor the global average pooling reads)
    with the classifier's weights, ``[B, classes, h, w]``; their spatial mean plus the bias is the logits (the
    map of a class shows where its evidence lies: ``localise`` crops around it). The new nodes read their own
    DequantizeLinear copies of the quantised feature map and weights, so the quantised graph and its INT8
    weights are unchanged (the file's pair bound stays as it was); the logits are compared on the ``check``
    batch and the file is left as it was (ValueError) if they differ."""
    path = Path(path)
    if (opened := _open_to_add_output(path, name, check)) is None:  # added before
        return path
    model, original, before = opened
    graph = model.graph
    producer, classifier, pooled = _classifier_input(graph)
    trans_b = next((a.i for a in classifier.attribute if a.name == "transB"), 0)
    pool = producer[pooled]
    if pool.op_type not in ("ReduceMean", "GlobalAveragePool"):
        raise ValueError(f"{path.name}: the classifier reads {pool.op_type}, not a global average pooling")

    def own_copy(tensor: str) -> str:
        """``tensor`` recomputed by a new DequantizeLinear of the same quantised input (the original keeps its
        consumers, so ONNX Runtime fuses the quantised graph as before); an unquantised tensor as it is."""
        node = producer.get(tensor)
        if node is None or node.op_type != "DequantizeLinear":
            return tensor
        out = f"{name}/{tensor}"
        graph.node.append(onnx.helper.make_node("DequantizeLinear", list(node.input), [out], name=f"{out}_copy",
                                                domain=node.domain, **{a.name: onnx.helper.get_attribute_value(a)
                                                                        for a in node.attribute}))
        return out

    fmap, weights = own_copy(pool.input[0]), own_copy(classifier.input[1])
    shape = f"{name}/kernel_shape"
    graph.initializer.append(numpy_helper.from_array(np.array([0, -1, 1, 1], dtype=np.int64), shape))
    if not trans_b:  # a MatMul or Gemm weight is [in, out]: the kernel wants [out, in]
        graph.node.append(onnx.helper.make_node("Transpose", [weights], [f"{name}/weights_t"], perm=[1, 0]))
        weights = f"{name}/weights_t"
    graph.node.append(onnx.helper.make_node("Reshape", [weights, shape], [f"{name}/kernel"], name=f"{name}/reshape"))
    graph.node.append(onnx.helper.make_node("Conv", [fmap, f"{name}/kernel"], [name], name=f"{name}/conv"))
    graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return _save_if_logits_unchanged(model, path, original, before, check, f"the class maps as '{name}'")


def layer_nodes(path: str | Path, frozen_stages: int, trained: bool) -> list[str]:
    """The Conv/Gemm/MatMul nodes of an exported ``FlowerNet`` (``export_onnx``) in its trained layers (the
    stages after the first ``frozen_stages`` and the head), or with ``trained=False`` in its frozen trunk.
    The exporter names nodes after the modules (``/stages/stages.7/...``, ``/head/fc/Gemm``)."""
    def in_trained_layers(name: str) -> bool:
        if name.startswith("/head/"):
            return True
        parts = name.split("/")
        return len(parts) > 2 and parts[1] == "stages" and int(parts[2].split(".")[1]) >= frozen_stages

    names = [n.name for n in onnx.load(str(path)).graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    return [n for n in names if in_trained_layers(n) == trained]


def quantized_op_counts(path: str | Path) -> dict:
    """How much of the graph that computes the logits is INT8: ops fed by DequantizeLinear, by type (for the report).
    The class maps' Conv (``add_class_map_output``) reads dequantised copies, a float side output, and is left out."""
    graph = onnx.load(str(path)).graph
    dq_out = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    counts: dict[str, dict[str, int]] = {}
    for n in graph.node:
        if n.op_type in ("Conv", "Gemm", "MatMul") and not n.name.startswith(f"{CLASS_MAPS_OUTPUT}/"):
            c = counts.setdefault(n.op_type, {"total": 0, "int8": 0})
            c["total"] += 1
            c["int8"] += int(all(i in dq_out for i in n.input[:2]))
    return counts


# ---------------------------------------------------------------------------------------------
# Alternatives, measured for the record
# ---------------------------------------------------------------------------------------------
def quantize_torch_fx(model: nn.Module, calib: torch.Tensor, batch_size: int = 16) -> torch.jit.ScriptModule:
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


def quantize_pt2e(model: nn.Module, calib: torch.Tensor, batch_size: int = 16) -> Callable:
    """torchao PT2E static PTQ with the X86 Inductor quantizer, run without ``torch.compile``
    (compiling it needs a C++ toolchain at load time, which the app must not require). torchao is imported
    here: it is a training-only package and this backend a comparison, not the shipped path."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
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
                file = quantize_onnx_static(fp32_onnx, workdir / f"student_int8_{backend}.onnx", calib,
                                            **(qdq_config or {}), nodes_to_exclude=excluded)
                row["config"] = qdq_config or {}
                row["int8_ops"] = quantized_op_counts(file)
                fn = OnnxClassifier(file, threads)
            elif backend == "torch_fx":
                fn = quantize_torch_fx(model, calib)
                file = workdir / "student_int8_fx.pt"
                torch.jit.save(fn, str(file))
            elif backend == "pt2e":
                fn = quantize_pt2e(model, calib)
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
