"""ONNX twins of the torch models (levels 1-3 and the fp32 student), so that the app's common paths (Compare,
Latency, the ensemble's answer) run on onnxruntime and a server that never explains with gradients never loads
torch.

Each twin is the whole network (frozen trunk + trained stages + head) with two outputs, the logits and the pooled
features the novelty check reads. Its weights are stored as float16 initialisers, each followed by a Cast to
float32 that onnxruntime folds when the session is built: the arithmetic is fp32, the file half the size. The
trained layers ship in float16 already (``weights.SHIPPED_DTYPE``); only the frozen ImageNet trunk is rounded, and
the twin is checked against the torch model on the test split (``check``: top-1 agreement and the largest
difference of a calibrated probability), the record written to the model's manifest entry (``onnx``)."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from ..metrics import softmax
from ..serve.novelty import FEATURES_OUTPUT
from ..serve.runtime import OnnxSession
from ..shipped import manifest as art
from ..shipped.paths import artifacts_dir, fp32_onnx_file
from ..shipped.splits import SHIPPED_PROTOCOL
from .quantise import OUTPUT_NAME, export_onnx
from .weights import load_model

# Initialisers smaller than this stay fp32 (biases, BatchNorm folded scales: a few KB, not worth a Cast each).
FP16_MIN_ELEMENTS = 1024
# A twin ships when it agrees with its torch model this well on the test split (fp16-rounded trunk weights move a
# calibrated probability by about 1e-3; the bound leaves room for an unlucky photo, none for a broken export).
MAX_PROB_DIFF = 0.02
MIN_TOP1_AGREEMENT = 0.995


class LogitsAndFeatures(nn.Module):
    """A FlowerNet as the twin's graph: normalised batch -> (logits, pooled features)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return self.model.logits_and_features(x)


def store_weights_fp16(src: str | Path, dst: str | Path, min_elements: int = FP16_MIN_ELEMENTS) -> Path:
    """Rewrite the ONNX file ``src`` to ``dst`` with every float32 initialiser of ``min_elements`` or more stored in
    float16 and cast back to float32 where it is read (a Cast node per weight, folded by onnxruntime)."""
    model = onnx.load(str(src))
    graph = model.graph
    kept, casts = [], []
    for init in graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and int(np.prod(init.dims)) >= min_elements:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{init.name}/fp16")
            kept.append(half)
            casts.append(onnx.helper.make_node("Cast", [half.name], [init.name], name=f"{init.name}/to_fp32",
                                               to=onnx.TensorProto.FLOAT))
        else:
            kept.append(init)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # the casts first: the graph stays topologically sorted
    onnx.checker.check_model(model)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return dst


def export_twin(name: str, protocol: str = SHIPPED_PROTOCOL, root=None) -> Path:
    """Export model ``name``'s ONNX twin to ``models/<name>_fp32.onnx`` (not yet recorded: ``check`` records it)."""
    entry = art.model_entry(name, protocol, root)
    if entry.format != "safetensors":
        raise ValueError(f"{name} is {entry.format}: only a single network has an ONNX twin (an ensemble votes "
                         "over its members' twins)")
    model = load_model(name, protocol, root).eval()
    path = artifacts_dir(root) / fp32_onnx_file(name)
    with tempfile.TemporaryDirectory() as tmp:
        plain = export_onnx(LogitsAndFeatures(model), Path(tmp) / "fp32.onnx", entry.preprocess["input_size"],
                            output_names=(OUTPUT_NAME, FEATURES_OUTPUT))
        store_weights_fp16(plain, path)
    return path


@torch.no_grad()
def check(name: str, batches, protocol: str = SHIPPED_PROTOCOL, root=None, part: str = "test") -> dict:
    """The twin against its torch model on normalised ``batches`` of split ``part``: top-1 agreement and the largest
    difference of a calibrated probability; recorded in the manifest entry's ``onnx`` when within the bounds
    (ValueError otherwise, nothing recorded)."""
    entry = art.model_entry(name, protocol, root)
    model = load_model(name, protocol, root).eval()
    path = artifacts_dir(root) / fp32_onnx_file(name)
    session = OnnxSession(path)
    agree = n = 0
    worst = 0.0
    margins = []  # torch's lead of its best guess over the second, where the two disagree
    for x in batches:
        torch_probs = softmax(model(x).float().numpy(), entry.temperature)
        onnx_probs = softmax(session(x.numpy()), entry.temperature)
        same = torch_probs.argmax(-1) == onnx_probs.argmax(-1)
        agree += int(same.sum())
        n += len(x)
        worst = max(worst, float(np.abs(torch_probs - onnx_probs).max()))
        top2 = np.sort(torch_probs[~same], axis=-1)[:, -2:]
        margins += [float(b - a) for a, b in top2]
    record = {"file": fp32_onnx_file(name), "file_bytes": path.stat().st_size,
              "storage": "float16 weights, float32 arithmetic (onnxruntime folds the casts)",
              "check": {"split": part, "n": n, "top1_agreement": agree / max(n, 1), "max_prob_diff": worst,
                        "bounds": {"max_prob_diff": MAX_PROB_DIFF, "min_top1_agreement": MIN_TOP1_AGREEMENT},
                        "date": time.strftime("%Y-%m-%d")}}
    # a flipped answer counts against the twin only where torch's top two were not tied within the difference
    # measured (a near-uniform output, as an untrained model's, flips on rounding alone)
    decisive = sum(m > 2 * worst for m in margins)
    record["check"]["decisive_disagreements"] = decisive
    if worst > MAX_PROB_DIFF or (agree + len(margins) - decisive) / max(n, 1) < MIN_TOP1_AGREEMENT:
        raise ValueError(f"{name}'s ONNX twin differs from torch: {record['check']}")
    entry.onnx = record
    art.record_model(entry, root)
    return record
