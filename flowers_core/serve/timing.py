"""Latency of one call, measured the same way by the benchmarks, the quantisation trials and the app's Latency page
(numpy only: the page times ONNX models without loading torch; ``training.timing.measure`` adds torch's threads)."""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def time_calls(fn: Callable, example, iters: int = 50, warmup: int = 10,
               progress: Callable[[int, int], None] | None = None) -> dict:
    """Latency of ``fn(example)`` in ms after ``warmup`` calls (not kept): p50, p90, p95, mean, min over ``iters``
    calls, and the raw timings (``times_ms``: the Latency page plots and offers them).

    ``progress(i, iters)`` is called after each timed call (a progress bar in the app)."""
    for _ in range(warmup):
        fn(example)
    times = []
    for i in range(iters):
        start = time.perf_counter()
        fn(example)
        times.append((time.perf_counter() - start) * 1000)
        if progress is not None:
            progress(i + 1, iters)
    t = np.asarray(times)
    return {"p50_ms": float(np.percentile(t, 50)), "p90_ms": float(np.percentile(t, 90)),
            "p95_ms": float(np.percentile(t, 95)), "mean_ms": float(t.mean()), "min_ms": float(t.min()),
            "iters": int(iters), "warmup": int(warmup), "times_ms": [float(v) for v in t]}
