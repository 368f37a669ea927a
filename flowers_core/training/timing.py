"""Latency of one call of a torch or ONNX model: ``serve.timing.time_calls`` with torch's intra-op threads set for
the duration and autograd off (ONNX sessions carry their own threads)."""
from __future__ import annotations

from typing import Callable

import torch

from ..serve.timing import time_calls


@torch.inference_mode()
def measure(fn: Callable, example: torch.Tensor, iters: int = 50, warmup: int = 10, threads: int | None = None,
            progress: Callable[[int, int], None] | None = None) -> dict:
    """``time_calls(fn, example, ...)`` with ``threads`` as torch's intra-op threads for the duration."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return time_calls(fn, example, iters, warmup, progress)
    finally:
        torch.set_num_threads(previous)
