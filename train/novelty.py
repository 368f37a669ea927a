"""The production model's novelty check (``flowers_core.novelty``): its ONNX file gets the pooled
features as a second output, a Mahalanobis typicality is fitted on the training images' features,
and its threshold is set on validation (99% of the validation flowers pass); the pack and the
threshold go to the manifest entry's ``novelty`` section.

    python -m train.novelty [--pass-rate 0.99]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from flowers_core import artifacts as art
from flowers_core import catalog
from flowers_core.data import SHIPPED_PROTOCOL
from flowers_core.evaluate import pass_threshold
from flowers_core.novelty import FEATURES_OUTPUT, NOVELTY_CMD, RIDGE, Typicality
from flowers_core.pipeline import Workspace
from flowers_core.preprocess import Preprocess
from flowers_core.quantize import add_feature_output
from flowers_core.runtime import OnnxSession

PASS_RATE = 0.99  # as the flower gate: 1 in 100 validation flowers is called "not sure" by this check alone
BATCH = 64


def onnx_features(session: OnnxSession, squares, pre: Preprocess) -> np.ndarray:
    """The pooled features of decoded squares through the ONNX file, in the eval view."""
    return np.concatenate([session.outputs(pre.eval_view(squares[i: i + BATCH]).numpy(), [FEATURES_OUTPUT])[FEATURES_OUTPUT]
                           for i in range(0, len(squares), BATCH)])


def fit_novelty(name: str = catalog.PRODUCTION, data_root=None, artifacts_root=None, pass_rate: float = PASS_RATE,
                threads: int | None = None) -> dict:
    t0 = time.perf_counter()
    entry = art.model_entry(name, SHIPPED_PROTOCOL, artifacts_root)
    if entry.format != "onnx":
        raise SystemExit(f"{name} is not an ONNX model: the novelty check reads the shipped file's features")
    path = art.model_file(entry, artifacts_root)
    ws = Workspace(SHIPPED_PROTOCOL, data_root, artifacts_root)
    pre = Preprocess.from_dict(entry.preprocess)
    val_squares = ws.squares(pre.resize_size, "val")
    add_feature_output(path, pre.eval_view(val_squares[:BATCH]).numpy())  # a file made before the check existed
    session = OnnxSession(path, threads)
    train_features, val_features, test_features = (onnx_features(session, ws.squares(pre.resize_size, part), pre)
                                                    for part in ("train", "val", "test"))
    rel = f"models/{name}_novelty.npz"
    nbytes = Typicality.fit(train_features, ws.labels("train").numpy(), len(ws.index.classes)).save(
        art.artifacts_dir(artifacts_root) / rel)
    typicality = Typicality.load(art.artifacts_dir(artifacts_root) / rel)  # the threshold of the stored pack
    val_scores, test_scores = typicality.scores(val_features), typicality.scores(test_features)
    threshold = pass_threshold(val_scores, pass_rate)
    entry.details["file_bytes"] = path.stat().st_size  # the file grew by the features output
    entry.novelty = {
        "file": rel, "bytes": nbytes, "threshold": threshold, "target_val_pass_rate": pass_rate,
        "val_pass_rate": float((val_scores >= threshold).mean()),
        "test_pass_rate": float((test_scores >= threshold).mean()),
        "method": "minus the squared Mahalanobis distance of the pooled features (the ONNX output "
                  f"'{FEATURES_OUTPUT}') to the nearest training-class mean, shared covariance + {RIDGE} I",
        "fitted_on": "train", "threshold_on": "val", "command": NOVELTY_CMD,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    art.record_model(entry, artifacts_root)
    return entry.novelty


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=catalog.PRODUCTION)
    p.add_argument("--pass-rate", type=float, default=PASS_RATE, help="share of validation flowers that pass")
    p.add_argument("--data-root", default=None)
    p.add_argument("--artifacts", default=None)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    info = fit_novelty(args.model, args.data_root, args.artifacts, args.pass_rate, args.threads)
    print(f"[novelty] {args.model}: threshold {info['threshold']:.1f}, val pass {info['val_pass_rate']:.4f}, "
          f"test pass {info['test_pass_rate']:.4f}, {info['bytes'] / 1e6:.2f} MB, {info['seconds']} s")


if __name__ == "__main__":
    main()
