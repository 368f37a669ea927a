"""The latency benchmark (``python -m flowers_core.bench.latency``), timed with ``timing.measure`` (the
function the app's live latency page and level 5's quantisation trials use too).

For each model: batch-1 latency p50/p95 after warm-up at a fixed thread count, throughput at
batch ``--batch`` (32), the batch-1 latency of the app's path with the novelty check, and from a decoded photo
without and with the localisation stage (``localised_p50``), size on disk and
peak memory. The model is loaded as the app loads it (``open_predictor``: the model and its
novelty check). Peak memory is the peak resident set size (``ru_maxrss``) of a fresh subprocess that
loads the model and runs those passes, minus the same subprocess's RSS after importing torch,
onnxruntime and the models' code and before loading the model ("peak_rss_mb" and "model_peak_mb"). Every model is measured in its own subprocess, so one
model's allocations cannot inflate another's.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from PIL import Image

from ..open_model import open_predictor
from ..serve.predictor import Predictor, localise_rule
from ..serve.stages import cpu_model, int8_isa  # the one CPU probe (the Latency page's live runs use it too)
from ..shipped import catalog, paths
from ..shipped import manifest as art
from ..shipped.paths import REPO_ROOT
from ..shipped.splits import SHIPPED_PROTOCOL
from ..training.timing import measure
from . import quiet

DEFAULT_MODELS = catalog.NAMES


def size_on_disk(name: str, protocol: str = SHIPPED_PROTOCOL, root=None) -> int:
    """Bytes of the files the model is loaded from (the shipped fp16 late stages for safetensors
    models; the ImageNet trunk they rebuild from the registry's wheel is not counted)."""
    return sum(art.file_size(f, root) for f in art.model_files(name, protocol, root))


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def bench_one(name: str, protocol: str = SHIPPED_PROTOCOL, threads: int = 2, batch: int = 32, iters: int = 50,
              warmup: int = 10, root=None) -> dict:
    """Benchmark one model in this process (``benchmark_models`` calls it in a subprocess)."""

    torch.set_num_threads(threads)
    base_rss = _rss_mb()
    t0 = time.perf_counter()
    predictor = open_predictor(name, protocol, root, gate=None, threads=threads)  # the model as the app loads it
    fn, entry = predictor.model, predictor.entry
    load_s = time.perf_counter() - t0
    size = entry.preprocess["input_size"]
    gen = torch.Generator().manual_seed(0)
    x1 = torch.randn(1, 3, size, size, generator=gen)
    xb = torch.randn(batch, 3, size, size, generator=gen)
    # The throughput run first: after it has freed its large activations, glibc's allocator keeps
    # batch-1 activations resident, as in a server that has been running; timed before it, a torch model's
    # batch-1 calls paid page faults for fresh memory (level 3: 45.7 ms against 10.4 ms with malloc's mmap
    # threshold raised), which measured the allocator's state rather than the model.
    b_iters = max(1, iters // 10)
    tb = measure(fn, xb, iters=b_iters, warmup=1, threads=threads)
    lat = measure(fn, x1, iters=iters, warmup=warmup, threads=threads)
    with_check = None
    if predictor.typicality is not None:  # the app's path: logits and the novelty check's features and scores
        with_check = round(measure(predictor.logits_and_typicality, x1, iters=iters, warmup=warmup,
                                   threads=threads)["p50_ms"], 3)
    from_photo = localised_p50(predictor, protocol, root, threads, iters, warmup)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "model": name, "format": entry.format, "level": entry.level,
        "p50_ms": round(lat["p50_ms"], 3), "p95_ms": round(lat["p95_ms"], 3), "mean_ms": round(lat["mean_ms"], 3),
        "p50_with_check_ms": with_check,
        "p50_photo_ms": from_photo.get("p50_photo_ms"), "p50_localised_ms": from_photo.get("p50_localised_ms"),
        "localised_crop_used": from_photo.get("localised_crop_used"),
        "iters": iters, "warmup": warmup, "batch": batch,
        "throughput_img_s": round(batch / (tb["p50_ms"] / 1000), 1),
        "size_bytes": size_on_disk(name, protocol, root), "load_seconds": round(load_s, 3),
        "peak_rss_mb": round(peak, 1), "model_peak_mb": round(peak - base_rss, 1),
        "test_top1": entry.top1("test"),
    }


LOCALISED_PHOTO = (640, 480)  # the synthetic photo the localisation stage is timed on


def localised_p50(predictor: Predictor, protocol: str, root, threads: int, iters: int, warmup: int) -> dict:
    """Batch-1 p50 of the app's path from a decoded photo to the answer (preprocessing, the model, its novelty
    check) without and with the localisation stage (the recorded rule, ``localise_rule``, with its largest crop
    lifted so that the crop is classified unless it would be the whole view: the stage's worst case, two passes and
    the crop's preprocessing; ``localised_crop_used`` records that the timed photo's crop was classified), timed
    alternately so that a drift of the machine's speed reaches both; empty when no locator is available."""
    rule = localise_rule(root, on=True)
    predictor.locator = predictor.own_locator(protocol, root, threads)
    if rule is None or predictor.locator is None:
        return {}
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (*LOCALISED_PHOTO[::-1], 3), dtype=np.uint8))
    rules = {"p50_photo_ms": None, "p50_localised_ms": replace(rule, max_side=1.0)}
    times: dict[str, list[float]] = {key: [] for key in rules}
    try:
        for _ in range(max(1, iters // 10)):
            for key, rule in rules.items():
                predictor.localise_rule = rule
                times[key].append(measure(lambda image: predictor.predict_many([image]), photo, iters=10,
                                          warmup=max(1, warmup // 5), threads=threads)["p50_ms"])
        predictor.localise_rule = rules["p50_localised_ms"]
        crop_used = predictor.predict_many([photo])[0].localisation.used
    finally:
        predictor.localise_rule = None
    return {**{key: round(float(np.median(values)), 3) for key, values in times.items()}, "localised_crop_used": crop_used}


def _bench_in_subprocess(name: str, protocol: str, threads: int, batch: int, iters: int, warmup: int, root) -> dict:
    args = [sys.executable, "-m", "flowers_core.bench.latency", "--one", name, "--protocol", protocol,
            "--threads", str(threads), "--batch", str(batch), "--iters", str(iters), "--warmup", str(warmup)]
    if root is not None:
        args += ["--artifacts", str(root)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=str(REPO_ROOT))
    if proc.returncode != 0:
        return {"model": name, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else
                f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _median_of_rounds(runs: list[dict]) -> dict:
    """One row from a model's rounds: medians of the timings, the per-round p50s kept for the spread."""
    row = dict(runs[-1])
    for key in ("p50_ms", "p95_ms", "mean_ms", "throughput_img_s", "p50_with_check_ms", "p50_photo_ms",
                "p50_localised_ms"):
        values = [r[key] for r in runs if r.get(key) is not None]
        row[key] = round(float(np.median(values)), 3) if values else None
    row["p50_ms_rounds"] = [r["p50_ms"] for r in runs]
    row["rounds"] = len(runs)
    return row


def benchmark_models(names=DEFAULT_MODELS, protocol: str = SHIPPED_PROTOCOL, threads: int = 2, batch: int = 32,
                     iters: int = 50, warmup: int = 10, root=None, subprocess_per_model: bool = True,
                     rounds: int = 1) -> list[dict]:
    """One row per model (models missing from the manifest get ``{"model", "error"}``).

    With ``rounds`` > 1 every model is timed once per round, models interleaved, and the row holds
    the medians: on a shared 2-core VM the machine's speed drifts over minutes, and interleaving
    spreads that drift over all models instead of charging it to whichever ran at a slow moment.
    """
    runs: dict[str, list[dict]] = {}
    errors: dict[str, dict] = {}
    for name in names:
        try:
            art.model_entry(name, protocol, root)
        except art.ArtifactMissing as e:
            errors[name] = {"model": name, "error": str(e)}
    for _ in range(rounds):
        for name in names:
            if name in errors:
                continue
            row = (_bench_in_subprocess(name, protocol, threads, batch, iters, warmup, root) if subprocess_per_model
                   else bench_one(name, protocol, threads, batch, iters, warmup, root))
            if "error" in row:
                errors[name] = row
            else:
                runs.setdefault(name, []).append(row)
    rows = [errors[n] if n in errors else _median_of_rounds(runs[n]) for n in names]
    by = {r["model"]: r for r in rows if "error" not in r}
    if catalog.TEACHER in by:
        for r in by.values():
            r["speedup_vs_ensemble"] = round(by[catalog.TEACHER]["p50_ms"] / r["p50_ms"], 2)
    return rows


def environment(threads: int) -> dict:
    return {"cpu": cpu_model(), "int8_isa": int8_isa(), "cores": os.cpu_count(), "threads": threads, "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "peak_memory_method": "ru_maxrss of a fresh subprocess per model; model_peak_mb subtracts the RSS "
                                  "after importing torch+onnxruntime, before loading the model"}


def table(rows: list[dict]) -> str:
    head = f"{'model':<13}{'p50 ms':>9}{'p95 ms':>9}{'img/s@32':>10}{'size MB':>9}{'peak MB':>9}{'× ens':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['model']:<13} not available: {r['error'][:80]}")
            continue
        lines.append(f"{r['model']:<13}{r['p50_ms']:>9.2f}{r['p95_ms']:>9.2f}{r['throughput_img_s']:>10.1f}"
                     f"{r['size_bytes'] / 1e6:>9.2f}{r['model_peak_mb']:>9.1f}"
                     f"{r.get('speedup_vs_ensemble', float('nan')):>7.1f}")
    return "\n".join(lines)


KEPT_FOR_OTHER_CPUS = ("model", "p50_ms", "p95_ms", "p50_with_check_ms", "throughput_img_s")


def keep_other_cpus(previous: dict | None, result: dict) -> dict:
    """``result`` with the latest run of every other INT8 instruction set kept under ``other_cpus`` (its
    environment and each model's timings), newest first: the CPU changes between sessions, and the targets
    hold on each. Only runs of the same protocol and thread count are kept (the same measurement)."""
    env = result["environment"]
    earlier = [] if previous is None else [previous, *previous.get("other_cpus", [])]
    kept: dict[str, dict] = {}
    for run in earlier:  # the previous record, then what it kept
        other = run.get("environment", {})
        isa = other.get("int8_isa")
        same_measurement = other.get("threads") == env["threads"] and run.get("protocol", result.get("protocol")) == result.get("protocol")
        if isa and isa != env["int8_isa"] and isa not in kept and same_measurement:
            kept[isa] = {"environment": other, "protocol": result.get("protocol"),
                         "models": [{k: r.get(k) for k in KEPT_FOR_OTHER_CPUS} for r in run["models"] if "error" not in r]}
    return {**result, "other_cpus": sorted(kept.values(), key=lambda r: str(r["environment"].get("date")), reverse=True)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="CPU latency benchmark of the shipped models (not a test).")
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    p.add_argument("--protocol", default=SHIPPED_PROTOCOL)
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (torch and ONNX Runtime)")
    p.add_argument("--batch", type=int, default=32, help="batch size of the throughput measurement")
    p.add_argument("--iters", type=int, default=100, help="timed batch-1 calls per model")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3, help="time every model this many times, interleaved; report medians")
    p.add_argument("--artifacts", default=None, help="artifacts folder (default: artifacts/)")
    p.add_argument("--output", default=None, help=f"result file (default: <artifacts>/{paths.LATENCY.path})")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one model, this process
    quiet.add_arguments(p)
    args = p.parse_args(argv)
    if args.one:
        row = bench_one(args.one, args.protocol, args.threads, args.batch, args.iters, args.warmup, args.artifacts)
        print(json.dumps(row))
        return
    state = quiet.wait_until_quiet(wait_s=args.quiet_wait_s)
    quiet.refuse_if_busy(state, args.busy_ok)
    rows = benchmark_models(args.models, args.protocol, args.threads, args.batch, args.iters, args.warmup,
                            args.artifacts, rounds=args.rounds)
    env = environment(args.threads) | {"quiet": state | {"load_after": round(os.getloadavg()[0], 2)}}
    result = {"environment": env, "protocol": args.protocol, "batch": args.batch,
              "iters": args.iters, "warmup": args.warmup, "rounds": args.rounds, "models": rows}
    result = keep_other_cpus(paths.LATENCY.read_or_none(args.artifacts, args.output), result)
    out = paths.LATENCY.write(result, root=args.artifacts, output=args.output)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        env = result["environment"]
        print(f"CPU: {env['cpu']} ({env['cores']} cores), {args.threads} threads, torch {env['torch']}, "
              f"onnxruntime {env['onnxruntime']}; batch-1 after {args.warmup} warm-up calls, {args.iters} timed, "
              f"median of {args.rounds} interleaved rounds")
        print(table(rows))
        print(f"written to {out}")


if __name__ == "__main__":
    main()
