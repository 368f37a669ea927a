"""The shipped models, listed once: manifest name, level, title, the command that produces it,
how it runs and its name on the command line. Training, the CLI, the benchmarks, the reports and
the app read every list of models from here; a new shipped model is one more row (and the code
that trains it)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ShippedModel:
    name: str  # key in the manifest and in artifact file names
    level: int
    title: str  # the model's name as people read it in tables and pages (a species is a Prediction's label)
    produced_by: str  # the command that trains and records it
    runtime: str  # "torch" (a FlowerNet), "ensemble" (soft vote of torch members) or "onnx" (INT8, onnxruntime only)
    cli_name: str  # `python -m flowers_core.predict --model <cli_name>`
    int8_of: str | None = None  # the fp32 model this is the INT8 version of
    target_top1: float | None = None  # the issues' test top-1 target (80/10/10 split)
    reference_top1: float | None = None  # the ResNet-50 GPU report this project is measured against


MODELS: tuple[ShippedModel, ...] = (
    ShippedModel("level1", 1, "L1 baseline", "python -m train.level1", "torch", "level1",
                 target_top1=0.97, reference_top1=0.9731),
    ShippedModel("level2", 2, "L2 regularised", "python -m train.level2", "torch", "level2",
                 target_top1=0.97, reference_top1=0.9792),
    ShippedModel("level3", 3, "L3 attention", "python -m train.level3", "torch", "level3",
                 target_top1=0.97, reference_top1=0.9768),
    ShippedModel("ensemble", 4, "L4 ensemble", "python -m train.level4", "ensemble", "ensemble",
                 target_top1=0.985, reference_top1=0.9817),
    ShippedModel("student", 5, "L5 student (fp32)", "python -m train.level5", "torch", "student_fp32"),
    # the production model: what the app classifies with and the CLI's default
    ShippedModel("student_int8", 5, "L5 student (INT8)", "python -m train.level5", "onnx", "student", int8_of="student",
                 target_top1=0.98, reference_top1=0.978),
)
PRODUCTION = "student_int8"  # what the app classifies with and the CLI's default
TEACHER = "ensemble"  # soft vote of the level 1-3 models; the student is distilled from it
NAMES: tuple[str, ...] = tuple(m.name for m in MODELS)
_BY_NAME = {m.name: m for m in MODELS}


def get(name: str) -> ShippedModel | None:
    return _BY_NAME.get(name)


def names(runtimes: tuple[str, ...] | None = None, levels: tuple[int, ...] | None = None,
          highest_first: bool = False) -> list[str]:
    """Shipped model names, filtered by how they run and by level, in catalogue (level) order or reversed."""
    chosen = [m.name for m in MODELS if (runtimes is None or m.runtime in runtimes)
              and (levels is None or m.level in levels)]
    return chosen[::-1] if highest_first else chosen


def int8_twin(name: str) -> str | None:
    """The INT8 version of fp32 model ``name``, if one ships."""
    return next((m.name for m in MODELS if m.int8_of == name), None)


def fp32_twin(name: str) -> str:
    """The fp32 model an INT8 model was quantised from (``name`` itself for an fp32 model)."""
    return _BY_NAME[name].int8_of or name


def title(name: str) -> str:
    return _BY_NAME[name].title if name in _BY_NAME else name


def produced_by(name: str) -> str:
    return _BY_NAME[name].produced_by if name in _BY_NAME else "python -m train.all"
