"""Build the app's example photos, test thumbnails and dataset labels (``--build``) and the reference
photos of every species (``--reference``) from the dataset and the saved split (``flowers_core.serve.gallery``).
"""
from __future__ import annotations

import argparse
import json

from flowers_core.build.gallery import build_gallery, build_reference
from flowers_core.serve.gallery import REFERENCE_PER_CLASS, REFERENCE_SIZE


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", action="store_true", help="build examples, thumbnails and dataset labels")
    p.add_argument("--reference", action="store_true",
                   help=f"build the reference photos ({REFERENCE_PER_CLASS} training images per species, "
                        f"{REFERENCE_SIZE} px) and record them in the manifest")
    p.add_argument("--data-root", default=None)
    p.add_argument("--artifacts", default=None)
    args = p.parse_args(argv)
    if not (args.build or args.reference):
        p.print_help()
        return
    if args.build:
        print(build_gallery(args.data_root, args.artifacts))
    if args.reference:
        print(json.dumps(build_reference(args.data_root, args.artifacts).to_dict()))


if __name__ == "__main__":
    main()
