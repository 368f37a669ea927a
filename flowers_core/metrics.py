"""Metrics and probabilities written once (numpy only): softmax, entropy, accuracy, top-5, macro-F1, per-class
accuracy, confusion, calibration, selective prediction (coverage–accuracy) and thresholds set on validation.
Fitting a temperature needs torch and lives in ``flowers_core.training.calibration``."""
from __future__ import annotations

import numpy as np


def entropy(probs: np.ndarray) -> np.ndarray:
    """Softmax entropy in nats, per row: 0 = certain, log(102) ≈ 4.62 = uniform."""
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(-1)


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> list[dict]:
    """Top-1 confidence in ``bins`` equal-width bins: per non-empty bin its centre, share of the images,
    mean confidence and accuracy (the reliability diagram; ECE is their weighted gap)."""
    conf, pred = probs.max(-1), probs.argmax(-1)
    correct = (pred == labels).astype(np.float64)
    edges = np.linspace(0, 1, bins + 1)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            rows.append({"bin": (lo + hi) / 2, "share": m.mean(), "count": int(m.sum()),
                         "confidence": float(conf[m].mean()), "accuracy": float(correct[m].mean())})
    return rows


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    return float(sum(r["share"] * abs(r["accuracy"] - r["confidence"]) for r in reliability_bins(probs, labels, bins)))


def classification_metrics(probs: np.ndarray, labels: np.ndarray, num_classes: int = 102) -> dict:
    from sklearn.metrics import confusion_matrix, f1_score  # ~0.5 s to import: not on the app's start-up path

    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    pred = probs.argmax(-1)
    top5 = np.argsort(-probs, axis=1)[:, :5]
    cm = confusion_matrix(labels, pred, labels=np.arange(num_classes))
    support = cm.sum(1)
    per_class = np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)
    nll = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1)).mean()
    return {
        "n": int(len(labels)),
        "top1": float((pred == labels).mean()),
        "top5": float((top5 == labels[:, None]).any(1).mean()),
        "macro_f1": float(f1_score(labels, pred, average="macro", labels=np.arange(num_classes), zero_division=0)),
        "ece": expected_calibration_error(probs, labels),
        "nll": float(nll),
        "mean_entropy": float(entropy(probs).mean()),
        "per_class_acc": [None if np.isnan(v) else float(v) for v in per_class],
        "confusion": cm.tolist(),
    }


def summary(metrics: dict) -> dict:
    """The scalar metrics only (for tables and the manifest)."""
    return {k: v for k, v in metrics.items() if not isinstance(v, list)}


def coverage_accuracy(probs: np.ndarray, labels: np.ndarray, points: int = 50) -> list[dict]:
    """Selective prediction: keep the predictions with entropy below a threshold."""
    ent = entropy(probs)
    correct = probs.argmax(-1) == labels
    order = np.argsort(ent)
    curve = []
    for k in np.unique(np.linspace(1, len(order), points).astype(int)):
        keep = order[:k]
        curve.append({"threshold": float(ent[order[k - 1]]), "coverage": float(k / len(order)),
                      "accuracy": float(correct[keep].mean())})
    return curve


def pass_threshold(scores: np.ndarray, pass_rate: float) -> float:
    """The score that ``pass_rate`` of ``scores`` (validation flowers) reach: their (1 − rate) quantile.
    How the flower gate and the novelty check set their thresholds."""
    return float(np.quantile(np.asarray(scores, dtype=np.float64), 1.0 - pass_rate, method="lower"))


def entropy_threshold(probs: np.ndarray, labels: np.ndarray, target_accuracy: float = 0.95) -> float:
    """Largest entropy threshold whose accepted predictions reach ``target_accuracy`` (on validation)."""
    ent = entropy(probs)
    correct = (probs.argmax(-1) == labels)[np.argsort(ent)]
    sorted_ent = np.sort(ent)
    running = np.cumsum(correct) / np.arange(1, len(correct) + 1)
    ok = np.nonzero(running >= target_accuracy)[0]
    return float(sorted_ent[ok[-1]]) if len(ok) else 0.0  # unreachable: reject everything


def error_correlation(pred_a: np.ndarray, pred_b: np.ndarray, labels: np.ndarray) -> float:
    """Pearson correlation of the two models' error indicators (1 = they fail on the same images)."""
    ea, eb = (pred_a != labels).astype(float), (pred_b != labels).astype(float)
    if ea.std() == 0 or eb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ea, eb)[0, 1])


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def logits_from_saved(probs: np.ndarray) -> np.ndarray:
    """Saved (fp16) probabilities back to logits, up to a per-row constant that softmax ignores."""
    return np.log(np.clip(probs, 1e-8, None))


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a proportion ``successes`` of ``n``: unlike the plain
    normal interval it stays within 0..1 and is not empty at 0 or n of n (9 of 9 is 70% to 100%)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)
    hi = 1.0 if successes >= n else min(1.0, centre + half)
    return float(lo), float(hi)
