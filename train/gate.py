"""The flower gate (`python -m train.gate`): the ImageNet classifier of the EfficientNet-Lite0 wheel, exported to
INT8 ONNX, its flower classes from the stratified training images and its threshold from the validation images
(``flowers_core.training.fits.build_gate``). Writes models/flower_gate.onnx and the manifest's ``gate``."""
from __future__ import annotations

import argparse

import torch

from flowers_core.serve.preprocess import Preprocess
from flowers_core.shipped import manifest as art
from flowers_core.shipped.splits import SHIPPED_PROTOCOL
from flowers_core.training.data import decoded_images, load_index
from flowers_core.training.fits import build_gate, imagenet_class_names, imagenet_lite0
from flowers_core.training.recipes import GATE_INPUT_SIZE, GATE_MASS, GATE_PASS_RATE


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default=None, help="folder holding flowers-102/ (default: as train.levelN)")
    p.add_argument("--artifacts", default=None)
    p.add_argument("--mass", type=float, default=GATE_MASS)
    p.add_argument("--pass-rate", type=float, default=GATE_PASS_RATE)
    p.add_argument("--fp32", action="store_true", help="ship the fp32 ONNX file instead of INT8")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    index = load_index(args.data_root)
    split = art.read_split(SHIPPED_PROTOCOL, args.artifacts)
    preprocess = Preprocess(GATE_INPUT_SIZE)
    squares = decoded_images(index, preprocess.resize_size)
    train, val = (squares[torch.as_tensor(split[part]) - 1] for part in ("train", "val"))
    entry = build_gate(imagenet_lite0(), train, val, preprocess, args.artifacts, args.mass, args.pass_rate,
                       int8=not args.fp32, imagenet_names=imagenet_class_names())
    names = entry.details.get("class_names") or []
    print(f"[gate] {len(entry.classes)} flower classes ({', '.join(names[:8])}, …), threshold {entry.threshold:.4f}, "
          f"val pass rate {entry.val_pass_rate:.4f}, {entry.file_bytes / 1e6:.2f} MB, {entry.details['seconds']} s; "
          f"INT8 vs fp32 {entry.details.get('int8_vs_fp32_val')}")


if __name__ == "__main__":
    main()
