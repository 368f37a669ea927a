"""Latency of one call, measured the same way by the benchmark, the quantisation trials and the app."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch


@torch.inference_mode()
def measure(fn: Callable, example: torch.Tensor, iters: int = 50, warmup: int = 10, threads: int | None = None,
            progress: Callable[[int, int], None] | None = None) -> dict:
    """Latency of ``fn(example)`` in ms after ``warmup`` calls (not kept): p50, p90, p95, mean, min over ``iters``
    calls, and the raw timings (``times_ms``: the Latency page plots and offers them).

    ``threads`` sets torch's intra-op threads for the duration (ONNX models carry their own).
    ``progress(i, iters)`` is called after each timed call (a progress bar in the app).
    """
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        for _ in range(warmup):
            fn(example)
        times = []
        for i in range(iters):
            start = time.perf_counter()
            fn(example)
            times.append((time.perf_counter() - start) * 1000)
            if progress is not None:
                progress(i + 1, iters)
    finally:
        torch.set_num_threads(previous)
    t = np.asarray(times)
    return {"p50_ms": float(np.percentile(t, 50)), "p90_ms": float(np.percentile(t, 90)),
            "p95_ms": float(np.percentile(t, 95)), "mean_ms": float(t.mean()), "min_ms": float(t.min()),
            "iters": int(iters), "warmup": int(warmup), "times_ms": [float(v) for v in t]}
