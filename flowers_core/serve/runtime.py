"""Runs a shipped ONNX file (the INT8 student, the flower gate) with onnxruntime and numpy only.

This is the whole run time of the production model: the app's Classify page and the predict CLI
load ONNX files through ``OnnxSession`` and never need torch for them. ``weights.OnnxClassifier``
wraps the same session as a torch module where ONNX files are evaluated beside torch models
(quantisation trials, the INT8 backend comparison, tests).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

OPTIMIZATION_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class OnnxSession:
    """An ONNX classifier: normalised float32 ``[B, 3, H, W]`` array -> logits array ``[B, classes]``.

    ``threads`` sets onnxruntime's intra-op threads (None: its default, all cores). Thread-safe:
    onnxruntime sessions may be run from several threads at once. ``arena``: onnxruntime's own memory arena, off by
    default: it keeps the largest activations each session has seen (58 MB more for the four ONNX twins after one
    photo each, measured) and batch-1 inference is no slower without it.
    """

    def __init__(self, path: str | Path, threads: int | None = None, optimization: str = "all", arena: bool = False):
        self.path = Path(path)
        self.threads = threads
        opts = ort.SessionOptions()
        opts.enable_cpu_mem_arena = arena
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.graph_optimization_level = OPTIMIZATION_LEVELS[optimization]
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """The first output (the logits)."""
        return self.outputs(batch, self.output_names[:1])[self.output_names[0]]

    def outputs(self, batch: np.ndarray, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """The named outputs (all by default), by name."""
        names = names or self.output_names
        values = self.session.run(names, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})
        return dict(zip(names, values))

    def __repr__(self) -> str:
        return f"OnnxSession(path={self.path.name}, threads={self.threads})"
