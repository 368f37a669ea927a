"""The visitor's own latency measurement on the Latency page (torch is imported here only when it runs)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from ..serve.gallery import examples
from ..serve.predictor import Predictor, onnx_twin_backend
from ..serve.runtime import OnnxSession
from ..serve.stages import machine, time_stages
from ..serve.timing import time_calls
from ..serve.words import (
    load_error,
)
from ..shipped import catalog
from ..shipped import manifest as art
from ..shipped.splits import SHIPPED_PROTOCOL
from .resources import APP_THREADS, _key, _predictor, needs_torch, one_heavy_job


# ---------------------------------------------------------------------------------------------
# Live latency (the visitor's own measurement)
# ---------------------------------------------------------------------------------------------
@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def _onnx_model(name: str, threads: int, root: str, mtime: float):
    """A model on onnxruntime with its own intra-op thread count (a session fixes it when it is made): the INT8
    file, or a torch model's ONNX twin(s) (``train.onnx_twins``); None when it has none."""
    if threads == APP_THREADS and not needs_torch(name, SHIPPED_PROTOCOL, root, mtime):
        return _predictor(name, SHIPPED_PROTOCOL, root, mtime).logits  # the app's own sessions: no second copy
    entry = art.model_entry(name, SHIPPED_PROTOCOL, root)
    if entry.format == "onnx":
        return OnnxSession(art.model_file(entry, root), threads)
    twin = onnx_twin_backend(entry, SHIPPED_PROTOCOL, root, threads)
    return None if twin is None else twin.logits


def _timed_model(name: str, threads: int, root: str, mtime: float) -> tuple[object, str]:
    """What the live measurement times and on what: onnxruntime when the model has an ONNX file or twin, else the
    shared torch predictor's network (``measure`` sets torch's thread count per call)."""
    found = _onnx_model(name, threads, root, mtime)
    if found is not None:
        return found, "onnxruntime"
    return _predictor(name, SHIPPED_PROTOCOL, root, mtime, runtime="torch").model, "torch"


def live_latency(names: list[str], threads: int, batch: int, iters: int, warmup: int = 3,
                 progress=None) -> list[dict]:
    """Time each model on a random batch here and now; ``progress(done, total)`` over all models."""
    root, mtime = _key()
    rows, total = [], len(names) * iters
    with one_heavy_job("Your measurement starts in a moment: another visitor's request is running."):
        for k, name in enumerate(names):
            try:
                entry = art.model_entry(name, SHIPPED_PROTOCOL, root)
                fn, runtime = _timed_model(name, threads, root, mtime)
            except Exception as e:
                rows.append({"model": catalog.title(name), "error": load_error(name, e)})
                continue
            size = entry.preprocess["input_size"]
            x = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
            cb = (lambda i, n, k=k: progress(k * iters + i, total)) if progress else None
            if runtime == "torch":  # a model without an ONNX twin: torch, imported only now
                import torch

                from ..training.timing import measure

                r = measure(fn, torch.from_numpy(x), iters=iters, warmup=warmup, threads=threads, progress=cb)
            else:
                r = time_calls(fn, x, iters=iters, warmup=warmup, progress=cb)
            rows.append({"model": catalog.title(name), "runtime": runtime,
                         "precision": "INT8" if catalog.get(name).runtime == "onnx" else "fp32",
                         "threads": threads, "batch": batch, "p50_ms": r["p50_ms"], "p90_ms": r["p90_ms"],
                         "p95_ms": r["p95_ms"], "mean_ms": r["mean_ms"], "per_image_ms": r["p50_ms"] / batch,
                         "iters": iters, "warmup": warmup, "name": name, "times_ms": r["times_ms"]})
    return rows


def live_stages(runs: int, threads: int, warmup: int = 3, progress=None) -> tuple[dict[str, list[float]], dict]:
    """The app's path (the INT8 student from an uploaded file to its answer) timed stage by stage here and now on
    the shipped example photos (what ``python -m flowers_core.bench.stages`` stores), and the machine it ran on."""
    photos = [Path(e["file"]).read_bytes() for e in examples()]
    if not photos:
        raise art.ArtifactMissing("no example photos are shipped (`python -m train.gallery --build`)")
    root, mtime = _key()
    with one_heavy_job("Your measurement starts in a moment: another visitor's request is running."):
        found = Predictor(catalog.PRODUCTION, SHIPPED_PROTOCOL, root, threads=threads)  # its own sessions' threads
        kept = time_stages(found, photos, runs, warmup, progress)
    return kept, machine(threads)
