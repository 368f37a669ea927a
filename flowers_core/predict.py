"""Classify images from the command line: one JSON object per line per image.

    python -m flowers_core.predict --model student photo1.jpg photo2.png

Unreadable files get a line with an ``error`` field; the others are still classified, and the exit
code is 1 if any file failed.
"""
from __future__ import annotations

import argparse
import json
import sys

from .open_model import open_predictor
from .serve.decode import ImageError, load_image
from .shipped import catalog
from .shipped.catalog import MODELS
from .shipped.paths import ArtifactMissing
from .shipped.splits import PROTOCOLS, SHIPPED_PROTOCOL

# CLI names -> manifest names ("student" is the production INT8 model, "student_fp32" its float twin)
MODEL_ALIASES = {m.cli_name: m.name for m in MODELS}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, WebP, HEIC, ...)")
    p.add_argument("--model", choices=sorted(MODEL_ALIASES), default=catalog.get(catalog.PRODUCTION).cli_name)
    p.add_argument("--protocol", choices=PROTOCOLS, default=SHIPPED_PROTOCOL)
    p.add_argument("--artifacts", default=None, help="artifacts folder (default: artifacts/)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--localise", action=argparse.BooleanOptionalAction, default=None,
                   help="also classify a crop around the flower and combine the two views (flowers_core.serve.localise); "
                   "default: as the manifest ships it. The answer's 'localisation' gives the crop box")
    args = p.parse_args(argv)
    try:
        predictor = open_predictor(MODEL_ALIASES[args.model], args.protocol, args.artifacts, threads=args.threads,
                              localise=args.localise)
    except ArtifactMissing as e:
        print(json.dumps({"error": str(e)}))
        return 2
    failed = 0
    for path in args.images:
        notes: list[str] = []
        try:
            result = {"path": path, **predictor.predict(load_image(path, notes)).to_json()}
            if notes:
                result["notes"] = notes
        except ImageError as e:
            failed += 1
            result = {"path": path, "error": str(e)}
        print(json.dumps(result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
