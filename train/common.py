"""Flags shared by every ``train.levelN`` script, parsed into ``flowers_core.training.runs.RunOptions``."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from flowers_core.shipped.splits import PROTOCOLS
from flowers_core.training.recipes import LEVELS
from flowers_core.training.runs import RunOptions, check_level_options, run_levels


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data-root", default=None, help="folder holding flowers-102/ (default: ../shared/data "
                   "when present, else data/; or $FLOWERS_DATA_ROOT)")
    p.add_argument("--download", action="store_true", help="download Flowers-102 first (needs internet)")
    p.add_argument("--protocol", choices=[*PROTOCOLS, "both"], default="both",
                   help="split protocol: stratified 80/10/10, official setid.mat, or both (default)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu: frozen trunk + cached features; cuda: full fine-tuning")
    p.add_argument("--epochs", type=int, default=None, help="override the level's epoch count")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    p.add_argument("--artifacts", default=None, help="artifacts folder (default: artifacts/)")
    p.add_argument("--from-trained", type=Path, default=None, metavar="DIR",
                   help="do not train: take the trained weights and training records from the artifacts folder "
                   "DIR of a run elsewhere (e.g. a lent GPU) and score and record them here")
    return p


def options(args: argparse.Namespace) -> RunOptions:
    return RunOptions(protocols=tuple(PROTOCOLS) if args.protocol == "both" else (args.protocol,),
                      data_root=args.data_root, download=args.download, device=args.device, epochs=args.epochs,
                      threads=args.threads, artifacts=args.artifacts, from_trained=args.from_trained)


def level_main(name: str, argv=None) -> None:
    """``python -m train.levelN`` for one of levels 1-3: the shared flags, the depth of the frozen trunk and the
    photo views."""
    p = parser(LEVELS[name].description)
    p.add_argument("--frozen-stages", type=int, default=None, metavar="N",
                   help="keep the first N stages frozen (on cpu, cached) and train the rest (default: 7 of the 9 "
                   "EfficientNet-Lite stages on cpu, 0 with --device cuda; a smaller N fine-tunes more of the network)")
    p.add_argument("--photo-views", type=int, default=None, metavar="N",
                   help="on cpu, also train on N cached views of the `photo` augmentation preset (people's photos: "
                   "crops of 8-100%%, the flower small in a wide frame, colour casts, blur, noise, JPEG) of every "
                   "training image (default: the level's recipe, none)")
    args = p.parse_args(argv)
    opts = options(args)
    try:
        check_level_options(opts, args.frozen_stages, args.photo_views)
    except ValueError as e:
        p.error(str(e))
    run_levels([name], opts, args.frozen_stages, args.photo_views)
