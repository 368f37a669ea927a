"""Shared by every results module: model names as people read them, which models are recorded, the number formats,
and a section's blocks: a section is a function of the artifacts folder returning its blocks, paragraphs of
Markdown (``str``), tables (``Table``) and images (``Figure``), which RESULTS.md writes as Markdown (``to_markdown``) and the Report page
draws with Streamlit (``app.widgets.show_blocks``)."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..shipped import catalog
from ..shipped import manifest as art
from ..shipped.paths import REPO_ROOT
from ..shipped.splits import PROTOCOLS, SHIPPED_PROTOCOL

L1, L2 = (catalog.names(levels=(level,))[0] for level in (1, 2))  # the ablation: regularisation against the baseline


def models(protocol: str = SHIPPED_PROTOCOL, root=None) -> list[str]:
    """Model names recorded in the manifest for a protocol, in level order."""
    present = art.model_entries(protocol, root)
    ordered = [m for m in catalog.NAMES if m in present]
    return ordered + sorted(set(present) - set(ordered))


def has_weights(name: str, root=None) -> bool:
    """Can this model be loaded to classify new images (shipped protocol, every file it loads present)?"""
    try:
        files = art.model_files(name, SHIPPED_PROTOCOL, root)
    except art.ArtifactMissing:  # not recorded (or an ensemble member not recorded)
        return False
    return bool(files) and all((art.artifacts_dir(root) / f).is_file() for f in files)


def _read_json(rel: str, root=None, command: str = "python -m train.all"):
    path = art.artifacts_dir(root) / rel
    if not path.is_file():
        raise art.ArtifactMissing(f"{path} is missing; produce it with `{command}`.")
    return json.loads(path.read_text())


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


OTHER_PROTOCOL = next(p for p in PROTOCOLS if p != SHIPPED_PROTOCOL)  # official: metrics only, no shipped weights


def pct(v) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}%"


def md(df: pd.DataFrame, *, as_written: bool = False) -> str:
    """A markdown table; ``as_written`` keeps pre-formatted strings as they are ("0.010" stays "0.010")."""
    return df.to_markdown(index=False, floatfmt=".4g", disable_numparse=as_written)


@dataclass(frozen=True)
class Table:
    """A section's table: RESULTS.md writes it as Markdown (``md``), the Report page shows it as a table."""

    frame: pd.DataFrame
    as_written: bool = False  # keep pre-formatted strings as they are (see ``md``)

    def markdown(self) -> str:
        return md(self.frame, as_written=self.as_written)


@dataclass(frozen=True)
class Figure:
    """A section's image (a plot a benchmark wrote): RESULTS.md links it, the Report page shows it."""

    file: Path
    caption: str

    def markdown(self) -> str:
        return f"![{self.caption}]({Path(os.path.relpath(self.file, REPO_ROOT)).as_posix()})"  # RESULTS.md is at the root


Block = str | Table | Figure


def to_markdown(blocks: list[Block]) -> list[str]:
    """A section's blocks as the lines of RESULTS.md."""
    return [b if isinstance(b, str) else b.markdown() for b in blocks]
