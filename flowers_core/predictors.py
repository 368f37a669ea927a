"""Open a shipped model as a ``Predictor`` with the backend its format needs: onnxruntime for the INT8 student
(torch is never imported), torch for the others (imported only then). The app, the CLI and the benchmarks open
models here; training code builds its backends in ``flowers_core.build``."""
from __future__ import annotations

from .serve.predictor import Predictor
from .shipped import manifest as art
from .shipped.splits import SHIPPED_PROTOCOL


def open_predictor(name: str, protocol: str = SHIPPED_PROTOCOL, root=None, threads: int | None = None,
                   **options) -> Predictor:
    """``Predictor(name, ...)`` for any shipped model; ``options`` are the Predictor's (gate, novelty, localise...)."""
    backend = None
    if art.model_entry(name, protocol, root).format != "onnx":
        from .build.torch_backend import open_backend  # torch, only when a torch model is asked for

        backend = open_backend(name, protocol, root, threads)
    return Predictor(name, protocol, root, threads=threads, backend=backend, **options)
