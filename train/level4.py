"""Level 4: soft-voting ensemble of levels 1-3 (`python -m train.level4 --help`)."""
from flowers_core.training.levels import run_ensemble
from train.common import options, parser


def main(argv=None) -> None:
    args = parser("Level 4: soft voting (mean of probabilities) over levels 1-3, scored as one model "
                  "from the members' saved probabilities.").parse_args(argv)
    for protocol in options(args).protocols:
        run_ensemble(protocol, artifacts_root=args.artifacts)


if __name__ == "__main__":
    main()
