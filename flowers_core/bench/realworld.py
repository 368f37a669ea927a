"""How the shipped models answer people's own photos (``python -m flowers_core.bench.realworld``).

Two folders beside Flowers-102 under the data root, never trained on: ``real-photos/`` (web photos of
8 of the 102 species, and of 3 flowers that are none of them: ``class_id`` -1 in ``labels.csv``) and
``not-flowers/`` (everyday photos of no flower). Every photo goes through the app's path
(``decode.load_image`` + ``Predictor``); the flower gate is computed once per photo and shared by
every model. Per model: top-1 on the 8 species (overall and per species), the share answered with a
species and the accuracy of those answers, and how often an unknown flower or a non-flower is given a
species name, with the verdict breakdown of each group, how often the right species is among the candidates a
"not sure" answer shows, and the same answers at every pass rate its
novelty check recorded a threshold for (measured, not used to choose the shipped one). The result goes to
``<artifacts>/reports/realworld.json``, with each model's manifest metrics so a stale report shows.
"""
from __future__ import annotations

import argparse
import csv
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..open_model import open_predictor
from ..serve.answer import CANDIDATES_SHOWN, VERDICTS, Prediction
from ..serve.decode import ImageError, load_image
from ..serve.gate import GATE_CMD, FlowerGate, has_gate
from ..serve.predictor import Predictor
from ..shipped import catalog, paths
from ..shipped import manifest as art
from ..shipped.paths import default_data_root
from ..shipped.splits import SHIPPED_PROTOCOL
from ..training.features import parse_view

DEFAULT_MODELS = catalog.NAMES
REAL_PHOTOS, NOT_FLOWERS = "real-photos", "not-flowers"
GROUPS = ("known", "unknown", "not_flower")  # one of the 102 / a flower that is none of them / no flower
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
ANSWER_FIELDS = ("answered", "accuracy_when_answered", "unknown_given_species", "not_flower_given_species")
FLOWERING = "flower"  # the `form` of a photo of the flower itself (Flowers-102 shows no other)
CONFUSIONS_KEPT = 10  # per model, the most frequent (species, called) mistakes kept in the report


@dataclass(frozen=True)
class Photo:
    path: Path
    group: str
    class_id: int  # 0-based Flowers-102 class for "known", -1 otherwise
    label: str
    form: str = "flower"  # labels.csv's `form`: "flower", or e.g. "seed head" (a dandelion clock: not in Flowers-102)


def photo_set(data_root=None) -> list[Photo]:
    """The labelled real photos (``labels.csv``) and every image of ``not-flowers/``, in a fixed order."""
    root = Path(data_root) if data_root is not None else default_data_root()
    real, other = root / REAL_PHOTOS, root / NOT_FLOWERS
    if not (real / "labels.csv").is_file() or not other.is_dir():
        raise FileNotFoundError(f"expected {real}/labels.csv and {other}/ under the data root {root} "
                                "(pass --data-root or set FLOWERS_DATA_ROOT)")
    with open(real / "labels.csv", newline="") as f:
        photos = [Photo(real / r["file"], "known" if int(r["class_id"]) >= 0 else "unknown", int(r["class_id"]),
                        r["label"], r.get("form") or FLOWERING) for r in csv.DictReader(f)]
    return photos + [Photo(p, "not_flower", -1, "not a flower") for p in sorted(other.iterdir())
                     if p.suffix.lower() in IMAGE_SUFFIXES]


def _share(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if mask.size else None


def realworld_metrics(photos: list[Photo], predicted: np.ndarray, verdicts: np.ndarray,
                      class_names: tuple[str, ...] | None = None, candidates: np.ndarray | None = None) -> dict:
    """The report's numbers for one model: ``predicted`` class ids and ``verdicts`` per photo; with the
    ``class_names``, also its most frequent mistakes on the known species (``confusions``); with the
    ``candidates`` (each photo's ``CANDIDATES_SHOWN`` most probable class ids, most probable first), how often
    the right species is among them, over all the known species' photos and over those answered "not sure"
    (the candidates such an answer shows)."""
    group = np.array([p.group for p in photos])
    truth = np.array([p.class_id for p in photos])
    labels = np.array([p.label for p in photos])
    correct, answered = predicted == truth, verdicts == "species"
    among = None if candidates is None else (np.asarray(candidates) == truth[:, None]).any(1)

    def known_part(mask: np.ndarray) -> dict:
        return {"n": int(mask.sum()), "top1": _share(correct[mask]), "answered": _share(answered[mask]),
                "accuracy_when_answered": _share(correct[mask & answered])}

    known = group == "known"
    flowering = known & (np.array([p.form for p in photos]) == FLOWERING)
    wrong = known & ~correct
    pairs = Counter(zip(truth[wrong].tolist(), predicted[wrong].tolist()))
    answered_pairs = Counter(zip(truth[wrong & answered].tolist(), predicted[wrong & answered].tolist()))
    confusions = [{"species": class_names[species], "called": class_names[called], "n": n,
                   "answered": answered_pairs[species, called]}
                  for (species, called), n in pairs.most_common(CONFUSIONS_KEPT)] if class_names else []
    not_sure = known & (verdicts == "not_sure")
    return {
        **known_part(known),
        "top_candidates": None if among is None else _share(among[known]),
        "not_sure_with_right_candidate": None if among is None else _share(among[not_sure]),
        # the known species' photos of the flower itself (not a dandelion's seed head): what Flowers-102 shows
        "flowering": {**known_part(flowering), "top_candidates": None if among is None else _share(among[flowering]),
                      # a real flower in bloom called "not a flower": the flower gate's cost (DECISIONS A9)
                      "not_a_flower": _share(verdicts[flowering] == "not_a_flower")},
        "unknown_given_species": _share(answered[group == "unknown"]),
        "not_flower_given_species": _share(answered[group == "not_flower"]),
        "per_species": {str(s): known_part(known & (labels == s)) for s in dict.fromkeys(labels[known])},
        "verdicts": {g: {v: _share(verdicts[group == g] == v) for v in VERDICTS} for g in GROUPS
                     if (group == g).any()},
        "confusions": confusions,  # photos of a known species called another: how many, and how many of those answered
    }


def answers_by_pass_rate(predictor: Predictor, photos: list[Photo], predicted: np.ndarray,
                         predictions: list[Prediction]) -> dict[str, dict]:
    """How the model would answer the same photos with its novelty check at every pass rate its fit
    recorded a threshold for (``thresholds_by_pass_rate``; the entropy rule and the gate unchanged): the answer
    fields of ``realworld_metrics`` per rate. Measured after the choice of the shipped rate, never used for it.
    Empty when the model runs no check."""
    recorded = (predictor.entry.novelty or {}).get("thresholds_by_pass_rate") if predictor.typicality is not None else None
    result = {}
    for rate, threshold in (recorded or {}).items():
        verdicts = np.array([predictor.verdict_at(r, threshold) for r in predictions])
        m = realworld_metrics(photos, predicted, verdicts)
        result[rate] = {k: m[k] for k in ANSWER_FIELDS}
    return result


def localisation_summary(predictor: Predictor, photos: list[Photo], predictions: list[Prediction]) -> dict | None:
    """The localisation rule the answers were made with (None: the whole photo alone), and per group how often
    a crop was used and how often the photo held several blooms."""
    if predictor.localise_rule is None:
        return None
    group = np.array([p.group for p in photos])
    used = np.array([bool(r.localisation and r.localisation.used) for r in predictions])
    several = np.array([bool(r.localisation and len(r.localisation.blooms) > 1) for r in predictions])
    return {"rule": predictor.localise_rule.to_dict(),
            "crop_used": {g: _share(used[group == g]) for g in GROUPS if (group == g).any()},
            "several_blooms": {g: _share(several[group == g]) for g in GROUPS if (group == g).any()}}


WHOLE_PHOTO_FIELDS = ("n", "top1", "top_candidates", "flowering", *ANSWER_FIELDS)


def scored_candidates(preds: list[Prediction]) -> np.ndarray:
    """Each answer's top ``CANDIDATES_SHOWN`` class ids, whatever their probability (the column labels say "top
    3"; the page leaves out candidates under ``CANDIDATE_MIN_PROB``): one row per photo."""
    return np.array([r.candidate_ids(min_prob=0.0) for r in preds])


def whole_photo_metrics(predictor: Predictor, photos: list[Photo], predictions: list[Prediction]) -> dict | None:
    """With localisation on, the same run's answers from the whole photo alone (the same passes, before the crop
    is combined): the headline fields of ``realworld_metrics``, the before of the same command. None when off."""
    if predictor.localise_rule is None:
        return None
    whole = [r.whole_photo or r for r in predictions]
    m = realworld_metrics(photos, np.array([r.class_id for r in whole]), np.array([r.verdict for r in whole]),
                          candidates=scored_candidates(whole))
    return {k: m[k] for k in WHOLE_PHOTO_FIELDS}


def manifest_identity(predictor: Predictor) -> dict:
    """What the report was computed from: a different value in today's manifest means it is stale."""
    e = predictor.entry
    return {"val_top1": e.top1("val"), "test_top1": e.top1("test"),
            "temperature": predictor.temperature, "entropy_threshold": predictor.threshold,
            "typicality_threshold": predictor.typicality_threshold,
            "typicality_distance": (e.novelty or {}).get("distance") if predictor.typicality is not None else None,
            "typicality_pass_rate": (e.novelty or {}).get("target_val_pass_rate") if predictor.typicality is not None else None,
            "recipe": recipe_of(e)}


def recipe_of(entry: art.ModelEntry) -> str:
    """How a model was trained, in words (the ablation of the README compares reports by this)."""
    if entry.format == "ensemble":
        return "soft vote of its members"
    if entry.format == "onnx":
        return f"INT8 of {entry.fp32_twin or 'its fp32 twin'}"
    where = "whole network" if entry.frozen_stages == 0 else f"frozen trunk (first {entry.frozen_stages} stages)"
    d = entry.details
    device = (d.get("train_config") or {}).get("device", d.get("device", "cpu"))
    distilled = f"distilled from the {d['teacher']}, " if d.get("teacher") else ""
    if d.get("augment") == "distillation":  # the student: which cached views it was distilled on
        presets = Counter(parse_view(v)[0] for v in d.get("views", []))
        augment = "cached views" + (": " if presets else "") + ", ".join(
            p if p == "eval" else f"{n} {p}" for p, n in presets.items())
        if d.get("int8_trunk_views"):
            augment += f" (+ {', '.join(d['int8_trunk_views'])} through the INT8 trunk)"
    else:
        augment = f"{d.get('augment')} augmentation" + (f" + {d['photo_views']} photo views" if d.get("photo_views") else "")
    return f"{distilled}{where}, {augment}, trained on {device}"


def run(models=DEFAULT_MODELS, data_root=None, artifacts_root=None, limit: int | None = None,
        threads: int | None = None, batch_size: int = 16, novelty: bool = True, gate_root=None,
        localise: bool | None = None) -> dict:
    """Score ``models`` of ``artifacts_root`` on the photos; the flower gate comes from ``gate_root``
    (default: the same folder), so the models of a trial run can be measured with the shipped gate.
    ``localise``: the localisation stage on or off (None: as the manifest ships it)."""
    photos = photo_set(data_root)
    if limit:  # a spread-out subset: every group stays represented
        photos = photos[:: max(1, len(photos) // limit)][:limit]
    if gate_root is not None and not has_gate(gate_root):
        raise FileNotFoundError(f"no flower gate recorded in {art.artifacts_dir(gate_root)} ({GATE_CMD})")
    gate_root = artifacts_root if gate_root is None else gate_root
    gate = FlowerGate(gate_root) if has_gate(gate_root) else None
    predictors = [open_predictor(m, SHIPPED_PROTOCOL, artifacts_root, gate=gate, threads=threads, novelty=novelty,
                            localise=localise) for m in models]
    seconds = dict.fromkeys(["gate", *models], 0.0)
    kept, scores, outputs = [], [], {m: [] for m in models}  # each model's predictions, photo by photo
    errors = []
    for start in range(0, len(photos), batch_size):
        chunk, images = [], []
        for photo in photos[start: start + batch_size]:
            try:
                images.append(load_image(photo.path))
                chunk.append(photo)
            except ImageError as e:
                errors.append({"file": str(photo.path), "error": str(e),  # the decoder's own words too, if any
                               **({"cause": repr(e.__cause__)} if e.__cause__ is not None else {})})
        if not images:
            continue
        t0 = time.perf_counter()
        flower = gate.score_images(images) if gate is not None else None
        seconds["gate"] += time.perf_counter() - t0
        for p in predictors:
            t0 = time.perf_counter()
            preds = p.predict_many(images, flower_scores=flower)
            seconds[p.name] += time.perf_counter() - t0
            outputs[p.name].extend(preds)
        kept += chunk
        scores += [] if flower is None else list(map(float, flower))
        print(f"[realworld] {len(kept)}/{len(photos)} photos", flush=True)

    rows = []
    for p in predictors:
        preds = outputs[p.name]
        predicted, verdicts = np.array([r.class_id for r in preds]), np.array([r.verdict for r in preds])
        candidates = scored_candidates(preds)
        rows.append({"model": p.name, **realworld_metrics(kept, predicted, verdicts, tuple(p.classes), candidates),
                     "seconds": round(seconds[p.name], 1), "manifest": manifest_identity(p),
                     "localise": localisation_summary(p, kept, preds),
                     "whole_photo": whole_photo_metrics(p, kept, preds),
                     "by_pass_rate": answers_by_pass_rate(p, kept, predicted, preds)})
        r = rows[-1]
        print(f"[realworld] {p.name:<13} top1 {r['top1']:.3f} flowering {r['flowering']['top1']:.3f} "
              f"(top-{CANDIDATES_SHOWN} {r['flowering']['top_candidates']:.3f}) answered {r['answered']:.3f} "
              f"acc when answered {r['accuracy_when_answered'] or float('nan'):.3f} unknown→species "
              f"{r['unknown_given_species']:.3f} not-flower→species {r['not_flower_given_species']:.3f} "
              f"({r['seconds']} s)", flush=True)
    group = np.array([p.group for p in kept])
    gate_info = None
    if gate is not None:
        passed = gate.passes(np.array(scores))
        gate_info = {"file": gate.entry.file, "threshold": gate.threshold, "n_classes": len(gate.classes),
                     "date": gate.entry.date, "seconds": round(seconds["gate"], 1),
                     "pass_rate": {g: _share(passed[group == g]) for g in GROUPS if (group == g).any()}}
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "protocol": SHIPPED_PROTOCOL,
            "data_root": str(Path(data_root) if data_root is not None else default_data_root()),
            "n_images": {g: int((group == g).sum()) for g in GROUPS}, "errors": errors,
            "gate": gate_info, "candidates_shown": CANDIDATES_SHOWN, "models": rows}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    p.add_argument("--data-root", default=None, help="folder holding real-photos/ and not-flowers/ "
                   "(default: ../shared/data when present, else data/; or $FLOWERS_DATA_ROOT)")
    p.add_argument("--artifacts", default=None, help="artifacts folder of the models (default: artifacts/)")
    p.add_argument("--gate-from", default=None, metavar="DIR",
                   help="artifacts folder of the flower gate (default: --artifacts); e.g. the shipped gate for the "
                   "models of a trial run in another folder")
    p.add_argument("--limit", type=int, default=None, help="score an evenly spread subset of N photos")
    p.add_argument("--localise", action=argparse.BooleanOptionalAction, default=None,
                   help="classify a crop around the flower too (flowers_core.serve.localise); default: as the manifest "
                   "ships it (the report records the rule used)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--output", default=None, help=f"default: <artifacts>/{paths.REALWORLD.path}")
    p.add_argument("--without-novelty", action="store_true",
                   help=f"the models' novelty checks off (entropy alone says 'not sure'); written to "
                        f"<artifacts>/{paths.REALWORLD_BEFORE_NOVELTY.path} unless --output says otherwise")
    args = p.parse_args(argv)
    result = run(args.models, args.data_root, args.artifacts, args.limit, args.threads,
                 novelty=not args.without_novelty, gate_root=args.gate_from, localise=args.localise)
    report = paths.REALWORLD_BEFORE_NOVELTY if args.without_novelty else paths.REALWORLD
    out = report.write(result, root=args.artifacts, output=args.output)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
