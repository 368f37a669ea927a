"""The shipped models, listed once: manifest name, level, label, the command that produces it,
how it runs and its name on the command line. Training, the CLI, the benchmarks, the reports and
the app read every list of models from here; a new shipped model is one more row (and the code
that trains it)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ShippedModel:
    name: str  # key in the manifest and in artifact file names
    level: int
    label: str  # what people read in tables and pages
    produced_by: str  # the command that trains and records it
    runtime: str  # "torch" (a FlowerNet), "ensemble" (soft vote of torch members) or "onnx" (INT8, onnxruntime only)
    cli_name: str  # `python -m flowers_core.predict --model <cli_name>`


MODELS: tuple[ShippedModel, ...] = (
    ShippedModel("level1", 1, "L1 baseline", "python -m train.level1", "torch", "level1"),
    ShippedModel("level2", 2, "L2 regularised", "python -m train.level2", "torch", "level2"),
    ShippedModel("level3", 3, "L3 attention", "python -m train.level3", "torch", "level3"),
    ShippedModel("ensemble", 4, "L4 ensemble", "python -m train.level4", "ensemble", "ensemble"),
    ShippedModel("student", 5, "L5 student (fp32)", "python -m train.level5", "torch", "student_fp32"),
    # the production model: what the app classifies with and the CLI's default
    ShippedModel("student_int8", 5, "L5 student (INT8)", "python -m train.level5", "onnx", "student"),
)
NAMES: tuple[str, ...] = tuple(m.name for m in MODELS)
_BY_NAME = {m.name: m for m in MODELS}


def get(name: str) -> ShippedModel | None:
    return _BY_NAME.get(name)


def label(name: str) -> str:
    return _BY_NAME[name].label if name in _BY_NAME else name


def produced_by(name: str) -> str:
    return _BY_NAME[name].produced_by if name in _BY_NAME else "python -m train.all"
