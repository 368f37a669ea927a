"""Flower species a model never saw, measured inside Flowers-102 (``python -m flowers_core.bench.unseen_species``).

``real-photos/`` holds three flowers that are none of the 102; how well a novelty check turns away unknown
species in general is measured here without them. Per fold, a seeded fifth of the 102 species is held out
of training; a model of the student's architecture (``SPEC``: EfficientNet-Lite0, linear head, frozen trunk,
the level-2 recipe on the cached eval and strong views) is trained on the other species of the training
split, its epoch chosen on their validation images. Each distance of ``novelty.Typicality`` is fitted on the
trained species' training features and gets its threshold by the shipped rule (``novelty.PASS_RATE`` of
their validation images pass); it is then scored on every training and validation image of the held-out
species (never trained on; the test split is not used). With the localisation stage recorded in the manifest
(``train.localise``), the app's rule is scored again with the stage on (``localised``): each image's crop around
the strongest bloom of the fold model's own class activation map is classified too and the two views combined
by the recorded rule, the thresholds unchanged (fitted on whole images, as the shipped ones are).
Written to ``artifacts/reports/unseen_species.json``.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from ..metrics import entropy, pass_threshold, softmax
from ..serve.answer import verdict
from ..serve.localise import LocaliseRule, combine_stage, localise
from ..serve.novelty import DISTANCE, MAX_UNSEEN_ANSWERED, PASS_RATE, SWEPT_PASS_RATES, Typicality, operating_point
from ..shipped import manifest as art
from ..shipped import paths
from ..shipped.splits import SHIPPED_PROTOCOL
from ..training.calibration import entropy_rule
from ..training.engine import CachedViews, fit, seed_everything
from ..training.fits import TARGET_SELECTIVE_ACCURACY
from ..training.levels import LevelSpec, Workspace, training_views
from ..training.models import FlowerNet, create_model
from ..training.recipes import LEVELS
from ..training.transforms import eval_view

SPEC = replace(LEVELS["level2"], name="unseen_species", arch="efficientnet_lite0", input_size=260)
FOLDS, SEED = 5, 0
SHIPPED_DISTANCE = DISTANCE  # the shipped checks' distance: relative Mahalanobis
DISTANCES = {"Mahalanobis": False, SHIPPED_DISTANCE: True}  # name -> ``Typicality.fit(relative=...)``
ENTROPY = "entropy of the calibrated softmax"
APP_RULE = "entropy or relative Mahalanobis (the app's 'not sure')"
SIGNALS = (*DISTANCES, ENTROPY, APP_RULE)
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


def logits_and_features(model: FlowerNet, trunk_out: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        out = [model.logits_and_features_from_trunk(trunk_out[i: i + BATCH].float()) for i in range(0, len(trunk_out), BATCH)]
    return torch.cat([o[0] for o in out]).numpy(), torch.cat([o[1] for o in out]).numpy()


def _row(known_pass: np.ndarray, unseen_pass: np.ndarray, known_score=None, unseen_score=None) -> dict:
    """The shares of trained species' validation images and of held-out species' images a signal lets through,
    and, for a signal with a score, its AUROC (trained species' validation images against the held-out species)."""
    auroc = None if known_score is None else float(roc_auc_score(
        np.r_[np.ones(len(known_score)), np.zeros(len(unseen_score))], np.r_[known_score, unseen_score]))
    return {"unseen_passing": float(unseen_pass.mean()), "trained_val_passing": float(known_pass.mean()), "auroc": auroc}


def crop_outputs(model: FlowerNet, squares: torch.Tensor, rule: LocaliseRule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The localisation stage with ``model`` as its own locator, each uint8 square taken as the photo: the crop
    around the strongest bloom of the model's class activation map of its best guess (its feature map seen through
    its linear classifier's weights, as the INT8 file's ``class_maps``), classified. The crops' logits, pooled
    features, and whether each crop is used (``Localisation.used``)."""
    pre, weights = model.preprocess, model.head.fc.weight
    logits, features, used = [], [], []
    for i in range(0, len(squares), BATCH):
        chunk = squares[i: i + BATCH]
        with torch.inference_mode():
            fmap = model.feature_map(eval_view(pre, chunk))
            maps = torch.einsum("bchw,bc->bhw", fmap, weights[model.head(fmap).argmax(1)]).numpy()
        photos = [Image.fromarray(s.permute(1, 2, 0).numpy()) for s in chunk]
        places = [localise(m, photo.size, pre.input_size, pre.resize_size, rule) for m, photo in zip(maps, photos)]
        crops = np.concatenate([pre.array_from_pil(photo.crop(p.box.as_tuple())) for photo, p in zip(photos, places)])
        with torch.inference_mode():
            out = model.logits_and_features(torch.from_numpy(crops))
        logits.append(out[0].numpy())
        features.append(out[1].numpy())
        used += [p.used for p in places]
    return np.concatenate(logits), np.concatenate(features), np.array(used)


def score_fold(model: FlowerNet, ws: Workspace, held: np.ndarray, pass_rate: float = PASS_RATE,
               target_accuracy: float = TARGET_SELECTIVE_ACCURACY, rule: LocaliseRule | None = None) -> dict:
    """Each distance fitted on the trained species' training features, its threshold on their validation
    images; the softmax's entropy rule (temperature and threshold fitted on those validation images, as
    ``train.uncertainty`` fits a shipped model's); and the app's rule, ``answer.verdict`` with both. Per
    signal: the share of the held-out species' images that pass (lower is better), of the trained species'
    validation images, and the AUROC of a signal's score. With a localisation ``rule``, the app's rule again with
    the stage on (``localised``, ``crop_outputs``)."""
    outputs = {part: logits_and_features(model, ws.features(model, part)) for part in ("train", "val")}
    labels = {part: ws.labels(part).numpy() for part in ("train", "val")}
    unseen = {part: np.isin(labels[part], held) for part in labels}
    kept = np.setdiff1d(np.arange(len(ws.index.classes)), held)
    fit_on = outputs["train"][1][~unseen["train"]]
    fit_labels = np.searchsorted(kept, labels["train"][~unseen["train"]])
    val_logits, val_features = (o[~unseen["val"]] for o in outputs["val"])
    val_labels = np.searchsorted(kept, labels["val"][~unseen["val"]])
    unseen_logits, unseen_features = (np.concatenate([outputs[part][i][unseen[part]] for part in outputs]) for i in (0, 1))
    result, typicality = {}, {}
    for name, relative in DISTANCES.items():
        check = Typicality.fit(fit_on, fit_labels, len(kept), relative=relative)
        known, unknown = check.scores(val_features), check.scores(unseen_features)
        threshold = pass_threshold(known, pass_rate)
        typicality[name] = (check, known, unknown, threshold)
        result[name] = _row(known >= threshold, unknown >= threshold, known, unknown)
    temperature, entropy_threshold = entropy_rule(val_logits, val_labels, target_accuracy)
    known_entropy, unseen_entropy = (entropy(softmax(x, temperature)) for x in (val_logits, unseen_logits))
    result[ENTROPY] = _row(known_entropy <= entropy_threshold, unseen_entropy <= entropy_threshold,
                           -known_entropy, -unseen_entropy)
    check, known, unknown, threshold = typicality[SHIPPED_DISTANCE]
    correct = val_logits.argmax(1) == val_labels

    def app_rule(typicality_threshold: float, known_view=(known_entropy, known, correct),
                 unseen_view=(unseen_entropy, unknown)) -> dict:
        """The app's verdict on the trained species' validation images (entropy, typicality, top-1 right) and on
        the held-out species' images (entropy, typicality): the whole images' by default."""
        answers = np.vectorize(lambda e, t: verdict(e, entropy_threshold, typicality=t,
                                                    typicality_threshold=typicality_threshold) == "species", otypes=[bool])
        entropies, typical, right = known_view
        known_answered = answers(entropies, typical)
        return {**_row(known_answered, answers(*unseen_view)),
                "trained_val_accuracy_when_answered": float(right[known_answered].mean()) if known_answered.any() else None}

    result[APP_RULE] = app_rule(threshold)
    localised = None
    if rule is not None:
        squares = {part: ws.squares(model.preprocess.resize_size, part) for part in ("train", "val")}
        unseen_squares = torch.cat([squares[part][torch.from_numpy(unseen[part])] for part in outputs])

        def stage(logits: np.ndarray, typical: np.ndarray, photos: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            crop_logits, crop_features, used = crop_outputs(model, photos, rule)
            return (*combine_stage(softmax(logits, temperature), typical, softmax(crop_logits[used], temperature),
                                   check.scores(crop_features[used]), used, rule.combine), used)

        known_probs, known_typical, known_used = stage(val_logits, known, squares["val"][torch.from_numpy(~unseen["val"])])
        unseen_probs, unseen_typical, unseen_used = stage(unseen_logits, unknown, unseen_squares)
        known_correct = known_probs.argmax(1) == val_labels
        localised = {**app_rule(threshold, (entropy(known_probs), known_typical, known_correct),
                                (entropy(unseen_probs), unseen_typical)),
                     "trained_val_top1": float(known_correct.mean()),
                     "trained_val_top1_whole": float(correct.mean()),
                     **{f"{k}_whole": v for k, v in result[APP_RULE].items() if k != "auroc"},
                     "trained_val_crop_used": float(known_used.mean()), "unseen_crop_used": float(unseen_used.mean())}
    # the same rule at other operating points of the novelty check (the entropy rule unchanged)
    by_pass_rate = {str(rate): app_rule(pass_threshold(known, rate)) for rate in SWEPT_PASS_RATES}
    return {"held_out": [ws.index.classes[c] for c in held], "n_unseen_images": int(len(unseen_features)),
            "n_trained_val_images": int(len(val_labels)), "temperature": temperature,
            "entropy_threshold": entropy_threshold, "signals": result, "app_rule_by_pass_rate": by_pass_rate,
            **({} if localised is None else {"localised": localised})}


def _mean(rows: list[dict]) -> dict:
    """The mean over folds of each field (None where no fold has a value)."""
    values = {k: [r[k] for r in rows if r[k] is not None] for k in rows[0]}
    return {k: float(np.mean(v)) if v else None for k, v in values.items()}


def run(folds=tuple(range(FOLDS)), data_root=None, artifacts_root=None, spec: LevelSpec = SPEC, epochs: int | None = None,
        pass_rate: float = PASS_RATE, target_accuracy: float = TARGET_SELECTIVE_ACCURACY, localised: bool = True) -> dict:
    """Every fold of ``folds``; with ``localised``, the app's rule with the localisation stage too, by the rule the
    manifest records (none recorded: not scored)."""
    ws = Workspace(SHIPPED_PROTOCOL, data_root, artifacts_root)
    record = art.localise_record(artifacts_root) if localised else None
    rule = LocaliseRule.from_dict(record.rule) if record else None
    results = []
    for fold in folds:
        t0 = time.perf_counter()
        held = held_out_species(fold, len(ws.index.classes))
        model = train_without(spec, ws, held, epochs)
        results.append({"fold": fold, **score_fold(model, ws, held, pass_rate, target_accuracy, rule),
                        "seconds": round(time.perf_counter() - t0, 1)})
        for name, r in results[-1]["signals"].items():
            print(f"[unseen_species] fold {fold} {name:<22} unseen species passing {r['unseen_passing']:.3f} "
                  f"trained species' val passing {r['trained_val_passing']:.3f}"
                  + ("" if r["auroc"] is None else f" AUROC {r['auroc']:.3f}"), flush=True)
        if "localised" in results[-1]:
            r = results[-1]["localised"]
            print(f"[unseen_species] fold {fold} app rule, localised: unseen species passing {r['unseen_passing']:.3f} "
                  f"trained species' val passing {r['trained_val_passing']:.3f}", flush=True)
    mean = {name: _mean([f["signals"][name] for f in results]) for name in SIGNALS}
    mean_by_pass_rate = {rate: _mean([f["app_rule_by_pass_rate"][rate] for f in results]) for rate in results[0]["app_rule_by_pass_rate"]}
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "protocol": SHIPPED_PROTOCOL, "command": paths.UNSEEN_SPECIES.command,
            "model": {"arch": spec.arch, "head": spec.head, "input_size": spec.input_size, "recipe": "level2",
                      "augment": spec.augment, "aug_views": spec.aug_views, "epochs": epochs or spec.config.epochs},
            "pass_rate": pass_rate, "target_selective_accuracy": target_accuracy, "n_folds_total": FOLDS, "seed": SEED, "folds": results, "mean": mean,
            "mean_app_rule_by_pass_rate": mean_by_pass_rate, "max_unseen_answered": MAX_UNSEEN_ANSWERED,
            "operating_point": operating_point(mean_by_pass_rate),
            **({} if rule is None else {"localise_rule": rule.to_dict(),
                                        "mean_localised": _mean([f["localised"] for f in results])})}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--folds", type=int, nargs="+", default=list(range(FOLDS)),
                   help=f"which of the {FOLDS} folds to run (default: all, every species held out once; ~8 min a fold)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--artifacts", default=None)
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epoch count")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--without-localise", action="store_true", help="skip the app's rule with the localisation stage")
    p.add_argument("--output", default=None, help=f"default: <artifacts>/{paths.UNSEEN_SPECIES.path}")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(args.folds, args.data_root, args.artifacts, epochs=args.epochs, localised=not args.without_localise)
    out = paths.UNSEEN_SPECIES.write(result, root=args.artifacts, output=args.output)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
