"""The app's path from an uploaded file to an answer, timed stage by stage (torch-free).

``staged_predict`` runs ``Predictor.predict_many`` for one photo with the app's model (the INT8 student: one
onnxruntime pass gives its answer, its class maps and the features its novelty check reads) with a clock passed
in (its ``lap`` hook), read as each stage a visitor waits for ends: decode (and resize to the model's view), flower
gate, find the flower (the hot region of the class map, its crop and that crop's view), classify (the model's
passes over the whole view and the crop), novelty check (the typicality of both views), and the small combining
step counted with the stage it finishes.

``summarise`` turns repeated timings into the figures a reader can trust: the run count, the warm-up runs
left out, p50 and p90, and p99 only from ``P99_MIN_RUNS`` runs (with fewer, the 99th percentile is the slowest
run or an interpolation next to it, which says nothing).
"""
from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .decode import load_image
from .localise import CLASS_MAPS_OUTPUT
from .predictor import Predictor

STAGES = ("decode", "flower gate", "find the flower", "classify", "novelty check")
STAGE_HELP = {
    "decode": "read the uploaded file and shrink it to the 260-pixel square the model sees",
    "flower gate": "a small second model checks the photo shows a flower at all",
    "find the flower": "the hottest part of the model's map is cut out as a closer view",
    "classify": "the model reads the whole photo, then the closer view",
    "novelty check": "how much the photo resembles the ones the model learned from",
}
P99_MIN_RUNS = 100  # a 99th percentile needs ~100 runs before one run above it exists


def staged_predict(predictor: Predictor, data: bytes, clock: Callable[[], float] = time.perf_counter
                   ) -> tuple[np.ndarray, dict[str, float]]:
    """(the answer's probabilities, ms per stage of ``STAGES``) for one uploaded file through ``predictor``'s own
    path (``Predictor.predict_many`` with a ``lap`` that reads ``clock`` as each stage ends: no second copy of the
    path). ``predictor`` must be an ONNX model with class maps (the app's model); stages it has not (no gate, no
    novelty check, no localisation) take 0 ms."""
    model = predictor.backend.session  # None for a torch model
    if model is None or CLASS_MAPS_OUTPUT not in model.output_names:
        raise ValueError(f"{predictor.name}: stages are timed for an ONNX model with class maps (the app's model)")
    times = dict.fromkeys(STAGES, 0.0)
    last = [clock()]

    def lap(stage: str) -> None:
        now = clock()
        times[stage] += (now - last[0]) * 1000
        last[0] = now

    img = load_image(data)
    lap("decode")
    return predictor.predict_many([img], lap=lap)[0].probs, times


def time_stages(predictor: Predictor, photos: list[bytes], runs: int, warmup: int = 3,
                progress: Callable[[int, int], None] | None = None) -> dict[str, list[float]]:
    """ms of each stage (and "total") over ``runs`` passes through ``photos`` in turn, after ``warmup``
    passes that are not kept (the first calls fill caches and allocate memory)."""
    kept: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "total")}
    for i in range(warmup + runs):
        _, times = staged_predict(predictor, photos[i % len(photos)])
        if i >= warmup:
            for stage, ms in times.items():
                kept[stage].append(ms)
            kept["total"].append(sum(times.values()))
        if progress is not None:
            progress(i + 1, warmup + runs)
    return kept


def summarise(times_ms, warmup: int = 0) -> dict:
    """{runs, warmup, p50_ms, p90_ms, p99_ms (None under P99_MIN_RUNS runs), mean_ms, min_ms, max_ms}."""
    t = np.asarray(list(times_ms), dtype=np.float64)
    if t.size == 0:
        return {"runs": 0, "warmup": int(warmup), "p50_ms": None, "p90_ms": None, "p99_ms": None,
                "mean_ms": None, "min_ms": None, "max_ms": None}
    pct = {q: round(float(np.percentile(t, q)), 3) for q in (50, 90, 99)}
    return {"runs": int(t.size), "warmup": int(warmup), "p50_ms": pct[50], "p90_ms": pct[90],
            "p99_ms": pct[99] if t.size >= P99_MIN_RUNS else None, "mean_ms": round(float(t.mean()), 3),
            "min_ms": round(float(t.min()), 3), "max_ms": round(float(t.max()), 3)}


def _cpuinfo(field: str) -> str | None:
    """The first value of ``field`` in ``/proc/cpuinfo`` (None where there is none)."""
    try:
        return next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith(field)), None)
    except OSError:
        return None


INT8_ISAS = ("avx512_vnni", "avx_vnni", "avx2")  # widest first; "other" when a CPU lists none


def cpu_model() -> str:
    """The processor's model name ("AMD EPYC"): the one probe of it, for the Latency page's live runs and every
    benchmark's record (``bench.latency``, ``int8_portability``, ``app_benchmark``, ``explanations``, ``first_map``)."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def int8_isa() -> str:
    """The CPU's widest 8-bit dot-product instructions as ``/proc/cpuinfo`` lists them: ONNX Runtime's INT8
    kernels differ by them (VNNI accumulates in int32; AVX2 alone pairs products in int16), so two CPUs of one
    model name ("AMD EPYC") can time INT8 differently; timings compare only between CPUs with the same."""
    flags = (_cpuinfo("flags") or "").split()
    return next((isa for isa in INT8_ISAS if isa in flags), "other")


def machine(threads: int) -> dict:
    """What a timing depends on besides the model: the CPU, its INT8 instructions, its cores, the threads used,
    the runtimes' versions (torch's only when this process has loaded it: the app's path runs without it) and the
    load. The benchmarks' fuller record is ``bench.latency.environment``, with the same fields."""
    import onnxruntime

    torch = sys.modules.get("torch")
    return {"cpu": cpu_model(), "int8_isa": int8_isa(), "cores": os.cpu_count(), "threads": threads,
            "onnxruntime": onnxruntime.__version__, "torch": getattr(torch, "__version__", None),
            "python": platform.python_version(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


MATCHED_ON = ("cpu", "int8_isa", "threads")  # a stored timing is set against a live one only when these agree


def unmatched(live_env: dict, stored_env: dict) -> list[str]:
    """The fields of ``MATCHED_ON`` on which a stored run's environment differs from the live one's (a field
    either did not record counts as differing: nothing says they agree)."""
    return [key for key in MATCHED_ON
            if live_env.get(key) is None or stored_env.get(key) is None or live_env[key] != stored_env[key]]


def stored_runs(latency_report: dict | None) -> list[dict]:
    """The latency benchmark's runs (``paths.LATENCY``): its latest, then each other kind of CPU's."""
    return [latency_report, *latency_report.get("other_cpus", [])] if latency_report else []


def stored_runtime(row: dict) -> str:
    """What a stored latency row ran on: its recorded ``runtime``, else onnxruntime for an ONNX file, torch for the
    others (the benchmark timed torch models on torch)."""
    return row.get("runtime") or ("onnxruntime" if row.get("format") == "onnx" else "torch")


def stored_median(latency_report: dict | None, model: str, live_env: dict,
                  runtime: str | None = None) -> tuple[float | None, dict]:
    """(the stored batch-1 median of ``model``, the environment it was measured in) from the latency benchmark's
    run whose CPU model, INT8 instructions and threads are the live run's (``unmatched`` empty) and, with
    ``runtime``, whose row ran on the same runtime; (None, {}) when none matches: then the live figure is set
    against none."""
    for run in stored_runs(latency_report):
        if unmatched(live_env, run.get("environment", {})):
            continue
        row = next((r for r in run.get("models", []) if r.get("model") == model and r.get("p50_ms")
                    and (runtime is None or stored_runtime(r) == runtime)), None)
        if row is not None:
            return float(row["p50_ms"]), run.get("environment", {})
    return None, {}
