"""Build the app's example photos, test thumbnails and dataset labels (``--build``) and the reference
photos of every species (``--reference``) from the dataset and the saved split (``flowers_core.serve.gallery``), and
the maps of the app's model's test mistakes for the Confusions page (``--mistakes``, ``flowers_core.explain.mistake_maps``).
"""
from __future__ import annotations

import argparse
import json

from flowers_core.explain import mistake_maps
from flowers_core.serve.gallery import REFERENCE_PER_CLASS, REFERENCE_SIZE
from flowers_core.training.gallery import build_gallery, build_reference


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", action="store_true", help="build examples, thumbnails and dataset labels")
    p.add_argument("--reference", action="store_true",
                   help=f"build the reference photos ({REFERENCE_PER_CLASS} training images per species, "
                        f"{REFERENCE_SIZE} px) and record them in the manifest")
    p.add_argument("--mistakes", action="store_true",
                   help="build the Grad-CAM maps of the species each wrong test photo shows and the one the app's "
                        "model chose (Confusions' 'why A and not B'; maps only, no photos)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--artifacts", default=None)
    args = p.parse_args(argv)
    if not (args.build or args.reference or args.mistakes):
        p.print_help()
        return
    if args.build:
        print(build_gallery(args.data_root, args.artifacts))
    if args.reference:
        print(json.dumps(build_reference(args.data_root, args.artifacts).to_dict()))
    if args.mistakes:
        print(json.dumps(mistake_maps.build(args.data_root, args.artifacts)))


if __name__ == "__main__":
    main()
