"""The novelty check of every shipped model (``flowers_core.novelty``): a relative Mahalanobis typicality of
the pooled features, fitted on the training images, with its threshold set on validation (``novelty.PASS_RATE``
of the validation flowers pass, a share chosen on species held out of training); the ensemble's check is the mean of its members' standardised typicality.
Each pack and threshold go to the model's manifest entry (``novelty``). The INT8 file first gets its
pooled features as a second ONNX output (its logits unchanged).

    python -m train.novelty [--models level1 ... student_int8] [--pass-rate 0.95] [--thresholds-only]

Each check also records its threshold at every rate of ``novelty.SWEPT_PASS_RATES`` (the benchmarks measure those
operating points). ``--thresholds-only`` keeps the recorded packs and sets the thresholds again from the
validation images (e.g. after a new pass rate), which skips the training images' features. The ensemble's
check records its members' thresholds, so it is set again after them whenever ``--models`` names one.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from flowers_core import artifacts as art
from flowers_core import catalog
from flowers_core.data import SHIPPED_PROTOCOL
from flowers_core.evaluate import pass_threshold
from flowers_core.inference import Predictor, member_packs
from flowers_core.novelty import (
    DISTANCE,
    FEATURES_OUTPUT,
    NOVELTY_CMD,
    PASS_RATE,
    RIDGE,
    SWEPT_PASS_RATES,
    EnsembleTypicality,
    Typicality,
    standardisation,
)
from flowers_core.pipeline import Workspace
from flowers_core.preprocess import Preprocess
from flowers_core.quantize import add_feature_output

BATCH = 64
PARTS = ("train", "val", "test")


def pooled_features(predictor: Predictor, squares) -> np.ndarray | list[np.ndarray]:
    """The pooled features of decoded squares through the shipped model in its eval view
    (``Predictor.logits_and_features``: one array, or one per member for the ensemble)."""
    chunks = [predictor.logits_and_features(predictor.preprocess.eval_view(squares[i: i + BATCH]))[1]
              for i in range(0, len(squares), BATCH)]
    if isinstance(chunks[0], list):
        return [np.concatenate(member) for member in zip(*chunks)]
    return np.concatenate(chunks)


def fit_novelty(name: str = catalog.PRODUCTION, data_root=None, artifacts_root=None, pass_rate: float = PASS_RATE,
                threads: int | None = None, thresholds_only: bool = False) -> dict:
    """Fit ``name``'s novelty check and record it in its manifest entry (an ensemble's members first need theirs).
    ``thresholds_only``: keep the recorded pack (a model's; the ensemble has none) and set the thresholds again."""
    t0 = time.perf_counter()
    entry = art.model_entry(name, SHIPPED_PROTOCOL, artifacts_root)
    if thresholds_only and entry.format != "ensemble" and not (entry.novelty or {}).get("file"):
        raise SystemExit(f"{name} has no novelty pack to keep: fit it first ({NOVELTY_CMD} --models {name})")
    ws = Workspace(SHIPPED_PROTOCOL, data_root, artifacts_root)
    pre = Preprocess.from_dict(entry.preprocess)
    refit = entry.format != "ensemble" and not thresholds_only  # the ensemble reuses its members' fits
    previous = entry.novelty or {}
    parts = PARTS if refit else ("val", "test")
    squares = {part: ws.squares(pre.resize_size, part) for part in parts}
    if entry.format == "onnx":  # a file made before the check existed gets its features output
        add_feature_output(art.model_file(entry, artifacts_root), pre.eval_view(squares["val"][:BATCH]).numpy())
    predictor = Predictor(name, SHIPPED_PROTOCOL, artifacts_root, gate=None, threads=threads, novelty=False)
    if entry.format == "ensemble":
        novelty, val_scores, test_scores = ensemble_novelty(predictor, squares, artifacts_root)
    else:
        novelty, val_scores, test_scores = model_novelty(predictor, squares, ws, artifacts_root,
                                                         None if refit else previous)
    threshold = pass_threshold(val_scores, pass_rate)
    if entry.format == "onnx":
        entry.details["file_bytes"] = art.model_file(entry, artifacts_root).stat().st_size  # grew by the output
    entry.novelty = {
        **novelty, "threshold": threshold, "target_val_pass_rate": pass_rate,
        "val_pass_rate": float((val_scores >= threshold).mean()),
        "test_pass_rate": float((test_scores >= threshold).mean()),
        "thresholds_by_pass_rate": {str(rate): pass_threshold(val_scores, rate) for rate in SWEPT_PASS_RATES},
        "threshold_on": "val", "command": NOVELTY_CMD, "seconds": round(time.perf_counter() - t0, 1),
    }
    if not refit and entry.format != "ensemble":  # the pack's fit time stays its own (the ensemble is always refit)
        entry.novelty |= {"seconds": previous.get("seconds"), "thresholds_seconds": entry.novelty["seconds"]}
    art.record_model(entry, artifacts_root)
    return entry.novelty


def model_novelty(predictor: Predictor, squares: dict, ws: Workspace, artifacts_root,
                  recorded: dict | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
    """One model: its pack (fitted on the training images' features, or the ``recorded`` check's), and its
    val and test scores."""
    name = predictor.name
    features = {part: pooled_features(predictor, squares[part]) for part in squares}
    if recorded is not None:
        try:
            typicality = Typicality.load(art.artifacts_dir(artifacts_root) / recorded["file"])
            val, test = (typicality.scores(features[p]) for p in ("val", "test"))
        except Exception as e:  # missing, truncated (BadZipFile), an array short (KeyError), another model's size
            raise SystemExit(f"{name}: its recorded novelty pack cannot be kept ({type(e).__name__}: {e}); fit it "
                             f"again ({NOVELTY_CMD} --models {name})") from e
        kept = ("file", "bytes", "fitted_on", "distance", "method")
        return {k: recorded[k] for k in kept if k in recorded}, val, test
    rel = f"models/{name}_novelty.npz"
    nbytes = Typicality.fit(features["train"], ws.labels("train").numpy(), len(ws.index.classes)).save(
        art.artifacts_dir(artifacts_root) / rel)
    typicality = Typicality.load(art.artifacts_dir(artifacts_root) / rel)  # the threshold of the stored pack
    where = f"the ONNX output '{FEATURES_OUTPUT}'" if predictor.entry.format == "onnx" else "the classifier's input"
    info = {"file": rel, "bytes": nbytes, "fitted_on": "train", "distance": DISTANCE,
            "method": f"minus the relative squared Mahalanobis distance of the pooled features ({where}) to the "
                      f"nearest training-class mean: the distance with the classes' shared covariance minus the "
                      f"distance to one Gaussian of all training features, each covariance + {RIDGE} I"}
    return info, typicality.scores(features["val"]), typicality.scores(features["test"])


def ensemble_novelty(predictor: Predictor, squares: dict, artifacts_root) -> tuple[dict, np.ndarray, np.ndarray]:
    """The ensemble: its members' packs, each standardised by its validation scores; their mean is its
    typicality. Each member's threshold is kept with its standardisation, so that a member re-fitted
    later turns the ensemble's check off until it is fitted again (``inference.novelty_check``)."""
    members = predictor.entry.members
    packs = member_packs(predictor.entry, SHIPPED_PROTOCOL, artifacts_root)
    missing = [m for m in members if packs[m] is None]
    if missing:
        raise SystemExit(f"fit the members' novelty checks first: {NOVELTY_CMD} --models {' '.join(missing)}")
    typicality = [Typicality.load(packs[m][0]) for m in members]
    val, test = (pooled_features(predictor, squares[part]) for part in ("val", "test"))
    stats = [standardisation(t.scores(f)) for t, f in zip(typicality, val)]
    check = EnsembleTypicality(tuple(typicality), tuple(c for c, _ in stats), tuple(s for _, s in stats))
    info = {"members": {m: {"centre": c, "scale": s, "member_threshold": packs[m][1]}
                        for m, (c, s) in zip(members, stats)},
            "fitted_on": "the members' packs (train); their standardisation on val", "distance": DISTANCE,
            "method": "the mean of the members' typicality, each standardised by its mean and standard deviation "
                      "over the validation flowers"}
    return info, check.scores(val), check.scores(test)


def with_their_ensembles(models: list[str], artifacts_root=None) -> list[str]:
    """``models`` in level order (members before their ensemble), with every ensemble whose recorded check
    depends on one of them added: it records its members' thresholds, so it is set again after them."""
    entries = art.model_entries(SHIPPED_PROTOCOL, artifacts_root)
    ensembles = [n for n, e in entries.items() if e.format == "ensemble" and n not in models and e.novelty
                 and set(e.members) & set(models)]
    order = list(catalog.NAMES)
    return sorted(dict.fromkeys([*models, *ensembles]), key=lambda m: order.index(m) if m in order else len(order))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=catalog.names(),
                   help="default: every shipped model; an ensemble whose members are named is set again after them")
    p.add_argument("--pass-rate", type=float, default=PASS_RATE, help="share of validation flowers that pass")
    p.add_argument("--thresholds-only", action="store_true",
                   help="keep the recorded packs, set the thresholds again from the validation images")
    p.add_argument("--data-root", default=None)
    p.add_argument("--artifacts", default=None)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    for name in with_their_ensembles(args.models, args.artifacts):
        info = fit_novelty(name, args.data_root, args.artifacts, args.pass_rate, args.threads, args.thresholds_only)
        print(f"[novelty] {name}: threshold {info['threshold']:.3f}, val pass {info['val_pass_rate']:.4f}, "
              f"test pass {info['test_pass_rate']:.4f}, {info.get('thresholds_seconds', info['seconds'])} s", flush=True)


if __name__ == "__main__":
    main()
