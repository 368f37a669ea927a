"""Weights of the torch models: what training saves (fp16 safetensors of the trained late stages and
head), how a model is rebuilt from the manifest, and ONNX files as torch modules. Never unpickles.

``load_model(name)`` is the one way training, evaluation, the CLI and the torch pages get a model.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..serve.runtime import OnnxSession
from ..shipped.manifest import ModelEntry, model_entry, model_file
from ..shipped.paths import artifacts_dir
from ..shipped.splits import NUM_CLASSES, SHIPPED_PROTOCOL
from .models import Ensemble, FlowerNet, create_model


class OnnxClassifier(nn.Module):
    """An ONNX classifier as an eval-mode module: normalised float ``[B, 3, H, W]`` tensor -> logits tensor.

    The torch face of ``runtime.OnnxSession`` (which the app and the CLI use directly), for code that
    evaluates ONNX files beside torch models (quantisation trials, backend comparison, tests).
    """

    def __init__(self, path: str | Path, threads: int | None = None, optimization: str = "all"):
        super().__init__()
        self.session = OnnxSession(path, threads, optimization)
        self.path, self.threads = self.session.path, threads
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session(torch.as_tensor(x).detach().cpu().float().numpy()))

    def extra_repr(self) -> str:
        return f"path={self.path.name}, threads={self.threads}"


def trained_state(model: FlowerNet) -> dict[str, torch.Tensor]:
    """What training changed: the stages after the frozen trunk and the head. The trunk is the
    pinned ImageNet weights of the registry, so it is rebuilt at load time instead of shipped."""
    prefixes = tuple(f"stages.{i}." for i in range(model.frozen_stages, len(model.stages))) + ("head.",)
    return {k: v for k, v in model.state_dict().items() if k.startswith(prefixes)}


SHIPPED_DTYPE = torch.float16  # trained weights are stored in half precision (small artifacts)


@torch.no_grad()
def round_to_shipped(model: FlowerNet) -> FlowerNet:
    """Round the trained weights, in place, to the precision ``save_weights`` stores.

    Called before a model is scored, exported or quantised, so that the recorded metrics are those
    of the file that ships (and that ``build_flowernet`` loads), not of fp32 weights that no one gets.
    """
    for v in trained_state(model).values():  # state_dict tensors share storage with the module's
        if v.is_floating_point():
            v.copy_(v.to(SHIPPED_DTYPE).to(v.dtype))
    return model


def save_weights(model: FlowerNet, rel: str, root=None) -> int:
    path = artifacts_dir(root) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(SHIPPED_DTYPE if v.is_floating_point() else v.dtype).contiguous()
             for k, v in trained_state(model).items()}
    save_file(state, str(path), metadata={"arch": model.arch, "head": model.head_type,
                                          "frozen_stages": str(model.frozen_stages)})
    return path.stat().st_size


def build_flowernet(entry: ModelEntry, root=None, pretrained_trunk: bool | None = None) -> FlowerNet:
    path = model_file(entry, root)
    frozen = int(entry.frozen_stages)
    pretrained = frozen > 0 if pretrained_trunk is None else pretrained_trunk
    model = create_model(entry.arch, entry.head, entry.num_classes or NUM_CLASSES, pretrained=pretrained, frozen_stages=frozen,
                         input_size=entry.preprocess["input_size"])
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    result = model.load_state_dict(state, strict=False)
    expected = set(trained_state(model))
    if result.unexpected_keys or expected - set(state):
        raise ValueError(f"{path} does not match {entry.arch}/{entry.head}: "
                         f"unexpected {result.unexpected_keys[:3]}, missing {sorted(expected - set(state))[:3]}")
    # channels_last weights: oneDNN's convolutions run ~20% faster at batch 1 and ~1.5× on batches on CPU
    return model.eval().to(memory_format=torch.channels_last)


def load_model(name: str, protocol: str = SHIPPED_PROTOCOL, root=None, threads: int | None = None) -> nn.Module:
    """An eval-mode module mapping a normalised image batch to logits (log-probs for the ensemble).

    ``threads``: intra-op threads of an ONNX model's session (torch models use torch's setting)."""
    entry = model_entry(name, protocol, root)
    fmt = entry.format
    if fmt == "safetensors":
        return build_flowernet(entry, root)
    if fmt == "ensemble":
        members = [load_model(m, protocol, root, threads) for m in entry.members]
        return Ensemble(members, entry.weights_per_member, entry.member_temperatures).eval()
    if fmt == "onnx":
        return OnnxClassifier(model_file(entry, root), threads)
    raise ValueError(f"unknown model format {fmt!r} for {name}")


