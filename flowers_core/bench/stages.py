"""The app's path timed stage by stage (``python -m flowers_core.bench.stages``): decode, flower gate, find the
flower, classify, novelty check (``flowers_core.serve.stages``), for the app's model on the shipped example photos (the
photos the Latency page's live run uses too, so the two reconcile), at a fixed thread count, after warm-up runs
that are left out. Writes ``reports/latency_stages.json``: each stage's p50/p90 (p99 from 100 runs), the raw
timings, the CPU, threads and runtime versions.
"""
from __future__ import annotations

import argparse
import json
import os

from ..serve.gallery import examples
from ..serve.predictor import Predictor
from ..serve.stages import STAGES, summarise, time_stages
from ..shipped import catalog, paths
from ..shipped.splits import SHIPPED_PROTOCOL
from . import quiet
from .latency import environment


def measure_stages(name: str = catalog.PRODUCTION, threads: int = 2, runs: int = 200, warmup: int = 8,
                   root=None, photos: list[bytes] | None = None) -> dict:
    photos = photos if photos is not None else [open(e["file"], "rb").read() for e in examples()]
    if not photos:
        raise FileNotFoundError("no example photos: run `python -m train.gallery --build`")
    predictor = Predictor(name, SHIPPED_PROTOCOL, root, threads=threads)
    kept = time_stages(predictor, photos, runs, warmup)
    return {"model": name, "photos": len(photos), "photo_source": "assets/examples (the Classify page's examples)",
            "runs": runs, "warmup": warmup, "stages": {stage: summarise(kept[stage], warmup)
                                                       for stage in (*STAGES, "total")},
            "times_ms": {stage: [round(v, 3) for v in values] for stage, values in kept.items()},
            "environment": environment(threads)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=catalog.PRODUCTION)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=200, help="timed runs, the example photos in turn")
    p.add_argument("--warmup", type=int, default=8, help="runs first, not kept")
    p.add_argument("--artifacts", default=None)
    quiet.add_arguments(p)
    args = p.parse_args(argv)
    state = quiet.wait_until_quiet(wait_s=args.quiet_wait_s)
    quiet.refuse_if_busy(state, args.busy_ok)
    result = measure_stages(args.model, args.threads, args.runs, args.warmup, args.artifacts)
    result["environment"]["quiet"] = state | {"load_after": round(os.getloadavg()[0], 2)}
    out = paths.LATENCY_STAGES.write(result, root=args.artifacts)
    print(json.dumps({k: v for k, v in result.items() if k != "times_ms"}, indent=1))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
