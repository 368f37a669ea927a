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

from ..serve.runtime import OnnxSession
from .transforms import eval_view

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
    return eval_view(preprocess, squares[idx])


QUANT_TYPES = {"u8s8": ("QUInt8", "QInt8"), "u8u8": ("QUInt8", "QUInt8"), "s8s8": ("QInt8", "QInt8")}


def quantise_onnx_static(fp32_path: str | Path, int8_path: str | Path, calib: torch.Tensor,
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

    The whole network is quantised as ``quantise_onnx_static`` quantises the shipped file (same
    calibration images, same ``config``), its trunk's output exposed as a second output. The trunk's
    weights are frozen and its activation ranges are calibrated on its own outputs, so its quantisation
    does not depend on the layers after it: a file made after those layers are trained computes the
    same trunk, which lets them be trained on what that file will feed them (``StudentSpec.int8_trunk_views``).
    """
    workdir = Path(workdir)
    size = calib.shape[-1]
    fp32 = export_onnx(_LogitsAndTrunk(model.eval()), workdir / "trunk_fp32.onnx", size,
                       output_names=(OUTPUT_NAME, TRUNK_OUTPUT))
    int8 = quantise_onnx_static(fp32, workdir / "trunk_int8.onnx", calib, **config)
    fp32.unlink(missing_ok=True)
    session = OnnxSession(int8, threads=threads)  # holds the model in memory: the file is not needed any more
    int8.unlink(missing_ok=True)
    return lambda x: torch.from_numpy(session.outputs(x.numpy(), [TRUNK_OUTPUT])[TRUNK_OUTPUT])
