"""Open a shipped model as a ``Predictor`` with the backend its format needs: onnxruntime for the INT8 student
(torch is never imported), and for a torch model either torch (imported only then) or, with ``runtime="onnx"``,
its ONNX twin(s) when they are recorded (``train.onnx_twins``). The app, the CLI and the benchmarks open models
here; training code builds its backends in ``flowers_core.training``."""
from __future__ import annotations

from .serve.predictor import Predictor, onnx_twin_backend
from .shipped import manifest as art
from .shipped.splits import SHIPPED_PROTOCOL

RUNTIMES = ("torch", "onnx")  # how a torch model may run: its own network, or its ONNX twin when it has one


def open_predictor(name: str, protocol: str = SHIPPED_PROTOCOL, root=None, threads: int | None = None,
                   runtime: str = "torch", **options) -> Predictor:
    """``Predictor(name, ...)`` for any shipped model; ``options`` are the Predictor's (gate, novelty, localise...).

    ``runtime``: for a torch model, "torch" (gradients: Explain's maps) or "onnx" (its ONNX twin, torch never
    imported; torch all the same when no twin is recorded). The INT8 student always runs on onnxruntime."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
    entry = art.model_entry(name, protocol, root)
    backend = None
    if entry.format != "onnx":
        if runtime == "onnx":
            backend = onnx_twin_backend(entry, protocol, root, threads)
        if backend is None:
            from .training.torch_backend import open_backend  # torch, only when a torch model is asked for

            backend = open_backend(name, protocol, root, threads)
    return Predictor(name, protocol, root, threads=threads, backend=backend, **options)
