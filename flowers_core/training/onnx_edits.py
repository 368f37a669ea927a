"""Edits of an exported ONNX file that leave its logits unchanged: extra outputs for the novelty check (the pooled
features) and the localisation stage (the class maps), and what the file holds (its INT8 op counts, a layer's nodes)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..serve.localise import CLASS_MAPS_OUTPUT
from ..serve.novelty import FEATURES_OUTPUT
from ..serve.runtime import OnnxSession

INPUT_NAME, OUTPUT_NAME = "input", "logits"


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


def quantised_op_counts(path: str | Path) -> dict:
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
