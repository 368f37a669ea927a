"""The novelty checks and species held out of training (``train.novelty``, ``bench.unseen_species``)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..serve.novelty import MAX_UNSEEN_ANSWERED, NOVELTY_CMD, operating_point
from ..shipped import catalog, paths
from ..shipped import manifest as art
from ..shipped.splits import SHIPPED_PROTOCOL
from .common import Block, Table, pct


def novelty_table(root=None) -> pd.DataFrame:
    """Every shipped model's novelty check (``train.novelty``): threshold and how many flowers pass it."""
    rows = [{"model": catalog.title(name), "threshold": n["threshold"], "validation flowers aimed at": n.get("target_val_pass_rate"),
             "validation flowers passing": n["val_pass_rate"], "test images passing": n["test_pass_rate"],
             "stored (MB)": n["bytes"] / 1e6 if n.get("bytes") else None,
             "feature space": "its members' (standardised, averaged)" if n.get("members") else "its own pooled features"}
            for name, entry in art.model_entries(SHIPPED_PROTOCOL, root).items() if (n := entry.novelty)]
    if not rows:
        raise art.ArtifactMissing(f"no novelty check recorded yet: run `{NOVELTY_CMD}`.")
    return pd.DataFrame(rows)


def unseen_species_table(root=None) -> tuple[pd.DataFrame, dict]:
    """Species held out of training (``bench.unseen_species``): one row per "not sure" signal (fractions: the
    held-out species' images it lets through, per fold and on average; the trained species' validation images
    it lets through; AUROC of its score), and the report's other fields (folds, model, pass rates, date, command)."""
    data = paths.UNSEEN_SPECIES.read(root)
    rows = [{"signal": name,
             **{f"fold {f['fold']}: held-out species passing": f.get("signals", f.get("distances", {}))[name]["unseen_passing"]
                for f in data["folds"]},
             "held-out species passing (mean)": m["unseen_passing"],
             "trained species' validation passing": m["trained_val_passing"], "AUROC": m["auroc"]}
            for name, m in data["mean"].items()]
    return pd.DataFrame(rows), data


def unseen_operating_points(data: dict, root=None) -> tuple[pd.DataFrame, float | None, list[float], float]:
    """The app's rule on the held-out species at each swept pass rate of the novelty check (mean over the
    folds of an ``unseen_species_table`` report; fractions), the rate ``novelty.operating_point`` chooses from
    them, the rates the shipped checks were fitted with (the manifest's), and the bound it chose by (the
    largest share of the held-out species' images that may be given a species name)."""
    points = data.get("mean_app_rule_by_pass_rate") or {}
    limit = data.get("max_unseen_answered", MAX_UNSEEN_ANSWERED)
    chosen = operating_point(points, limit) if points else None
    shipped = sorted({(e.novelty or {}).get("target_val_pass_rate") for e in art.model_entries(SHIPPED_PROTOCOL, root).values()
                      if e.novelty} - {None})
    rows = [{"novelty check: validation flowers passing": float(rate),
             "trained species' validation answered": r["trained_val_passing"],
             "their accuracy when answered": r["trained_val_accuracy_when_answered"],
             "held-out species given a species": r["unseen_passing"],
             "": ", ".join(w for w, yes in (("the signal table's", float(rate) == data.get("pass_rate")),
                                             ("chosen", float(rate) == chosen), ("shipped", float(rate) in shipped)) if yes)}
            for rate, r in points.items()]
    return pd.DataFrame(rows), chosen, shipped, limit


def typicality_signal(identity: dict) -> str:
    """The novelty check a real-world report's model ran, in words: reports written before the distance was
    recorded used the plain Mahalanobis distance, and those written before its pass rate was recorded 99%."""
    distance = identity.get("typicality_distance") or "Mahalanobis"
    rate = identity.get("typicality_pass_rate") or 0.99
    return f"typicality ({distance}, {100 * rate:g}% of val passing)"


def novelty_lines(root=None) -> list[Block]:
    try:
        table = novelty_table(root)
    except art.ArtifactMissing as e:
        return [str(e), ""]
    for c in ("validation flowers aimed at", "validation flowers passing", "test images passing"):
        table[c] = table[c].map(pct)
    table["threshold"] = table["threshold"].map(lambda v: f"{v:,.2f}")
    table["stored (MB)"] = table["stored (MB)"].map(lambda v: "members' packs" if pd.isna(v) else f"{v:.2f}")
    return [f"'Not sure' also comes from each model's novelty check (`{NOVELTY_CMD}`): minus the relative "
            "squared Mahalanobis distance of the photo's pooled features to the nearest training-class mean (the "
            "distance with one covariance shared by the classes, minus the distance to one Gaussian of all the "
            "training features; both fitted on the training images); for the ensemble, the mean of its members' "
            "scores, each standardised by its mean and spread over the validation flowers. Each threshold is the "
            "score that the share of the validation flowers 'aimed at' reach (a share chosen on species held out of "
            "training, below), fixed before the photos were scored. "
            f"`{Path(paths.REALWORLD_BEFORE_NOVELTY.path).name}` (Recipes table below) is the same run with the checks off.", "",
            Table(table), "", *unseen_species_lines(root)]


def unseen_species_lines(root=None) -> list[Block]:
    """How each "not sure" signal turns away Flowers-102 species held out of training (``bench.unseen_species``)."""
    try:
        table, data = unseen_species_table(root)
    except art.ArtifactMissing:
        return []
    for c in table.columns[1:-1]:
        table[c] = table[c].map(pct)
    table["AUROC"] = table["AUROC"].map(lambda v: "—" if v is None or pd.isna(v) else f"{v:.3f}")
    model, held = data["model"], sum(len(f["held_out"]) for f in data["folds"])
    return [f"Unknown species measured inside Flowers-102 (`{data['command']}`, {data['date']}): in each of "
            f"{len(data['folds'])} folds a seeded fifth of the 102 species ({held} species in all) is held out of "
            f"training; a model of the student's trunk ({model['arch']}, {model['input_size']} px, the level-2 recipe "
            "on the cached views) is trained on the others, each distance is fitted on their training features with "
            f"its threshold set so that {pct(data['pass_rate'])} of their validation images pass (the rule when the "
            "benchmark ran; other shares in the table after), the "
            "softmax's temperature and entropy threshold are fitted on the same validation images as "
            f"`python -m train.uncertainty` fits a shipped model's ({pct(data['target_selective_accuracy'])} accuracy of the "
            "answers kept), and the held-out species' training and validation images are scored (the test split is not "
            "used; `real-photos/` neither). 'passing' = not called 'not sure' by that signal (lower is better for the "
            "held-out species); the last row is the app's rule (either signal says 'not sure'): its 'passing' is the "
            "share of the unknown species' images given a species name, as in the real-photo table's 'unknown flowers "
            "given a species'. AUROC: trained species' validation images against the held-out species.", "",
            Table(table), "", *_localised_unseen(data), *_operating_points(data, root)]


def _localised_unseen(data: dict) -> list[Block]:
    """The app's rule on the held-out species with the localisation stage on, beside the same rule without it."""
    stage = data.get("mean_localised")
    if not stage:
        return []
    rule = ", ".join(f"{k} {v}" for k, v in data["localise_rule"].items())
    return ["With the localisation stage (the recorded rule: " + rule + "; each fold model finds the bloom in its own "
            "class activation map, as the INT8 file's class maps do for the shipped models; the thresholds unchanged, "
            "fitted on whole images), mean over the folds:", "",
            Table(pd.DataFrame([
                {"app's rule": "whole image only", "held-out species given a species": pct(stage["unseen_passing_whole"]),
                 "trained species' val answered": pct(stage["trained_val_passing_whole"]),
                 "trained species' val accuracy when answered": pct(stage["trained_val_accuracy_when_answered_whole"]),
                 "trained species' val top-1": pct(stage["trained_val_top1_whole"]), "crop used": "—"},
                {"app's rule": "with the localisation stage", "held-out species given a species": pct(stage["unseen_passing"]),
                 "trained species' val answered": pct(stage["trained_val_passing"]),
                 "trained species' val accuracy when answered": pct(stage["trained_val_accuracy_when_answered"]),
                 "trained species' val top-1": pct(stage["trained_val_top1"]),
                 "crop used": f"{pct(stage['unseen_crop_used'])} held-out, {pct(stage['trained_val_crop_used'])} trained"}]),
               as_written=True), ""]


def _operating_points(data: dict, root=None) -> list[Block]:
    """The app's rule on the held-out species at other pass rates of the novelty check, the chosen rate and the
    shipped one (``unseen_operating_points``)."""
    table, chosen, shipped, limit = unseen_operating_points(data, root)
    if table.empty:
        return []
    for c in table.columns[:4]:
        table[c] = table[c].map(pct)
    return ["The app's rule at other thresholds of the novelty check (the same folds, the entropy rule unchanged; "
            "the threshold lets the stated share of the trained species' validation images pass the check alone). "
            f"Chosen (`novelty.operating_point`): the largest share at which at most {pct(limit)} of the held-out "
            f"species' images are given a species name: {pct(chosen)}; the shipped checks are fitted with "
            f"{', '.join(pct(r) for r in shipped) or 'no recorded share'} (`{NOVELTY_CMD}`).", "",
            Table(table, as_written=True), ""]
