"""Flags shared by every ``train.levelN`` script."""
from __future__ import annotations

import argparse

import torch

from flowers_core.data import PROTOCOLS


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
    return p


def protocols(args) -> list[str]:
    return list(PROTOCOLS) if args.protocol == "both" else [args.protocol]


def setup(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)


def run_levels(names: list[str], args) -> None:
    from flowers_core.pipeline import LEVELS, Workspace, run_level

    setup(args)
    for protocol in protocols(args):
        ws = Workspace(protocol, args.data_root, args.download, args.artifacts)
        for name in names:
            run_level(LEVELS[name], protocol, ws, args.device, args.epochs, args.artifacts)
