"""ONNX twins of the torch models (`python -m train.onnx_twins`): levels 1-3 and the fp32 student exported to
ONNX (float16 weights, float32 arithmetic), each checked against its torch model on the test split and recorded in
the manifest (``onnx``). The app then runs Compare, Latency and the ensemble on onnxruntime, without torch."""
from __future__ import annotations

import argparse

import torch

from flowers_core.serve.preprocess import Preprocess
from flowers_core.shipped import catalog
from flowers_core.shipped import manifest as art
from flowers_core.shipped.splits import SHIPPED_PROTOCOL
from flowers_core.training.data import decoded_images, load_index
from flowers_core.training.onnx_twins import check, export_twin
from flowers_core.training.transforms import eval_view

TWINNED = tuple(catalog.names(runtimes=("torch",)))  # every single torch network; the ensemble votes over them


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(TWINNED), choices=TWINNED)
    p.add_argument("--data-root", default=None, help="folder holding flowers-102/ (default: as train.levelN)")
    p.add_argument("--artifacts", default=None)
    p.add_argument("--part", default="test", choices=("val", "test"), help="split the twins are checked on")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    index = load_index(args.data_root)
    ids = torch.as_tensor(art.read_split(SHIPPED_PROTOCOL, args.artifacts)[args.part]) - 1
    for name in args.models:
        pre = Preprocess.from_dict(art.model_entry(name, SHIPPED_PROTOCOL, args.artifacts).preprocess)
        squares = decoded_images(index, pre.resize_size)[ids]
        path = export_twin(name, SHIPPED_PROTOCOL, args.artifacts)
        batches = (eval_view(pre, squares[i:i + 64]) for i in range(0, len(squares), 64))
        record = check(name, batches, SHIPPED_PROTOCOL, args.artifacts, args.part)
        c = record["check"]
        print(f"[onnx_twins] {name}: {path.name} {record['file_bytes'] / 1e6:.1f} MB; on {c['n']} {args.part} images "
              f"top-1 agreement {c['top1_agreement']:.4f}, largest probability difference {c['max_prob_diff']:.2e}")


if __name__ == "__main__":
    main()
