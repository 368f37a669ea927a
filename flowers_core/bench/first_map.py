"""Explain's first map against the library (``python -m flowers_core.bench.first_map``).

Explain opens on the answering model's own map: the INT8 student's class activation map (``serve.heatmap``),
drawn without torch. For a classifier that pools its last feature map and reads it through one linear layer, that
map *is* the last layer's Grad-CAM. This measures it on test images, one per species (seeded), for the class the
fp32 student predicts:

- **identity**: the fp32 student's ONNX twin with the class-map output added, against pytorch-grad-cam's
  ``GradCAM`` of the fp32 student (torch) at its last stage: the same network, so the rank correlation should be 1;
- **what the app shows**: the INT8 file's class map against the same Grad-CAM: what quantisation changes.

Spearman rank correlation of the two heatmaps at 56 × 56 (``explain.faithfulness.rank_correlation``)."""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..explain.faithfulness import rank_correlation
from ..serve.heatmap import class_activation_map
from ..serve.localise import CLASS_MAPS_OUTPUT
from ..serve.preprocess import Preprocess
from ..serve.runtime import OnnxSession
from ..serve.stages import cpu_model
from ..shipped import catalog, paths
from ..shipped import manifest as art
from ..shipped.splits import SHIPPED_PROTOCOL
from ..training.data import load_index
from ..training.onnx_edits import add_class_map_output
from ..training.weights import load_model
from .explanations import mean_ci, sample


def grad_cam(model, x: torch.Tensor, target: int) -> np.ndarray:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with torch.enable_grad(), GradCAM(model=model, target_layers=[model.stages[-1]]) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(target))])[0]


def run(part: str = "test", per_species: int = 1, limit: int | None = None, seed: int = 0, root=None,
        data_root=None) -> dict:
    int8 = catalog.PRODUCTION
    fp32 = catalog.fp32_twin(int8)
    entry = art.model_entry(fp32, SHIPPED_PROTOCOL, root)
    pre = Preprocess.from_dict(entry.preprocess)
    model = load_model(fp32, SHIPPED_PROTOCOL, root).eval()
    for p in model.parameters():
        p.requires_grad_(True)  # pytorch-grad-cam hooks the gradients of the last stage's output
    int8_session = OnnxSession(art.model_file(art.model_entry(int8, SHIPPED_PROTOCOL, root), root))
    index = load_index(data_root)
    ids = np.asarray(art.read_split(SHIPPED_PROTOCOL, root)[part])
    chosen = sample(ids, index.label_of(ids), per_species, limit, seed)
    rows = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        twin = Path(tmp) / "twin.onnx"
        twin.write_bytes((art.artifacts_dir(root) / entry.onnx["file"]).read_bytes())
        check = np.zeros((1, 3, pre.input_size, pre.input_size), np.float32)
        add_class_map_output(twin, check)
        twin_session = OnnxSession(twin)
        for image_id in chosen:
            with Image.open(index.path(image_id)) as im:
                view = pre.eval_crop(im.convert("RGB")).copy()
            x = torch.from_numpy(pre.normalize_array(view.transpose(2, 0, 1))[None])
            with torch.no_grad():
                target = int(model(x).argmax())
            reference = grad_cam(model, x, target)
            rows.append({"image_id": int(image_id), "target": target,
                         "identity": rank_correlation(class_activation_map(twin_session, view, pre, target).heatmap,
                                                      reference),
                         "int8": rank_correlation(class_activation_map(int8_session, view, pre, target).heatmap,
                                                  reference)})
    load = list(os.getloadavg())
    return {"part": part, "n_images": len(rows), "model": int8, "fp32_twin": fp32, "output": CLASS_MAPS_OUTPUT,
            "identity": mean_ci([r["identity"] for r in rows]) | {"min": min(r["identity"] for r in rows)},
            "int8": mean_ci([r["int8"] for r in rows]) | {"min": min(r["int8"] for r in rows),
                                                             "median": float(np.median([r["int8"] for r in rows]))},
            "rows": rows, "seconds": round(time.perf_counter() - start, 1),
            "machine": {"cpu": cpu_model(), "loadavg_after": load}, "date": time.strftime("%Y-%m-%d")}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", default="test", choices=("val", "test"))
    p.add_argument("--per-species", type=int, default=1)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--artifacts", default=None)
    p.add_argument("--data-root", default=None)
    p.add_argument("--output", default=None, help=f"default <artifacts>/{paths.FIRST_MAP.path}")
    args = p.parse_args(argv)
    result = run(args.part, args.per_species, args.limit, root=args.artifacts, data_root=args.data_root)
    out = paths.FIRST_MAP.write(result, root=args.artifacts, output=args.output)
    print(f"[first_map] {result['n_images']} {args.part} images: identity ρ {result['identity']['mean']:.4f} "
          f"(min {result['identity']['min']:.4f}); INT8 vs fp32 Grad-CAM ρ {result['int8']['mean']:.3f} "
          f"(95% {result['int8']['low']:.3f}–{result['int8']['high']:.3f}, min {result['int8']['min']:.3f}) -> {out}")


if __name__ == "__main__":
    main()
