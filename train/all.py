"""Levels 1-4 in order (`python -m train.all --help`); level 5 follows with `--with-student`."""
from flowers_core.training.level5 import run_level5
from flowers_core.training.runs import train_all
from train.common import options, parser


def main(argv=None) -> None:
    p = parser("Train levels 1-3 on each protocol, then score the level-4 ensemble; on the shipped protocol, "
               "fit their novelty checks (train.novelty).")
    p.add_argument("--with-student", action="store_true", help="also run level 5 (distillation + INT8)")
    args = p.parse_args(argv)
    opts = options(args)
    train_all(opts)
    if args.with_student:
        run_level5(opts)


if __name__ == "__main__":
    main()
