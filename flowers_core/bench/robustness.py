"""How the shipped models hold up on photos unlike the test split (``python -m flowers_core.bench.robustness``).

Users' own photos are harder than Flowers-102's centred close-ups. This benchmark re-scores the
stratified test images under fixed, seeded shifts that such photos show (a flower off-centre or
small in the frame, blur, low light with a colour cast, low resolution, heavy JPEG compression, a
sideways shot) and reports, per model and shift: top-1, how often the verdict is "not sure" (the
model's entropy threshold, and its novelty check when it has one) and the accuracy of the answers
that are not flagged. A model that localises (the manifest's ``localise`` section) answers as in the app,
each shifted square given as the photo; the same pass's whole-photo answers are reported beside
(``whole_photo``: the stage's "before").
It is a benchmark, not a test: the result goes to ``<artifacts>/reports/robustness.json``.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..open_model import open_predictor
from ..serve.predictor import Predictor
from ..shipped import catalog, paths
from ..shipped.splits import SHIPPED_PROTOCOL
from ..training.levels import Workspace
from ..training.transforms import eval_view

DEFAULT_MODELS = (catalog.PRODUCTION, catalog.TEACHER, *catalog.names(levels=(1, 2)))  # level 2 vs 1: what the augmentation buys


def _seeded(transform) -> Callable[[torch.Tensor], torch.Tensor]:
    """Apply a random transform image by image with a fixed seed (same shifted set every run)."""
    def apply(squares: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(0)
        return torch.stack([transform(s) for s in squares])
    return apply


def _low_resolution(squares: torch.Tensor, side: int = 64) -> torch.Tensor:
    size = squares.shape[-1]
    return F.resize(F.resize(squares, [side], antialias=True), [size], antialias=True)


def shifts(size: int) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """uint8 squares [B, 3, S, S] -> shifted uint8 squares of the same size, by name."""
    return {
        "clean (test split)": lambda x: x,
        "off-centre, zoomed crop": _seeded(v2.RandomResizedCrop(size, scale=(0.2, 0.45), ratio=(0.75, 1.33))),
        "flower small in the frame": _seeded(v2.Compose([v2.RandomZoomOut(fill=110, side_range=(1.8, 2.5), p=1.0),
                                                         v2.Resize(size, antialias=True)])),
        "blur (out of focus)": lambda x: F.gaussian_blur(x, [15, 15], [4.0, 4.0]),
        "low light, warm cast": lambda x: F.adjust_hue(F.adjust_brightness(x, 0.45), 0.04),
        "low resolution (64 px)": _low_resolution,
        "JPEG quality 10": lambda x: F.jpeg(x, 10),
        "sideways (rotated 90°)": lambda x: torch.rot90(x, 1, dims=(-2, -1)),
    }


def answers(preds: list, labels: np.ndarray, judged: bool) -> dict:
    """Top-1 and mean confidence of ``preds``; when the model can say 'not sure' (``judged``), how the verdict
    (``answer.verdict``, no flower gate: these are all flowers) splits the images and the accuracy on each side."""
    probs = np.stack([p.probs for p in preds])
    correct = probs.argmax(-1) == labels
    out = {"top1": float(correct.mean()), "mean_confidence": float(probs.max(-1).mean())}
    if judged:
        flagged = np.array([p.verdict == "not_sure" for p in preds])
        out["flagged_not_sure"] = float(flagged.mean())
        out["accuracy_when_answered"] = float(correct[~flagged].mean()) if (~flagged).any() else None
        out["accuracy_when_flagged"] = float(correct[flagged].mean()) if flagged.any() else None
    return out


def score(predictor: Predictor, squares: torch.Tensor, labels: np.ndarray, batch_size: int = 32) -> dict:
    """``answers`` of the model on the squares; with its localisation stage on, the squares are its photos and
    the whole photo's own answers (``Prediction.whole_photo``) are scored too, as ``whole_photo``."""
    localised = predictor.localise_rule is not None
    preds = []
    for i in range(0, len(squares), batch_size):
        chunk = squares[i: i + batch_size]
        photos = [Image.fromarray(s.permute(1, 2, 0).numpy()) for s in chunk] if localised else None
        preds += predictor.predict_batch(eval_view(predictor.preprocess, chunk), images=photos)
    judged = predictor.threshold is not None or predictor.typicality_threshold is not None
    out = answers(preds, labels, judged)
    if localised:
        out["whole_photo"] = answers([p.whole_photo for p in preds], labels, judged)
        out["crop_used"] = float(np.mean([p.localisation.used for p in preds]))
    return out


def run(models=DEFAULT_MODELS, protocol: str = SHIPPED_PROTOCOL, data_root=None, artifacts_root=None,
        limit: int | None = None, threads: int | None = None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    ws = Workspace(protocol, data_root, artifacts_root=artifacts_root)
    predictors = [open_predictor(m, protocol, artifacts_root, gate=None) for m in models]
    size = predictors[0].preprocess.resize_size
    squares, labels = ws.squares(size, "test"), ws.labels("test").numpy()
    if limit:
        squares, labels = squares[:limit], labels[:limit]
    rows = []
    for name, shift in shifts(size).items():
        shifted = shift(squares)
        for p in predictors:
            t0 = time.perf_counter()
            rows.append({"shift": name, "model": p.name, **score(p, shifted, labels),
                         "seconds": round(time.perf_counter() - t0, 1)})
            whole = rows[-1].get("whole_photo", {}).get("top1", float("nan"))
            print(f"[robustness] {p.name:<13} {name:<28} top1 {rows[-1]['top1']:.4f} (whole photo {whole:.4f}) "
                  f"not sure {rows[-1].get('flagged_not_sure', float('nan')):.3f}", flush=True)
    return {"protocol": protocol, "split": "test", "n_images": int(len(labels)), "models": list(models),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": rows}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    p.add_argument("--protocol", default=SHIPPED_PROTOCOL)
    p.add_argument("--data-root", default=None)
    p.add_argument("--artifacts", default=None)
    p.add_argument("--limit", type=int, default=None, help="score only the first N test images")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--output", default=None, help=f"default: <artifacts>/{paths.ROBUSTNESS.path}")
    args = p.parse_args(argv)
    result = run(args.models, args.protocol, args.data_root, args.artifacts, args.limit, args.threads)
    out = paths.ROBUSTNESS.write(result, root=args.artifacts, output=args.output)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
