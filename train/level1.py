"""Level 1: `python -m train.level1 --help`."""
from flowers_core.pipeline import LEVELS
from train.common import level_parser, run_levels


def main(argv=None) -> None:
    args = level_parser(LEVELS["level1"].description).parse_args(argv)
    run_levels(["level1"], args, args.frozen_stages, args.photo_views)


if __name__ == "__main__":
    main()
