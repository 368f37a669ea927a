"""Fit every shipped model's novelty check (``flowers_core.training.fits.fit_novelty``) and record it in its manifest entry.

    python -m train.novelty [--models level1 ... student_int8] [--pass-rate 0.95] [--thresholds-only]

``--thresholds-only`` keeps the recorded packs and sets the thresholds again from the validation images (e.g. after
a new pass rate). An ensemble's check records its members' thresholds, so it is set again after them whenever
``--models`` names one of them.
"""
from __future__ import annotations

import argparse

from flowers_core.serve.novelty import PASS_RATE
from flowers_core.shipped import catalog
from flowers_core.training.fits import fit_novelty, with_their_ensembles


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=catalog.names(),
                   help="default: every shipped model; an ensemble whose members are named is set again after them")
    p.add_argument("--pass-rate", type=float, default=PASS_RATE, help="share of validation flowers that pass")
    p.add_argument("--thresholds-only", action="store_true",
                   help="keep the recorded packs, set the thresholds again from the validation images")
    p.add_argument("--data-root", default=None)
    p.add_argument("--artifacts", default=None)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    for name in with_their_ensembles(args.models, args.artifacts):
        info = fit_novelty(name, args.data_root, args.artifacts, args.pass_rate, args.threads, args.thresholds_only)
        print(f"[novelty] {name}: threshold {info['threshold']:.3f}, val pass {info['val_pass_rate']:.4f}, "
              f"test pass {info['test_pass_rate']:.4f}, {info.get('thresholds_seconds', info['seconds'])} s", flush=True)


if __name__ == "__main__":
    main()
