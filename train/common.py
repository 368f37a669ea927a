"""Flags shared by every ``train.levelN`` script."""
from __future__ import annotations

import argparse
import shutil
from dataclasses import replace
from pathlib import Path

import torch

from flowers_core.artifacts import artifacts_dir
from flowers_core.data import PROTOCOLS
from flowers_core.pipeline import LEVELS, load_trained, prepare_workspace, run_level


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


def level_parser(description: str) -> argparse.ArgumentParser:
    """``parser`` and the depth of the frozen trunk, for the scripts that train one of levels 1-3."""
    p = parser(description)
    p.add_argument("--frozen-stages", type=int, default=None, metavar="N",
                   help="keep the first N stages frozen (on cpu, cached) and train the rest (default: 7 of the 9 "
                   "EfficientNet-Lite stages on cpu, 0 with --device cuda; a smaller N fine-tunes more of the network)")
    p.add_argument("--photo-views", type=int, default=None, metavar="N",
                   help="on cpu, also train on N cached views of the `photo` augmentation preset (people's photos: "
                   "crops of 8-100%%, the flower small in a wide frame, colour casts, blur, noise, JPEG) of every "
                   "training image (default: the level's recipe, none)")
    return p


def protocols(args) -> list[str]:
    return list(PROTOCOLS) if args.protocol == "both" else [args.protocol]


def setup(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)


def take_log(name: str, protocol: str, args) -> None:
    """Copy a --train-only run's training log into this artifacts folder (the report plots it)."""
    rel = Path("logs") / f"{name}_{protocol}.jsonl"
    if (args.from_trained / rel).is_file():
        (artifacts_dir(args.artifacts) / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(args.from_trained / rel, artifacts_dir(args.artifacts) / rel)


def run_levels(names: list[str], args, frozen_stages: int | None = None, photo_views: int | None = None) -> None:
    if (frozen_stages is not None or photo_views is not None) and args.from_trained:
        raise SystemExit("--frozen-stages and --photo-views choose how a level is trained; --from-trained takes a "
                         "level trained elsewhere")
    setup(args)
    for protocol in protocols(args):
        ws = prepare_workspace(protocol, args.data_root, args.download, args.artifacts)  # writes the split
        for name in names:
            trained = None
            if args.from_trained:
                trained = load_trained(name, protocol, args.from_trained)
                take_log(name, protocol, args)
            spec = LEVELS[name] if photo_views is None else replace(LEVELS[name], photo_views=photo_views)
            run_level(spec, protocol, ws, "cpu" if trained else args.device, args.epochs, args.artifacts,
                      frozen_stages=frozen_stages, trained=trained)
