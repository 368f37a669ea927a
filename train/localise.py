"""Choose the localisation stage's rule on validation images, or score the test split once with it
(``flowers_core.training.localise_fit``, where the method is described).

    python -m train.localise                 # add the class maps to the INT8 file, choose the rule, record it
    python -m train.localise --score-test    # then score the test split once with the recorded rule
"""
from __future__ import annotations

import argparse

from flowers_core.shipped import catalog
from flowers_core.training.localise_fit import run, score_test


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default=None)
    p.add_argument("--artifacts", default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="the first N validation images only (a quick look)")
    p.add_argument("--score-test", action="store_true",
                   help="score the test split once with the recorded rule (and without it), for the shipped configuration")
    p.add_argument("--models", nargs="+", default=[catalog.PRODUCTION, catalog.TEACHER])
    args = p.parse_args(argv)
    if args.score_test:
        score_test(args.models, args.data_root, args.artifacts, args.threads)
    else:
        run(args.data_root, args.artifacts, args.threads, args.limit)


if __name__ == "__main__":
    main()
