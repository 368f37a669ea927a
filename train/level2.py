"""Level 2: `python -m train.level2 --help`."""
from train.common import level_main

if __name__ == "__main__":
    level_main("level2")
