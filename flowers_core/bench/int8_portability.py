"""Does the shipped INT8 file compute on this CPU what it computed when it was recorded?
(``python -m flowers_core.bench.int8_portability``)

ONNX Runtime's INT8 kernels differ between CPUs: with VNNI they accumulate in int32, on AVX2-only CPUs
they add pairs of products in int16 and can saturate (the file's weights are kept within that pair
bound, ``quantise.u8s8_pair_bound``). The CPU the project runs on changes between sessions, so this
re-scores the recorded splits of every shipped INT8 model as the app loads it (``open_predictor``, on the
decoded images) and
compares with the probabilities saved when the model was recorded: top-1 agreement, the largest
probability difference and the top-1 now and then; and the flower gate's INT8 file on the validation
images it was recorded on (pass rate and median flower score now and then). Each CPU's rows are kept in
``artifacts/reports/int8_portability.json``: a run replaces only the rows of CPUs with the same INT8
instruction set, so the report collects every kind of CPU the file has been checked on.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from ..metrics import softmax
from ..open_model import open_predictor
from ..serve.gate import FlowerGate, has_gate
from ..serve.stages import cpu_model, int8_isa
from ..shipped import catalog, paths
from ..shipped import manifest as art
from ..shipped.splits import SHIPPED_PROTOCOL
from ..training.engine import predict_logits
from ..training.levels import Workspace, image_forward

BATCH = 64


def _scored(forward, pre, ws: Workspace, part: str) -> np.ndarray:
    """``forward`` (normalised array -> array) over ``part``'s decoded images in the eval view, batched as
    training scored them when it recorded them (``levels.image_forward``, ``engine.predict_logits``)."""
    def on_tensor(x):
        return torch.from_numpy(forward(x.numpy()))

    return predict_logits(image_forward(on_tensor, pre), ws.squares(pre.resize_size, part), BATCH).numpy()


def rescore(name: str, protocol: str, data_root=None, root=None, threads: int | None = 2) -> list[dict]:
    """One row per recorded split of ``name`` (``protocol``): the shipped file re-run on its images here,
    against the probabilities saved when it was recorded."""
    predictor = open_predictor(name, protocol, root, gate=None, threads=threads, novelty=False)
    ws = Workspace(protocol, data_root, root)
    rows = []
    for split, rel in predictor.entry.probs.items():
        saved, ids, labels = art.load_probs(rel, root)
        assert np.array_equal(ids, ws.ids(split)), f"{rel} was not recorded on the saved {protocol} split"
        probs = softmax(_scored(predictor.logits, predictor.preprocess, ws, split))  # saved: before temperature
        rows.append({"model": name, "protocol": protocol, "split": split, "n": len(labels),
                     "top1_agreement": float((probs.argmax(1) == saved.argmax(1)).mean()),
                     "max_prob_difference": float(np.abs(probs - saved).max()),
                     "top1_now": float((probs.argmax(1) == labels).mean()), "top1_recorded": predictor.entry.top1(split)})
    return rows


def rescore_gate(data_root=None, root=None, threads: int | None = 2) -> dict:
    """The flower gate's INT8 file re-run on the validation images it was recorded on: its pass rate and
    median flower score here, against those in the manifest."""
    gate = FlowerGate(root, threads)
    ws = Workspace(SHIPPED_PROTOCOL, data_root, root)
    scores = _scored(gate.scores, gate.preprocess, ws, "val")
    return {"model": "flower_gate", "split": "val", "n": len(scores),
            "pass_rate_now": float(gate.passes(scores).mean()), "pass_rate_recorded": gate.entry.val_pass_rate,
            "median_score_now": float(np.median(scores)), "median_score_recorded": gate.entry.val_score_median}


def merge(previous: dict | None, run: dict) -> dict:
    """The report after ``run``: rows of CPUs with another INT8 instruction set are kept, the rest replaced."""
    kept = [r for r in (previous or {}).get("runs", []) if r["int8_isa"] != run["int8_isa"]]
    return {"command": paths.INT8_PORTABILITY.command, "runs": sorted([*kept, run], key=lambda r: r["int8_isa"])}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=catalog.names(runtimes=("onnx",)))
    p.add_argument("--data-root", default=None)
    p.add_argument("--artifacts", default=None)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    rows = [row for name in args.models  # the shipped protocol's: the other protocol's files are not shipped
            for row in rescore(name, SHIPPED_PROTOCOL, args.data_root, args.artifacts, args.threads)]
    gate = rescore_gate(args.data_root, args.artifacts, args.threads) if has_gate(args.artifacts) else None
    run = {"cpu": cpu_model(), "int8_isa": int8_isa(), "onnxruntime": onnxruntime.__version__,
           "date": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": rows, "gate": gate}
    out = paths.INT8_PORTABILITY.write(merge(paths.INT8_PORTABILITY.read_or_none(args.artifacts), run),
                                       root=args.artifacts)
    for r in rows:
        print(f"[int8_portability] {run['cpu']} ({run['int8_isa']}) {r['model']} {r['protocol']} {r['split']}: "
              f"top-1 agreement {r['top1_agreement']:.4f}, max prob diff {r['max_prob_difference']:.2e}, "
              f"top-1 {r['top1_now']:.4f} (recorded {r['top1_recorded']:.4f})")
    if gate:
        print(f"[int8_portability] flower gate val: pass rate {gate['pass_rate_now']:.4f} (recorded "
              f"{gate['pass_rate_recorded']:.4f}), median score {gate['median_score_now']:.4f} (recorded "
              f"{gate['median_score_recorded']:.4f})")
    print(f"written to {Path(out)}")


if __name__ == "__main__":
    main()
