"""Level 1: `python -m train.level1 --help`."""
from train.common import level_main

if __name__ == "__main__":
    level_main("level1")
