"""Level 2: `python -m train.level2 --help`."""
from flowers_core.pipeline import LEVELS
from train.common import parser, run_levels


def main(argv=None) -> None:
    args = parser(LEVELS["level2"].description).parse_args(argv)
    run_levels(["level2"], args)


if __name__ == "__main__":
    main()
