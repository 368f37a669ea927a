"""The localisation stage's rule, chosen on validation images (build time; the run-time stage is
``flowers_core.serve.localise``, which the app uses without this module).

    python -m train.localise                 # add the class maps to the INT8 file, choose the rule, record it
    python -m train.localise --score-test    # then score the test split once with the recorded rule

The shipped INT8 file first gets its class activation maps as an output (``onnx_edits.add_class_map_output``;
its logits and INT8 weights unchanged). Then every rule of a small grid (map threshold, margin, minimum crop
side, largest useful crop, how the two views combine) is scored with the production model on two sets of
validation images, never on the test split nor per species: the validation photos as they are (close-ups: the
stage must not hurt them) and the same photos **framed** (shrunk to 30-60% of a wider frame over a blurred,
enlarged copy of themselves, at a seeded random place: the flower small in the picture, as the training's
``photo`` preset does). The chosen rule has the best framed top-1 among those that keep the plain top-1 of the
whole photo alone (ties: the plain top-1); it is shipped (the app, the CLI and the benchmarks use it by
default) only if it raises the framed top-1, and only for the models whose test split ``--score-test`` found
lowered by at most 0.2 points (``models``). Everything goes to the manifest's ``localise`` section and
``reports/localise.json``.
"""
from __future__ import annotations

import itertools
import time

import numpy as np
from PIL import Image

from ..metrics import softmax
from ..serve.decode import REDUCED_SIDE, load_image
from ..serve.localise import COMBINES, LOCALISE_CMD, MAX_TEST_DROP, LocaliseRule, combine_views, localise, view_region
from ..serve.predictor import Predictor
from ..serve.preprocess import Preprocess
from ..shipped import catalog, paths
from ..shipped import manifest as art
from ..shipped.splits import SHIPPED_PROTOCOL
from .levels import Workspace
from .onnx_edits import add_class_map_output
from .torch_backend import open_backend
from .transforms import eval_view

FRAMED_SCALE = (0.3, 0.6)  # the photo's side in the framed image, as a share of the frame's
FRAMED_MAX_SIDE = REDUCED_SIDE  # a framed photo's shorter side at most (``load_image`` decodes JPEGs about this large)
GRID = {"threshold": (0.4, 0.6), "margin": (0.15, 0.35), "min_side": (0.3, 0.5, 0.7),
        "max_side": (0.6, 0.8, 1.0), "combine": COMBINES}
BATCH = 32


def framed(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """``img`` shrunk to a random 30-60% of a frame's side (the photo keeps its pixels and the frame grows, up to
    ``FRAMED_MAX_SIDE`` on its shorter side) and
    pasted at a random place over a blurred, enlarged copy of itself (``transforms.RandomZoomOut``'s picture)."""
    scale = rng.uniform(*FRAMED_SCALE)
    shrink = min(1.0, FRAMED_MAX_SIDE * scale / min(img.size))  # the frame as large as the app decodes photos
    if shrink < 1:
        img = img.resize((max(8, round(img.width * shrink)), max(8, round(img.height * shrink))), Image.BICUBIC)
    w, h = img.size
    frame = (int(round(w / scale)), int(round(h / scale)))
    canvas = img.resize((max(4, w // 16), max(4, h // 16)), Image.BILINEAR).resize(frame, Image.BILINEAR)
    canvas.paste(img, (int(rng.integers(0, frame[0] - w + 1)), int(rng.integers(0, frame[1] - h + 1))))
    return canvas


GEOMETRIES = list(itertools.product(GRID["threshold"], GRID["margin"], GRID["min_side"]))


def outputs(predictor: Predictor, images: list[Image.Image]) -> dict:
    """One batch of photos: the whole photos' probabilities and, per crop geometry of ``GRID``, the crops'
    probabilities and their side as a share of the viewed square."""
    pre = predictor.preprocess
    batch = np.concatenate([pre.array_from_pil(img) for img in images])
    logits, _, maps = predictor.logits_typicality_and_maps(batch)
    out = {"whole": softmax(logits, predictor.temperature)}
    for geometry in GEOMETRIES:
        places = [localise(m, img.size, pre.input_size, pre.resize_size, LocaliseRule(*geometry, 1.0))
                  for m, img in zip(maps, images)]
        crops = np.concatenate([pre.array_from_pil(img.crop(p.box.as_tuple())) for img, p in zip(images, places)])
        out[geometry] = (softmax(predictor.logits(crops), predictor.temperature),
                         np.array([p.box.width / view_region(img.size, pre.input_size, pre.resize_size)[2]
                                   for p, img in zip(places, images)]))
    return out


def scores(out: dict, labels: np.ndarray) -> dict[tuple, float]:
    """Top-1 of every rule of ``GRID`` (and of the whole photo alone, key ``("whole",)``) from ``outputs``."""
    whole = out["whole"]
    result = {("whole",): float((whole.argmax(-1) == labels).mean())}
    for geometry in GEOMETRIES:
        crop, share = out[geometry]
        for max_side, combine in itertools.product(GRID["max_side"], GRID["combine"]):
            if max_side < geometry[2]:
                continue
            use = share < max_side
            probs = whole.copy()
            probs[use] = combine_views(whole[use], crop[use], combine)
            result[(*geometry, max_side, combine)] = float((probs.argmax(-1) == labels).mean())
    return result


def concatenated(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) if k == "whole" else
            tuple(np.concatenate([p[k][i] for p in parts]) for i in range(2)) for k in parts[0]}


def choose(plain: dict, framed_: dict) -> tuple[tuple, bool]:
    """The rule with the best framed top-1 among those whose plain top-1 is at least the whole photo's (ties:
    the plain top-1), and whether it beats the whole photo on the framed images."""
    keep = [k for k in plain if k != ("whole",) and plain[k] >= plain[("whole",)]]
    best = max(keep, key=lambda k: (framed_[k], plain[k])) if keep else ("whole",)
    return best, best != ("whole",) and framed_[best] > framed_[("whole",)]


def run(data_root=None, artifacts_root=None, threads: int | None = 2, limit: int | None = None, seed: int = 0) -> dict:
    t0 = time.perf_counter()
    entry = art.model_entry(catalog.PRODUCTION, SHIPPED_PROTOCOL, artifacts_root)
    pre = Preprocess.from_dict(entry.preprocess)
    ws = Workspace(SHIPPED_PROTOCOL, data_root, artifacts_root)
    add_class_map_output(art.model_file(entry, artifacts_root), eval_view(pre, ws.squares(pre.resize_size, "val")[:16]).numpy())
    entry.details["file_bytes"] = art.model_file(entry, artifacts_root).stat().st_size  # grew by the output
    art.record_model(entry, artifacts_root)
    predictor = Predictor(catalog.PRODUCTION, SHIPPED_PROTOCOL, artifacts_root, gate=None, threads=threads,
                          novelty=False, localise=True)
    ids, labels = ws.ids("val"), ws.labels("val").numpy()
    if limit:
        ids, labels = ids[:limit], labels[:limit]
    rng = np.random.default_rng(seed)
    plain_parts, framed_parts = [], []
    for i in range(0, len(ids), BATCH):  # a batch at a time: the framed photos are large
        images = [load_image(ws.index.path(j)) for j in ids[i: i + BATCH]]
        plain_parts.append(outputs(predictor, images))
        framed_parts.append(outputs(predictor, [framed(img, rng) for img in images]))
        print(f"[localise] {min(i + BATCH, len(ids))}/{len(ids)} validation images", flush=True)
    plain, framed_ = scores(concatenated(plain_parts), labels), scores(concatenated(framed_parts), labels)
    best, shipped = choose(plain, framed_)
    rule = LocaliseRule(*best) if best != ("whole",) else LocaliseRule()
    table = [{"rule": "whole photo" if k == ("whole",) else dict(zip(GRID, k)), "val_plain_top1": plain[k],
              "val_framed_top1": framed_[k]} for k in plain]
    section = {
        "rule": rule.to_dict(), "shipped": shipped, "locator": catalog.PRODUCTION,
        "models": [], "test_top1": {},  # a new rule: no model uses it before its test split is scored with it
        "chosen_on": f"{len(ids)} validation images, plain and framed ({FRAMED_SCALE[0]:.0%}-{FRAMED_SCALE[1]:.0%} of "
                     f"a wider frame, seed {seed}); never the test split, never per species",
        "val_plain_top1": {"whole": plain[("whole",)], "localised": plain[best]},
        "val_framed_top1": {"whole": framed_[("whole",)], "localised": framed_[best]},
        "command": LOCALISE_CMD, "seconds": round(time.perf_counter() - t0, 1),
        "date": time.strftime("%Y-%m-%d"),
    }
    art.update_manifest(artifacts_root, localise=section)
    paths.LOCALISE.write({**section, "grid": table}, root=artifacts_root)
    print(f"[localise] chosen {rule} (shipped: {shipped}); plain {plain[('whole',)]:.4f} -> {plain[best]:.4f}, "
          f"framed {framed_[('whole',)]:.4f} -> {framed_[best]:.4f}", flush=True)
    return section


def score_test(models, data_root=None, artifacts_root=None, threads: int | None = 2) -> dict:
    """Test top-1 of ``models`` with the recorded rule and from the whole photo alone (the same run's passes),
    on the test photos decoded as the app decodes uploads, the flower gate on as in the app: scored once, for
    the configuration that ships."""
    ws = Workspace(SHIPPED_PROTOCOL, data_root, artifacts_root)
    ids, labels = ws.ids("test"), ws.labels("test").numpy()
    result = {}
    for name in models:
        p = Predictor(name, SHIPPED_PROTOCOL, artifacts_root, threads=threads, novelty=False, localise=True,
                      backend=open_backend(name, SHIPPED_PROTOCOL, artifacts_root, threads))
        if p.localise_rule is None:  # no locator for this model (its view differs, or the INT8 file has no maps)
            raise SystemExit(f"{name}: the localisation stage cannot run for it; nothing was scored")
        preds = []
        for i in range(0, len(ids), BATCH):
            preds += p.predict_many([load_image(ws.index.path(j)) for j in ids[i: i + BATCH]])
        row = {"localised": float((np.array([q.class_id for q in preds]) == labels).mean()),
               "whole": float((np.array([q.whole_photo.class_id for q in preds]) == labels).mean()),
               "crop_used": float(np.mean([q.localisation.used for q in preds])),
               "recorded_test_top1": p.entry.top1("test")}
        result[name] = row
        print(f"[localise] test {name}: {row}", flush=True)
    record_test(result, artifacts_root)
    return result


def record_test(result: dict, artifacts_root=None) -> dict:
    """Add test scores to the manifest's ``localise`` section (those of other models kept) and ship the rule for
    the models whose test top-1 it lowers by at most ``MAX_TEST_DROP`` (``models``)."""
    section = art.read_manifest(artifacts_root).get("localise", {})
    if "rule" not in section:
        raise SystemExit(f"no localisation rule recorded yet: run `{LOCALISE_CMD}` before `--score-test`")
    scores = {**section.get("test_top1", {}), **result}
    section |= {"test_top1": scores, "test_scored": time.strftime("%Y-%m-%d"),
                "models": [m for m, row in scores.items() if row["localised"] >= row["whole"] - MAX_TEST_DROP]}
    art.update_manifest(artifacts_root, localise=section)
    return section
