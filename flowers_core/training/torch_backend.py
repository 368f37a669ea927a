"""A torch model as a ``serve.predictor.Backend``: levels 1-3, the ensemble and the fp32 student, rebuilt from their
shipped weights (``weights.load_model``). The ``Predictor`` around it is the same one the INT8 student runs in."""
from __future__ import annotations

import numpy as np
import torch

from ..serve.predictor import Backend, OnnxBackend
from ..serve.runtime import OnnxSession
from ..shipped import manifest as art
from ..shipped.splits import SHIPPED_PROTOCOL
from .weights import load_model


class TorchBackend:
    runtime = "torch"
    session = None  # no ONNX outputs: a torch model's features come from its own pooling

    def __init__(self, model: torch.nn.Module, ensemble: bool = False):
        self.model, self.ensemble = model, ensemble

    def logits(self, batch) -> np.ndarray:
        with torch.inference_mode():
            return self.model(torch.as_tensor(batch)).float().numpy()

    def logits_and_features(self, batch) -> tuple[np.ndarray, np.ndarray | list[np.ndarray]]:
        with torch.inference_mode():
            x = torch.as_tensor(batch)
            if self.ensemble:
                logits, features = self.model.logits_and_member_features(x)
                return logits.float().numpy(), [f.float().numpy() for f in features]
            logits, features = self.model.logits_and_features(x)
            return logits.float().numpy(), features.float().numpy()


def open_backend(name: str, protocol: str = SHIPPED_PROTOCOL, root=None, threads: int | None = None) -> Backend:
    """The backend a shipped model runs on, whatever its format: onnxruntime for an ONNX file, torch otherwise."""
    entry = art.model_entry(name, protocol, root)
    if entry.format == "onnx":
        return OnnxBackend(OnnxSession(art.model_file(entry, root), threads))
    if threads:
        torch.set_num_threads(threads)
    return TorchBackend(load_model(name, protocol, root), ensemble=entry.format == "ensemble")
