"""Levels 1-4 in order (`python -m train.all --help`); level 5 follows with `--with-student`."""
import sys

from flowers_core import catalog
from flowers_core.data import SHIPPED_PROTOCOL
from flowers_core.novelty import NOVELTY_CMD
from flowers_core.pipeline import run_ensemble
from train import level5
from train.common import parser, protocols, run_levels
from train.novelty import fit_novelty


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = parser("Train levels 1-3 on each protocol, then score the level-4 ensemble; on the shipped protocol, "
               "fit their novelty checks (train.novelty).")
    p.add_argument("--with-student", action="store_true", help="also run level 5 (distillation + INT8)")
    args = p.parse_args(argv)
    run_levels(catalog.names(levels=(1, 2, 3)), args)
    for protocol in protocols(args):
        run_ensemble(protocol, artifacts_root=args.artifacts)
        # re-recorded entries lost their checks: members first, then the vote (a lent GPU's run gets them
        # where it is scored, with --from-trained)
        if protocol == SHIPPED_PROTOCOL:
            names = catalog.names(levels=(1, 2, 3, 4))
            if args.device == "cpu" or args.from_trained:
                for name in names:
                    fit_novelty(name, args.data_root, args.artifacts)
            else:
                print(f"[train.all] novelty checks not fitted here: run `{NOVELTY_CMD} --models {' '.join(names)}` "
                      "where these models are scored (--from-trained)")
    if args.with_student:
        level5.main([a for a in argv if a != "--with-student"])


if __name__ == "__main__":
    main()
