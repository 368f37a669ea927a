"""Carry the decoded training squares to another machine (a lent GPU) in small files.

    python -m tools.squares_pack pack --protocol stratified --parts train val --out .carry/squares --chunks 3
    python -m tools.squares_pack unpack .carry/squares --data-root .carry/data     # on the other machine

``pack`` encodes each square of the chosen split parts as WebP (quality 85: ~13 KB against ~265 KB
raw) into ``--chunks`` files and copies the dataset's small label files beside them; ``unpack``
decodes them into the decoded-image cache that ``data.decoded_images`` reads, so training there
runs unchanged. Images of other parts stay black there: only train with such a cache.
"""
from __future__ import annotations

import argparse
import io
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from flowers_core.shipped.manifest import read_split
from flowers_core.shipped.splits import SHIPPED_PROTOCOL
from flowers_core.training.data import decoded_cache_path, decoded_images, load_index

LABEL_FILES = ("imagelabels.mat", "setid.mat", "cat_to_name.json")


def pack(protocol: str, parts: list[str], out: Path, chunks: int, size: int, quality: int = 85,
         data_root=None) -> None:
    index = load_index(data_root)
    split = read_split(protocol)
    ids = np.array(sorted({i for p in parts for i in split[p]}), dtype=np.int32)
    squares = decoded_images(index, size)
    out.mkdir(parents=True, exist_ok=True)
    for c, chunk in enumerate(np.array_split(ids, chunks)):
        blobs = []
        for image_id in chunk:
            buf = io.BytesIO()
            Image.fromarray(squares[image_id - 1].permute(1, 2, 0).numpy()).save(buf, "WEBP", quality=quality)
            blobs.append(np.frombuffer(buf.getvalue(), dtype=np.uint8))
        np.savez(out / f"squares_{size}_{c}.npz", ids=chunk, lengths=np.array([len(b) for b in blobs]),
                 data=np.concatenate(blobs))
        print(f"chunk {c}: {len(chunk)} images, {sum(len(b) for b in blobs) / 2**20:.1f} MB", flush=True)
    labels = out / "flowers-102"
    labels.mkdir(exist_ok=True)
    for name in LABEL_FILES:
        shutil.copy(index.base / name, labels / name)


def unpack(folders: list[Path], data_root: Path) -> None:
    files = sorted(f for folder in folders for f in folder.glob("squares_*.npz"))
    for folder in folders:
        if (folder / "flowers-102").is_dir():
            shutil.copytree(folder / "flowers-102", data_root / "flowers-102", dirs_exist_ok=True)
    index = load_index(data_root)
    size = int(files[0].name.split("_")[1])
    out = np.zeros((len(index.image_ids), 3, size, size), dtype=np.uint8)
    n = 0
    for f in files:
        with np.load(f) as z:
            starts = np.concatenate([[0], np.cumsum(z["lengths"])])
            for image_id, a, b in zip(z["ids"], starts[:-1], starts[1:]):
                out[image_id - 1] = np.asarray(Image.open(io.BytesIO(z["data"][a:b].tobytes())).convert("RGB")).transpose(2, 0, 1)
                n += 1
    path = decoded_cache_path(index, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    print(f"{n} of {len(out)} squares decoded into {path}", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack")
    a.add_argument("--protocol", default=SHIPPED_PROTOCOL)
    a.add_argument("--parts", nargs="+", default=["train", "val"])
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--chunks", type=int, default=3)
    a.add_argument("--size", type=int, default=297, help="square side (the models' resize size)")
    a.add_argument("--data-root", default=None)
    b = sub.add_parser("unpack")
    b.add_argument("folders", type=Path, nargs="+")
    b.add_argument("--data-root", type=Path, required=True)
    args = p.parse_args(argv)
    if args.cmd == "pack":
        pack(args.protocol, args.parts, args.out, args.chunks, args.size, data_root=args.data_root)
    else:
        unpack(args.folders, args.data_root)


if __name__ == "__main__":
    main()
