"""Peak memory of decoding near-limit uploads at once, the way several visitors would.

    python -m tools.decode_memory                 # 4 near-limit files, 4 threads, bounded vs unbounded
    python -m tools.decode_memory --files 8 --json out.json
    python -m tools.decode_memory --each          # also each file alone, and an 8000×8000 PNG and a 192 MP JPEG

Makes (once, under --work) lossless files just under the limits of ``flowers_core.serve.predictor``
(MAX_PIXELS pixels, or the format's FORMAT_MAX_PIXELS; ~90% of MAX_BYTES bytes): an RGB PNG, an RGBA
PNG, a 16-bit greyscale PNG and a lossless WebP. Each mode runs in a fresh process that loads the files' bytes, then decodes all of them
at the same time in threads with ``load_image`` and the classifiers' resize (``square_resize``),
sampling the process's resident memory every 2 ms; it reports the peak above the level before the
decodes started. ``unbounded`` switches the large-image guard off (LARGE_PIXELS = infinity: no lock,
no early reduction), which is the code before the guard.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

from flowers_core.serve import decode
from flowers_core.serve.preprocess import square_resize

KINDS = ("rgb.png", "rgba.png", "grey16.png", "rgb.webp")
# photo-sized files measured alone (--each): an 8000×8000 PNG (decoded at full size, then reduced) and a
# 192-megapixel JPEG (decoded reduced, ``draft``), the sizes issue 26 asks to be answered, not refused
PHOTO_SIZES = {"8000x8000_rgb.png": (8000, 8000), "16000x12000_rgb.jpg": (16000, 12000)}


def make_photo_sizes(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, (w, h) in PHOTO_SIZES.items():
        path = folder / f"photo_{kind}"
        paths.append(path)
        if not path.is_file():
            y, x = np.mgrid[0:h, 0:w]
            rgb = np.stack([(x // 40 % 256), (y // 30 % 256), ((x + y) // 50 % 256)], -1).astype(np.uint8)
            Image.fromarray(rgb, "RGB").save(path, *(("PNG",) if kind.endswith(".png") else ("JPEG",)),
                                             **({"compress_level": 1} if kind.endswith(".png") else {"quality": 85}))
            print(f"made {path.name}: {w}×{h} = {w * h / 1e6:.0f} MP, {path.stat().st_size:,} bytes", flush=True)
    return paths


def make_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in KINDS:
        limit = decode.FORMAT_MAX_PIXELS.get("WEBP" if kind.endswith(".webp") else "PNG", decode.MAX_PIXELS)
        side_h = int((limit * 3 / 4) ** 0.5)  # 4:3, just under the format's pixel limit
        side_w = limit // side_h - 8
        path = folder / f"near_limit_{side_w}x{side_h}_{kind}"
        paths.append(path)
        if path.is_file():
            continue
        y, x = np.mgrid[0:side_h, 0:side_w]
        base = ((x // 7) ^ (y // 5)).astype(np.uint8)  # compresses well but is not flat
        # incompressible noise in the top rows, so the file is also near the byte limit (~90% of it)
        noise_rows = int(0.9 * decode.MAX_BYTES / (side_w * {"grey16.png": 2, "rgba.png": 3.6, "rgb.webp": 5.6}.get(kind, 3)))
        rng = np.random.default_rng(0)
        if kind == "grey16.png":
            arr = base.astype(np.uint16) * 257
            arr[:noise_rows] = rng.integers(0, 65536, (noise_rows, side_w), dtype=np.uint16)
            img = Image.fromarray(arr)
        else:
            rgb = np.stack([base, base * np.uint8(3), (x // 31 % 256).astype(np.uint8)], -1)
            rgb[:noise_rows] = rng.integers(0, 256, (noise_rows, side_w, 3), dtype=np.uint8)
            img = Image.fromarray(rgb, "RGB")
            if kind == "rgba.png":
                img.putalpha(Image.fromarray(((y // 97) % 256).astype(np.uint8), "L"))
        if kind.endswith(".webp"):
            img.save(path, "WEBP", lossless=True, quality=0, method=0)
        else:
            img.save(path, "PNG", compress_level=6)
        size = path.stat().st_size
        print(f"made {path.name}: {img.width}×{img.height} = {img.width * img.height / 1e6:.1f} MP, "
              f"{size:,} bytes", flush=True)
        if size > decode.MAX_BYTES:
            raise SystemExit(f"{path} is over the byte limit; change the pattern")
    return paths


def measure(paths: list[Path], copies: int, unbounded: bool) -> dict:
    """In this process: decode ``copies`` files at once (cycling over ``paths``); peak RSS above the start."""
    if unbounded:
        decode.LARGE_PIXELS = math.inf
    data = [paths[i % len(paths)].read_bytes() for i in range(copies)]
    proc = psutil.Process()
    start_rss = proc.memory_info().rss
    peak = [start_rss]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.002)

    results: list = [None] * copies

    def work(i):
        t = time.perf_counter()
        notes: list[str] = []
        img = decode.load_image(data[i], notes)
        square_resize(img, 288)
        results[i] = {"file": paths[i % len(paths)].name, "decoded": list(img.size),
                      "seconds": round(time.perf_counter() - t, 2), "notes": notes}

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(copies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    return {"mode": "unbounded" if unbounded else "bounded", "files": copies,
            "peak_above_start_mb": round((peak[0] - start_rss) / 2**20, 1),
            "start_rss_mb": round(start_rss / 2**20, 1), "wall_s": round(wall, 2), "per_file": results}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/flowers_decode_memory", help="where the test files are made (once)")
    p.add_argument("--files", type=int, default=4, help="how many files are decoded at once")
    p.add_argument("--mode", choices=["both", "bounded", "unbounded"], default="both")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--each", action="store_true", help="also decode each file alone (bounded): its own peak")
    p.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_only", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    paths = make_files(Path(args.work))
    photos = make_photo_sizes(Path(args.work)) if args.each or args._only else []
    if args._child:
        chosen = [q for q in paths + photos if q.name == args._only] if args._only else paths
        print(json.dumps(measure(chosen, args.files, args.mode == "unbounded")))
        return

    def child(mode, files, only=None):
        cmd = [sys.executable, "-m", "tools.decode_memory", "--_child", "--mode", mode, "--files", str(files),
               "--work", args.work] + (["--_only", only] if only else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    rows = []
    for mode in (["bounded", "unbounded"] if args.mode == "both" else [args.mode]):
        row = child(mode, args.files)
        rows.append(row)
        print(f"{mode:9s}: {row['files']} files at once, peak +{row['peak_above_start_mb']} MB above "
              f"{row['start_rss_mb']} MB, {row['wall_s']} s; decoded sizes "
              f"{[tuple(r['decoded']) for r in row['per_file']]}", flush=True)
    if args.each:
        for path in paths + photos:
            row = child("bounded", 1, path.name)
            rows.append(row)
            print(f"alone    : {path.name} ({path.stat().st_size:,} bytes) peak +{row['peak_above_start_mb']} MB, "
                  f"{row['wall_s']} s", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
