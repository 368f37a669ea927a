"""Flower species a model never saw, measured inside Flowers-102 (``python -m flowers_core.bench.unseen_species``).

``real-photos/`` holds three flowers that are none of the 102; how well a novelty check turns away unknown
species in general is measured here without them. Per fold, a seeded fifth of the 102 species is held out
of training; a model of the student's architecture (``SPEC``: EfficientNet-Lite0, linear head, frozen trunk,
the level-2 recipe on the cached eval and strong views) is trained on the other species of the training
split, its epoch chosen on their validation images. Each distance of ``novelty.Typicality`` is fitted on the
trained species' training features and gets its threshold by the shipped rule (``novelty.PASS_RATE`` of
their validation images pass); it is then scored on every training and validation image of the held-out
species (never trained on; the test split is not used). Written to ``artifacts/reports/unseen_species.json``.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from .. import artifacts as art
from ..app.reports import UNSEEN_SPECIES_CMD as CMD
from ..data import SHIPPED_PROTOCOL
from ..engine import CachedViews, fit, seed_everything
from ..evaluate import pass_threshold
from ..models import FlowerNet, create_model
from ..novelty import PASS_RATE, Typicality
from ..pipeline import LEVELS, LevelSpec, Workspace, training_views

SPEC = replace(LEVELS["level2"], name="unseen_species", arch="efficientnet_lite0", input_size=260)
FOLDS, SEED = 5, 0
DISTANCES = {"Mahalanobis": False, "relative Mahalanobis": True}  # name -> ``Typicality.fit(relative=...)``
BATCH = 128


def held_out_species(fold: int, n_classes: int, folds: int = FOLDS, seed: int = SEED) -> np.ndarray:
    """The species held out in ``fold``: one of ``folds`` disjoint parts of a seeded permutation."""
    return np.sort(np.array_split(np.random.default_rng(seed).permutation(n_classes), folds)[fold])


def train_without(spec: LevelSpec, ws: Workspace, held: np.ndarray, epochs: int | None = None) -> FlowerNet:
    """``spec``'s model trained on the training images of every species but ``held`` (labels renumbered),
    its best epoch chosen on the validation images of those species."""
    n_classes = len(ws.index.classes)
    kept = np.setdiff1d(np.arange(n_classes), held)
    renumber = torch.full((n_classes,), -1, dtype=torch.long)
    renumber[torch.from_numpy(kept)] = torch.arange(len(kept))
    cfg = replace(spec.config, epochs=epochs or spec.config.epochs)
    seed_everything(cfg.seed)
    model = create_model(spec.arch, spec.head, num_classes=len(kept), input_size=spec.input_size)
    model.freeze_trunk()
    labels = {part: ws.labels(part) for part in ("train", "val")}
    trained = {part: renumber[y] >= 0 for part, y in labels.items()}
    views = training_views(spec, model, ws)[:, trained["train"]]
    train = CachedViews(views, renumber[labels["train"][trained["train"]]], cfg.batch_size, seed=cfg.seed)
    val = ws.features(model, "val")[trained["val"]]
    fit(model.trainable(), model.forward_from_trunk, train, val, renumber[labels["val"][trained["val"]]], cfg,
        desc=f"{spec.name} without {len(held)} species")
    return model.eval()


def pooled_features(model: FlowerNet, trunk_out: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return torch.cat([model.logits_and_features_from_trunk(trunk_out[i: i + BATCH].float())[1]
                          for i in range(0, len(trunk_out), BATCH)]).numpy()


def score_fold(model: FlowerNet, ws: Workspace, held: np.ndarray, pass_rate: float = PASS_RATE) -> dict:
    """Each distance fitted on the trained species' training features, its threshold on their validation
    images; the share of the held-out species' images that pass (lower is better) and the AUROC of trained
    species' validation images against them."""
    features = {part: pooled_features(model, ws.features(model, part)) for part in ("train", "val")}
    labels = {part: ws.labels(part).numpy() for part in ("train", "val")}
    unseen = {part: np.isin(labels[part], held) for part in labels}
    kept = np.setdiff1d(np.arange(len(ws.index.classes)), held)
    fit_on = features["train"][~unseen["train"]]
    fit_labels = np.searchsorted(kept, labels["train"][~unseen["train"]])
    unseen_features = np.concatenate([features[part][unseen[part]] for part in features])
    result = {}
    for name, relative in DISTANCES.items():
        typicality = Typicality.fit(fit_on, fit_labels, len(kept), relative=relative)
        known, unknown = typicality.scores(features["val"][~unseen["val"]]), typicality.scores(unseen_features)
        threshold = pass_threshold(known, pass_rate)
        result[name] = {
            "unseen_passing": float((unknown >= threshold).mean()), "trained_val_passing": float((known >= threshold).mean()),
            "auroc": float(roc_auc_score(np.r_[np.ones(len(known)), np.zeros(len(unknown))], np.r_[known, unknown])),
        }
    return {"held_out": [ws.index.classes[c] for c in held], "n_unseen_images": int(len(unseen_features)),
            "n_trained_val_images": int((~unseen["val"]).sum()), "distances": result}


def run(folds=(0, 1), data_root=None, artifacts_root=None, spec: LevelSpec = SPEC, epochs: int | None = None,
        pass_rate: float = PASS_RATE) -> dict:
    ws = Workspace(SHIPPED_PROTOCOL, data_root, artifacts_root)
    results = []
    for fold in folds:
        t0 = time.perf_counter()
        held = held_out_species(fold, len(ws.index.classes))
        model = train_without(spec, ws, held, epochs)
        results.append({"fold": fold, **score_fold(model, ws, held, pass_rate),
                        "seconds": round(time.perf_counter() - t0, 1)})
        for name, r in results[-1]["distances"].items():
            print(f"[unseen_species] fold {fold} {name:<22} unseen species passing {r['unseen_passing']:.3f} "
                  f"AUROC {r['auroc']:.3f}", flush=True)
    mean = {name: {k: float(np.mean([f["distances"][name][k] for f in results])) for k in results[0]["distances"][name]}
            for name in DISTANCES}
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "protocol": SHIPPED_PROTOCOL, "command": CMD,
            "model": {"arch": spec.arch, "head": spec.head, "input_size": spec.input_size, "recipe": "level2",
                      "augment": spec.augment, "aug_views": spec.aug_views, "epochs": epochs or spec.config.epochs},
            "pass_rate": pass_rate, "n_folds_total": FOLDS, "seed": SEED, "folds": results, "mean": mean}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--folds", type=int, nargs="+", default=[0, 1], help=f"which of the {FOLDS} folds to run")
    p.add_argument("--data-root", default=None)
    p.add_argument("--artifacts", default=None)
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epoch count")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--output", default=None, help=f"default: <artifacts>/{art.UNSEEN_SPECIES_REPORT}")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(args.folds, args.data_root, args.artifacts, epochs=args.epochs)
    out = art.write_report(result, art.UNSEEN_SPECIES_REPORT, args.output, args.artifacts)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
