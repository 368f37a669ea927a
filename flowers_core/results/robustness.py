"""The test split under photo-like shifts (``bench.robustness``): its table and section."""
from __future__ import annotations

import pandas as pd

from ..shipped import catalog, paths
from ..shipped import manifest as art
from .common import Block, Table, pct

WHOLE_PHOTO_ONLY = ", whole photo only"  # robustness_table's suffix for a localising model's answers without the stage


def robustness_table(root=None) -> tuple[pd.DataFrame, dict]:
    """Per photo-like shift of the test images: each model's top-1 (for a model with the localisation stage, also
    its whole photo's answers without it), and for models with a stored threshold the share flagged 'not sure'
    and the accuracy of the answers given (fractions)."""
    data = paths.ROBUSTNESS.read(root)
    df = pd.DataFrame(data["rows"])
    shifts, models = df["shift"].unique(), df["model"].unique()
    table = df.pivot(index="shift", columns="model", values="top1").reindex(index=shifts, columns=models)
    table = table.rename(columns=lambda m: f"top-1 {catalog.title(m)}")
    for model, whole in _whole_photo_top1(df).items():  # models with the localisation stage: without it beside
        table.insert(table.columns.get_loc(f"top-1 {catalog.title(model)}") + 1, f"top-1 {catalog.title(model)}{WHOLE_PHOTO_ONLY}",
                     whole.reindex(shifts))
    if "flagged_not_sure" in df.columns:
        for model, g in df[df["flagged_not_sure"].notna()].groupby("model", sort=False):
            g = g.set_index("shift").reindex(shifts)
            table[f"'not sure' {catalog.title(model)}"] = g["flagged_not_sure"]
            table[f"accuracy when answered {catalog.title(model)}"] = g["accuracy_when_answered"]
    return table.reset_index(), {k: v for k, v in data.items() if k != "rows"}


def _whole_photo_top1(df: pd.DataFrame) -> dict[str, pd.Series]:
    """Of the robustness rows (``df``), each model that answered with the localisation stage: the top-1 of its whole
    photo's answers (the same pass, without the stage), by shift."""
    if "whole_photo" not in df.columns:
        return {}
    return {model: g.set_index("shift")["whole_photo"].map(lambda r: r["top1"])
            for model, g in df[df["whole_photo"].notna()].groupby("model", sort=False)}


def robustness_localised(root=None) -> pd.DataFrame:
    """The robustness report's models that answered with the localisation stage: per shift, top-1 from the whole
    photo alone and with the stage (the same pass), fractions; empty when none did."""
    df = pd.DataFrame(paths.ROBUSTNESS.read(root)["rows"])
    table = pd.DataFrame()
    for model, whole in _whole_photo_top1(df).items():
        table[f"{catalog.title(model)}: whole photo"] = whole
        table[f"{catalog.title(model)}: localised"] = df[df["model"] == model].set_index("shift")["top1"]
    return table.rename_axis("shift").reset_index() if len(table.columns) else table


def robustness_section(root=None) -> list[Block]:
    try:
        table, info = robustness_table(root)
    except art.ArtifactMissing:
        return [f"Robustness not measured yet: run `{paths.ROBUSTNESS.command}`."]
    shown = table.copy()
    for c in shown.columns[1:]:
        shown[c] = shown[c].map(pct)
    return [f"## Robustness: the test split under photo-like shifts (`{paths.ROBUSTNESS.command}`)", "",
            f"The {info['n_images']} {info['protocol']} test images, each shifted the same seeded way for every "
            "model. 'not sure' = share of answers flagged 'not sure' by the verdict (the model's entropy threshold "
            "and its novelty check); 'accuracy when answered' = "
            "top-1 of the answers that are not flagged. The models shipped with the localisation stage answer "
            "with it, each shifted square taken as the photo; 'whole photo only' is the same pass's answer "
            "from the whole square (the stage's 'before').", "", Table(shown), ""]
