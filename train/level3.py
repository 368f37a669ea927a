"""Level 3: `python -m train.level3 --help`."""
from train.common import level_main

if __name__ == "__main__":
    level_main("level3")
