"""The two split protocols and how a split is stored (image ids per part, JSON): stratified 80/10/10, seeded,
for the shipped models, and the official ``setid.mat`` split. Making a split needs the dataset
(``flowers_core.training.data.make_split``)."""
from __future__ import annotations

import json
from pathlib import Path

NUM_CLASSES = 102
PROTOCOLS = ("stratified", "official")
SHIPPED_PROTOCOL = "stratified"  # weights are shipped for this protocol; the other keeps metrics + probabilities
SPLIT_SEED = 0


def save_split(split: dict[str, list[int]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(split))


def load_split(path: Path) -> dict[str, list[int]]:
    return {k: [int(i) for i in v] for k, v in json.loads(Path(path).read_text()).items()}
