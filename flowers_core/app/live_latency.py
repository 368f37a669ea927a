"""The visitor's own latency measurement on the Latency page (torch is imported here only when it runs)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from ..serve.gallery import examples
from ..serve.predictor import Predictor
from ..serve.runtime import OnnxSession
from ..serve.stages import machine, time_stages
from ..serve.words import (
    load_error,
)
from ..shipped import catalog
from ..shipped import manifest as art
from ..shipped.splits import SHIPPED_PROTOCOL
from .resources import _key, _predictor, one_heavy_job


# ---------------------------------------------------------------------------------------------
# Live latency (the visitor's own measurement)
# ---------------------------------------------------------------------------------------------
@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def _onnx_session(name: str, threads: int, root: str, mtime: float) -> OnnxSession:
    """An ONNX model's session with its own intra-op thread count (a session fixes it when it is made): what the
    app runs, and what the latency benchmark times."""
    return OnnxSession(art.model_file(art.model_entry(name, SHIPPED_PROTOCOL, root), root), threads)


def _timed_model(name: str, threads: int, root: str, mtime: float):
    """What the live measurement times: torch models are the shared predictor's (``measure`` sets torch's
    thread count per call); ONNX models get a session with ``threads``."""
    if art.model_entry(name, SHIPPED_PROTOCOL, root).format == "onnx":
        return _onnx_session(name, threads, root, mtime)
    return _predictor(name, SHIPPED_PROTOCOL, root, mtime).model


def live_latency(names: list[str], threads: int, batch: int, iters: int, warmup: int = 3,
                 progress=None) -> list[dict]:
    """Time each model on a random batch here and now; ``progress(done, total)`` over all models."""
    # torch (and timing, which uses it): imported by the Latency page only, so Classify starts without them
    import torch

    from ..build.timing import measure

    root, mtime = _key()
    rows, total = [], len(names) * iters
    with one_heavy_job("Your measurement starts in a moment: another visitor's request is running."):
        for k, name in enumerate(names):
            try:
                entry = art.model_entry(name, SHIPPED_PROTOCOL, root)
                fn = _timed_model(name, threads, root, mtime)
            except Exception as e:
                rows.append({"model": catalog.title(name), "error": load_error(name, e)})
                continue
            size = entry.preprocess["input_size"]
            x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
            cb = (lambda i, n, k=k: progress(k * iters + i, total)) if progress else None
            r = measure(fn, x, iters=iters, warmup=warmup, threads=threads, progress=cb)
            rows.append({"model": catalog.title(name), "precision": "INT8" if catalog.get(name).runtime == "onnx" else "fp32",
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
