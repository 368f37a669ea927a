"""What each training command runs (``train/`` parses the flags into ``RunOptions`` and calls one of these):
the options every command shares, levels 1-3, the level-4 ensemble and their novelty checks (``train.all``);
level 5 is ``level5.run_level5``."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..serve.novelty import NOVELTY_CMD
from ..shipped import catalog, paths
from ..shipped.paths import artifacts_dir
from ..shipped.splits import PROTOCOLS, SHIPPED_PROTOCOL
from .fits import fit_novelty
from .levels import load_trained, prepare_workspace, run_ensemble, run_level
from .recipes import LEVELS


@dataclass(frozen=True)
class RunOptions:
    """The options every training command shares."""
    protocols: tuple[str, ...] = tuple(PROTOCOLS)
    data_root: str | None = None
    download: bool = False
    device: str = "cpu"  # cpu: frozen trunk + cached features; cuda: full fine-tuning
    epochs: int | None = None  # override the level's epoch count
    threads: int | None = None  # torch CPU threads (None: all cores)
    artifacts: str | None = None
    from_trained: Path | None = None  # take the weights trained elsewhere (e.g. a lent GPU) from this artifacts folder

    def apply_threads(self) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)


def take_log(name: str, protocol: str, opts: RunOptions) -> None:
    """Copy a --train-only run's training log into this artifacts folder (the report plots it)."""
    rel = Path(paths.log_file(name, protocol))
    if (opts.from_trained / rel).is_file():
        (artifacts_dir(opts.artifacts) / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(opts.from_trained / rel, artifacts_dir(opts.artifacts) / rel)


def check_level_options(opts: RunOptions, frozen_stages: int | None, photo_views: int | None) -> None:
    if (frozen_stages is not None or photo_views is not None) and opts.from_trained:
        raise ValueError("--frozen-stages and --photo-views choose how a level is trained; --from-trained takes a "
                         "level trained elsewhere")


def run_levels(names: list[str], opts: RunOptions, frozen_stages: int | None = None,
               photo_views: int | None = None) -> None:
    """Train (or take from ``opts.from_trained``), score and record each of levels ``names`` on each protocol."""
    check_level_options(opts, frozen_stages, photo_views)
    opts.apply_threads()
    for protocol in opts.protocols:
        ws = prepare_workspace(protocol, opts.data_root, opts.download, opts.artifacts)  # writes the split
        for name in names:
            trained = None
            if opts.from_trained:
                trained = load_trained(name, protocol, opts.from_trained)
                take_log(name, protocol, opts)
            spec = LEVELS[name] if photo_views is None else replace(LEVELS[name], photo_views=photo_views)
            run_level(spec, protocol, ws, "cpu" if trained else opts.device, opts.epochs, opts.artifacts,
                      frozen_stages=frozen_stages, trained=trained)


def train_all(opts: RunOptions) -> None:
    """Levels 1-3 on each protocol, then the level-4 ensemble; on the shipped protocol, their novelty checks
    (re-recorded entries lost theirs: members first, then the vote). A lent GPU's run gets them where it is
    scored, with ``from_trained``."""
    run_levels(catalog.names(levels=(1, 2, 3)), opts)
    for protocol in opts.protocols:
        run_ensemble(protocol, artifacts_root=opts.artifacts)
        if protocol == SHIPPED_PROTOCOL:
            names = catalog.names(levels=(1, 2, 3, 4))
            if opts.device == "cpu" or opts.from_trained:
                for name in names:
                    fit_novelty(name, opts.data_root, opts.artifacts)
            else:
                print(f"[train.all] novelty checks not fitted here: run `{NOVELTY_CMD} --models {' '.join(names)}` "
                      "where these models are scored (--from-trained)")
