"""How far each explanation method can be trusted (``python -m flowers_core.bench.explanations``).

For each explained model (the torch models Explain offers) and each method (Grad-CAM, Grad-CAM++, EigenCAM, the
L3 attention map, LIME at a fixed sample count) and three reference maps that know nothing of the model (a
random map, a centred blob, the photo's edges), over a fixed, seeded sample of images (one per species, then
more if asked):

- ROAD (``faithfulness``): the confidence in the model's answer after hiding the share of the photo a map marks
  most, and least, at each share; their combination; the same for a random map of the same photo;
- the model-randomisation sanity check: the rank correlation between the map on the trained model and on a
  copy with its trained layers re-initialised from the head down (LIME on the first ``--lime-sanity`` images
  only: each is another full LIME run);
- a pass / inconclusive / fail card per method (``card``).

``--part val`` measures validation images: the method Explain shows first, and for which model, is chosen from
that run (DECISIONS.md), never from the test one. The report is written after every image, so a run cut short
leaves what it measured (``n_images`` says how many).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..explain import faithfulness
from ..explain import maps as explain
from ..serve.stages import cpu_model
from ..shipped import catalog, paths
from ..shipped import manifest as art
from ..shipped.splits import SHIPPED_PROTOCOL
from ..training.data import load_index
from ..training.weights import load_model

DEFAULT_MODELS = ("student", "level3")  # the model Explain opens with (the app's INT8 one's fp32 twin), the attention one
METHODS = (*explain.CAM_METHODS, "Attention", "LIME")
BASELINES = ("random map", "centred blob", "edge map")
LIME_SAMPLES = 50  # fixed: LIME's map changes with its sample count; 50 keeps one run to a few seconds here
Z95 = 1.96
# The sanity check's line: a map that keeps over half its pixel ranking (Spearman) once what the model learnt is
# erased mostly shows the photo, not the model. Judged on the 95% interval of the mean: wholly below = pass,
# wholly above = fail, across it = inconclusive.
SANITY_LINE = 0.5


def sample(ids: np.ndarray, labels: np.ndarray, per_species: int, limit: int | None, seed: int) -> list[int]:
    """``per_species`` image ids of every species (seeded), in a seeded order; the first ``limit`` of them."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        of_c = ids[labels == c]
        chosen += rng.choice(of_c, size=min(per_species, len(of_c)), replace=False).tolist()
    chosen = rng.permutation(chosen).tolist()
    return chosen[:limit] if limit else chosen


def maps(model, img: Image.Image, target: int, lime_samples: int, with_lime: bool = True, seed: int = 0) -> dict:
    """Each method's heatmap of ``model``'s view of ``img`` for class ``target`` (on the same crop)."""
    out = {m: explain.gradcam(model, img, m, target).heatmap for m in explain.CAM_METHODS}
    if getattr(model, "attention_available", False):
        out["Attention"] = explain.attention_map(model, img).heatmap
    if with_lime:
        out["LIME"] = explain.lime(model, img, target, num_samples=lime_samples, seed=seed).heatmap
    return out


def reference_maps(view: np.ndarray, grid: int, seed: int) -> dict:
    size = view.shape[0]
    return {"random map": faithfulness.random_map(size, grid, seed), "centred blob": faithfulness.centre_blob(size),
            "edge map": faithfulness.edge_map(view)}


def measure_image(model, twin, img: Image.Image, image_id: int, temperature: float, lime_samples: int,
                  lime_sanity: bool, timings: dict) -> dict:
    """One image: every map's ROAD curve and its rank correlation with the randomised model's map."""
    view = explain.model_view(img, model.preprocess)
    x = faithfulness.view_tensor(model, view)
    with torch.no_grad():
        target = int(torch.as_tensor(model(x)).argmax())  # the model's answer on the view: what Explain explains
    confidence = float(faithfulness.confidences(model, x, target, temperature)[0])
    grid = faithfulness.feature_grid(model, x)
    t0 = time.perf_counter()
    found = maps(model, img, target, lime_samples, seed=image_id)
    timings.setdefault("maps_s", []).append(time.perf_counter() - t0)
    found.update(reference_maps(view, grid, seed=image_id))
    twin_maps = maps(twin, img, target, lime_samples, with_lime=lime_sanity, seed=image_id)
    twin_maps.update(reference_maps(view, grid, seed=image_id))  # model-free: the check must find them unchanged
    row = {"image_id": int(image_id), "target": target, "confidence": confidence, "methods": {}}
    for name, heat in found.items():
        t0 = time.perf_counter()
        curve = faithfulness.road_curve(model, x, heat, target, temperature=temperature, seed=image_id)
        timings.setdefault("score_s", []).append(time.perf_counter() - t0)
        row["methods"][name] = {"most_first": curve.most_first.tolist(), "least_first": curve.least_first.tolist(),
                                "combined": curve.combined,
                                "sanity": faithfulness.rank_correlation(heat, twin_maps[name])
                                if name in twin_maps else None}
    return row


def mean_ci(values) -> dict:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if not len(v):
        return {"n": 0, "mean": None, "sd": None, "low": None, "high": None}
    sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    half = Z95 * sd / np.sqrt(len(v))
    return {"n": int(len(v)), "mean": float(v.mean()), "sd": sd, "low": float(v.mean() - half),
            "high": float(v.mean() + half)}


def card(vs_random: dict, sanity: dict, baseline: bool) -> dict:
    """Saliency-card verdicts: better than a random map (ROAD combined, paired, 95% interval), and changed by
    erasing what the model learnt (sanity check). A baseline's verdicts are what the tests should say of it."""
    def faithful():
        if vs_random["n"] == 0:
            return "not measured"
        if baseline and vs_random["sd"] == 0:  # the random map against itself
            return "reference"
        if vs_random["low"] > 0:
            return "pass"
        return "fail" if vs_random["high"] <= 0 else "inconclusive"

    def sane():
        if sanity["n"] == 0:
            return "not measured"
        if sanity["high"] < SANITY_LINE:
            return "pass"
        return "fail" if sanity["low"] > SANITY_LINE else "inconclusive"

    both = (faithful(), sane())
    overall = "fail" if "fail" in both else ("pass" if both == ("pass", "pass") else "inconclusive")
    return {"faithful": both[0], "sanity": both[1], "overall": overall}


def summarise(rows: list[dict]) -> dict:
    """Per method: mean ROAD scores with their spread, the gain over the random map, the sanity check, a card."""
    names = list(dict.fromkeys(n for r in rows for n in r["methods"]))
    shares = faithfulness.SHARES
    out = {}
    for name in names:
        got = [r for r in rows if name in r["methods"]]
        m = [r["methods"][name] for r in got]
        vs_random = mean_ci([x["combined"] - r["methods"]["random map"]["combined"] for x, r in zip(m, got)])
        sanity = mean_ci([x["sanity"] for x in m])
        out[name] = {
            "kind": "baseline" if name in BASELINES else "method",
            "n_images": len(m),
            "combined": mean_ci([x["combined"] for x in m]),
            "most_first": {str(s): float(np.mean([x["most_first"][i] for x in m])) for i, s in enumerate(shares)},
            "least_first": {str(s): float(np.mean([x["least_first"][i] for x in m])) for i, s in enumerate(shares)},
            "vs_random": vs_random,
            "sanity": sanity,
            "card": card(vs_random, sanity, name in BASELINES),
        }
    return out


def run(models=DEFAULT_MODELS, part: str = "test", per_species: int = 1, limit: int | None = None, seed: int = 0,
        lime_samples: int = LIME_SAMPLES, lime_sanity: int = 10, data_root=None, artifacts_root=None,
        on_progress=None, keep: dict | None = None, shard: tuple[int, int] = (0, 1)) -> dict:
    """``keep``: an earlier report of the same sample: its other models' entries are kept (one model at a time
    fits a session; the report holds all of them) and the images its entries for ``models`` already measured are
    not measured again (a stopped run goes on where it stopped). ``shard`` (k, n): only the k-th of every n images
    of the sample, for n processes on n cores (``merge`` joins their reports)."""
    index = load_index(data_root)
    split = art.read_split(SHIPPED_PROTOCOL, artifacts_root)
    ids = np.asarray(split[part])
    sampled = sample(ids, index.label_of(ids), per_species, limit, seed)
    chosen = sampled[shard[0]::shard[1]]
    result = {"protocol": SHIPPED_PROTOCOL, "part": part, "seed": seed, "per_species": per_species,
              "lime_samples": lime_samples, "lime_sanity_images": lime_sanity, "shares": list(faithfulness.SHARES),
              "methods": list(METHODS), "baselines": list(BASELINES), "sanity_line": SANITY_LINE,
              "models": {}, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                          "torch_threads": torch.get_num_threads(), "loadavg_before": list(os.getloadavg())}}
    same = ("part", "seed", "per_species", "lime_samples", "shares")
    kept = keep.get("models", {}) if keep and all(keep.get(k) == result[k] for k in same) else {}
    result["models"] = {m: e for m, e in kept.items() if m not in models}
    loaded = {}
    for name in models:
        model = load_model(name, root=artifacts_root)
        twin = faithfulness.randomised_copy(model, seed=seed)
        temperature = float(art.model_entry(name, root=artifacts_root).temperature or 1.0)
        done = [r for r in kept.get(name, {}).get("images", []) if r["image_id"] in set(chosen)]
        result["models"][name] = {"label": catalog.title(name), "temperature": temperature,
                                  "randomised_layers": twin.layers, "images": done}
        loaded[name] = (model, twin.model, temperature, {})
    # images outside, models inside: a run stopped early has measured every model on the same images
    for i, image_id in enumerate(chosen):
        todo = {n: v for n, v in loaded.items()
                if image_id not in {r["image_id"] for r in result["models"][n]["images"]}}
        if not todo:
            continue
        img = Image.open(index.path(image_id)).convert("RGB")
        with_lime_sanity = sampled.index(image_id) < lime_sanity  # the sample's first images, whatever the shard
        for name, (model, twin, temperature, timings) in todo.items():
            entry = result["models"][name]
            rows = entry["images"]
            rows.append(measure_image(model, twin, img, image_id, temperature, lime_samples, with_lime_sanity, timings))
            entry.update(n_images=len(rows), of=len(sampled), summary=summarise(rows),
                         seconds={k: {"mean": float(np.mean(v)), "n": len(v)} for k, v in timings.items()})
            print(f"[explanations] {name} {part} {len(rows)}/{len(chosen)} image {image_id}: "
                  + ", ".join(f"{k} {v['combined']:+.3f}" for k, v in rows[-1]["methods"].items()), flush=True)
        if on_progress:
            on_progress(result)
    result["n_images"] = min((e.get("n_images", 0) for e in result["models"].values()), default=0)
    result["machine"]["loadavg_after"] = list(os.getloadavg())
    return result


def merge(reports: list[dict]) -> dict:
    """One report from the reports of the shards of one sample (``run(..., shard=...)``): each model's images
    together, summarised again; the machine and timing of the first shard, the count of shards said."""
    out = {**reports[0], "models": {}, "shards": len(reports)}
    for name in reports[0]["models"]:
        entries = [r["models"][name] for r in reports if name in r["models"]]
        rows = [row for e in entries for row in e["images"]]
        seconds = {k: {"mean": float(np.average([e["seconds"][k]["mean"] for e in entries if k in e.get("seconds", {})],
                                                weights=[e["seconds"][k]["n"] for e in entries if k in e.get("seconds", {})])),
                       "n": sum(e["seconds"][k]["n"] for e in entries if k in e.get("seconds", {}))}
                   for k in entries[0].get("seconds", {})}
        out["models"][name] = {**entries[0], "images": rows, "n_images": len(rows), "summary": summarise(rows),
                               "seconds": seconds}
    out["n_images"] = min((e["n_images"] for e in out["models"].values()), default=0)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                   choices=catalog.names(runtimes=("torch",)))
    p.add_argument("--part", default="test", choices=("val", "test"))
    p.add_argument("--per-species", type=int, default=1)
    p.add_argument("--limit", type=int, default=None, help="only the first N sampled images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lime-samples", type=int, default=LIME_SAMPLES)
    p.add_argument("--lime-sanity", type=int, default=10, help="images whose LIME is also run on the randomised model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-root", default=None)
    p.add_argument("--artifacts", default=None)
    p.add_argument("--output", default=None)
    p.add_argument("--shard", default="0/1", metavar="K/N", help="only the K-th of every N sampled images (N processes, "
                   "one a core; --output a file each, then --merge them)")
    p.add_argument("--merge", nargs="+", default=None, metavar="REPORT", help="join the shards' reports into the report")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = paths.EXPLANATIONS if args.part == "test" else paths.EXPLANATIONS_VAL
    if args.merge:
        merged = merge([json.loads(Path(f).read_text()) for f in args.merge])
        print(f"{merged['n_images']} images; written to {report.write(merged, root=args.artifacts, output=args.output)}")
        return
    shard = tuple(int(x) for x in args.shard.split("/"))

    def save(result):
        report.write(result, root=args.artifacts, output=args.output)

    result = run(args.models, args.part, args.per_species, args.limit, args.seed, args.lime_samples,
                 args.lime_sanity, args.data_root, args.artifacts, on_progress=save,
                 keep=report.read_or_none(args.artifacts, args.output), shard=shard)
    print(f"written to {report.write(result, root=args.artifacts, output=args.output)}")


if __name__ == "__main__":
    main()
