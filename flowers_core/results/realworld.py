"""People's photos (``bench.realworld``): the answers on real-photos/ and not-flowers/, their targets, mistakes and operating points."""
from __future__ import annotations

import pandas as pd

from ..serve.answer import CANDIDATES_SHOWN
from ..shipped import catalog, paths
from ..shipped import manifest as art
from ..shipped.catalog import PRODUCTION, TEACHER
from ..shipped.splits import SHIPPED_PROTOCOL
from .common import Block, Table, pct
from .novelty import novelty_lines

ANSWER_COLUMNS = {"answered": "answered", "accuracy_when_answered": "accuracy when answered",
                  "unknown_given_species": "unknown flowers given a species",
                  "not_flower_given_species": "non-flowers given a species"}  # report field -> column


PASS_RATE_COLUMN = "novelty check: validation flowers passing"


OPERATING_POINT_SHARES = (PASS_RATE_COLUMN, *ANSWER_COLUMNS.values())  # the fractions of realworld_operating_points


def _answer_columns(r: dict) -> dict:
    """How one model answered people's photos (a row of a ``realworld*.json`` report), as table columns."""
    return {column: r[field] for field, column in ANSWER_COLUMNS.items()}


def realworld_table(root=None, data: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """People's own photos (``flowers_core.bench.realworld``): one row per model (fractions), one row per
    species (each model's top-1), and the run's information (date, image counts, gate, stale models).
    ``data``: the report when the caller has read it already (it is not changed); read from ``root`` otherwise."""
    if data is None:
        data = paths.REALWORLD.read(root)
    shown = data.get("candidates_shown", CANDIDATES_SHOWN)  # reports before the key showed today's number
    rows = [{"model": catalog.title(r["model"]), "top-1 (8 species)": r["top1"], **_answer_columns(r),
             "known flowers called not a flower": r["verdicts"].get("known", {}).get("not_a_flower"),
             **({} if r.get("top_candidates") is None else {
                 f"right species in the top {shown}": r["top_candidates"],
                 f"'not sure' showing the right species among its {shown}": r["not_sure_with_right_candidate"]}),
             "time (s)": r["seconds"]} for r in data["models"]]
    species = pd.DataFrame({catalog.title(r["model"]): {s: v["top1"] for s, v in r["per_species"].items()}
                            for r in data["models"]}).rename_axis("species").reset_index()
    recorded = art.model_entries(data.get("protocol", SHIPPED_PROTOCOL), root)
    stale = [r["model"] for r in data["models"]
             if r["model"] not in recorded
             or any(recorded[r["model"]].top1(part) != r["manifest"][f"{part}_top1"]
                    for part in ("val", "test"))
             or recorded[r["model"]].entropy_threshold != r["manifest"]["entropy_threshold"]
             or (recorded[r["model"]].novelty or {}).get("threshold") != r["manifest"].get("typicality_threshold")]
    gate = art.gate_record(root)
    if data.get("gate") and (gate is None or gate.threshold != data["gate"]["threshold"]):
        stale.append("flower gate")
    if shown != CANDIDATES_SHOWN:
        stale.append(f"the candidates a 'not sure' shows ({shown} measured, {CANDIDATES_SHOWN} now)")
    localise = art.localise_record(root)
    if any((r.get("localise") or {}).get("rule") != (localise.rule if localise and localise.ships_for(r["model"]) else None)
           for r in data["models"]):
        stale.append("the localisation stage (the answers were measured with another rule, or without it)")
    info = {k: v for k, v in data.items() if k != "models"} | {"candidates_shown": shown, "stale": stale}
    return pd.DataFrame(rows), species, info


def realworld_confusions(models: tuple[str, ...], per_model: int, root=None) -> pd.DataFrame:
    """The most frequent mistakes of ``models`` on people's photos of the known species (at most ``per_model``
    rows each): the species, what it was called, how many photos, and how many of them were answered (not
    flagged). Empty when the report predates the confusions."""
    data = paths.REALWORLD.read(root)
    rows = [{"model": catalog.title(r["model"]), "species": c["species"], "called": c["called"], "photos": c["n"],
             "of which answered": c["answered"]}
            for m in models for r in data["models"] if r["model"] == m for c in r.get("confusions", [])[:per_model]]
    return pd.DataFrame(rows)


def realworld_operating_points(models: tuple[str, ...], root=None) -> pd.DataFrame:
    """People's photos answered by ``models`` with their novelty checks at each recorded pass rate
    (``by_pass_rate`` of the real-world report; the entropy rule and the gate unchanged; fractions), the
    shipped rate marked. Measured after the rate was chosen on held-out species, never used to choose it.
    Empty when the report predates these rows."""
    data = paths.REALWORLD.read(root)
    rows = [{"model": catalog.title(m), PASS_RATE_COLUMN: float(rate), **_answer_columns(a),
             "": "shipped" if float(rate) == r["manifest"].get("typicality_pass_rate") else ""}
            for m in models for r in data["models"] if r["model"] == m
            for rate, a in r.get("by_pass_rate", {}).items()]
    return pd.DataFrame(rows)


def realworld_targets(table: pd.DataFrame) -> list[Block]:
    """Issue #12's targets on people's photos, checked against the real-world table (fractions, one row per model)."""
    checks = realworld_checks(table)
    if not checks:
        return []
    return ["Targets on people's photos (issue #12), from the table above:", "", targets_table(checks), ""]


def targets_table(checks: list[tuple[str, str, bool]]) -> Table:
    return Table(pd.DataFrame([(t, m, "met" if ok else "**not met**") for t, m, ok in checks],
                           columns=["target", "measured", "status"]), as_written=True)


def realworld_checks(table: pd.DataFrame) -> list[tuple[str, str, bool]]:
    """(target, measured, met) of issue #12 on people's photos, from the real-world table."""
    rows = table.set_index("model")
    int8, ensemble = catalog.title(PRODUCTION), catalog.title(TEACHER)
    if int8 not in rows.index:
        return []
    r = rows.loc[int8]
    checks = [(f"{int8}: top-1 over the 8 species ≥ 90%", pct(r["top-1 (8 species)"]), r["top-1 (8 species)"] >= 0.90),
              (f"{int8}: ≥ 85% of the known species' photos answered", pct(r["answered"]), r["answered"] >= 0.85),
              (f"{int8}: ≥ 95% accuracy when answered", pct(r["accuracy when answered"]), r["accuracy when answered"] >= 0.95),
              (f"{int8}: unknown flowers given a species ≤ 20%", pct(r["unknown flowers given a species"]),
               r["unknown flowers given a species"] <= 0.20),
              (f"{int8}: non-flowers given a species ≤ 2%", pct(r["non-flowers given a species"]),
               r["non-flowers given a species"] <= 0.02)]
    if ensemble in rows.index:
        e = rows.loc[ensemble]["top-1 (8 species)"]
        checks.append((f"{ensemble}: top-1 over the 8 species ≥ 92%", pct(e), e >= 0.92))
    return checks


def realworld_section(root=None) -> list[Block]:
    try:
        table, species, info = realworld_table(root)
    except art.ArtifactMissing:
        return [f"Real-world photos not measured yet: run `{paths.REALWORLD.command}`."]
    targets = realworld_targets(table)
    for df in (table, species):
        for c in df.columns[1:]:
            if c != "time (s)":
                df[c] = df[c].map(pct)
    n, gate = info["n_images"], info.get("gate")
    gate_text = ("No flower gate was shipped (`python -m train.gate`), so no photo was called 'not a flower'."
                 if not gate else
                 f"'Not a flower' = the flower gate ({gate['n_classes']} flower-like ImageNet classes of the "
                 f"Lite0 ImageNet classifier, threshold {gate['threshold']:.4f} = the score 99% of the validation "
                 f"flowers reach) let through {pct(gate['pass_rate'].get('known'))} of the known species, "
                 f"{pct(gate['pass_rate'].get('unknown'))} of the unknown flowers and "
                 f"{pct(gate['pass_rate'].get('not_flower'))} of the non-flowers, in {gate['seconds']} s for all photos.")
    stale = (f" **Stale**: {', '.join(info['stale'])} changed since this run; re-run `{paths.REALWORLD.command}`."
             if info["stale"] else "")
    return [f"## Real-world photos (`{paths.REALWORLD.command}`)", "",
            f"{n['known']} web photos of 8 of the 102 species, {n['unknown']} of 3 flowers that are none of them and "
            f"{n['not_flower']} everyday photos of no flower (`real-photos/`, `not-flowers/`: never trained on; used "
            "only to choose between signals, see Decisions), each through the app's path; measured "
            f"{info['date']}. 'answered' = share of the 8 species given a species (verdict neither 'not sure' nor "
            "'not a flower'); 'accuracy when answered' = top-1 of those answers; 'right species in the top "
            f"{info['candidates_shown']}' = share of the 8 species' photos whose species is among the model's "
            f"{info['candidates_shown']} most "
            "probable, the candidates a 'not sure' answer shows with reference photos, and the next column the same "
            "over the photos answered 'not sure'; time = all photos through the "
            f"model on 2 threads (the gate's time not included).{stale}", "",
            Table(table), "", *targets, gate_text, "", *novelty_lines(root), "Top-1 per species:", "", Table(species), "",
            *confusion_lines(root), *realworld_operating_lines(root)]


def _realworld_or_empty(root=None) -> dict:
    """The real-world report, or one with no model rows when it was not run yet."""
    return paths.REALWORLD.read_or_none(root) or {"models": []}


def realworld_operating_lines(root=None) -> list[Block]:
    """The app's model and the teacher on people's photos at each recorded pass rate of their novelty checks."""
    models = (PRODUCTION, TEACHER)
    table = realworld_operating_points(models, root)
    if table.empty:
        return []
    for c in OPERATING_POINT_SHARES:
        table[c] = table[c].map(pct)
    return [f"The same photos with the novelty checks at every threshold each fit recorded ({' and '.join(catalog.title(m) for m in models)}; "
            "the entropy rule and the flower gate unchanged; measured after the shipped share was chosen on the held-out "
            "species above, not used to choose it): a laxer check answers more of the known species' photos, less "
            "accurately, and gives more unknown flowers a species.", "", Table(table, as_written=True), ""]


def confusion_lines(root=None) -> list[Block]:
    """Where the app's model and the teacher go wrong on the known species' photos."""
    models = (PRODUCTION, TEACHER)
    table = realworld_confusions(models, per_model=6, root=root)
    if table.empty:
        return []
    return [f"Most frequent mistakes on the known species' photos ({' and '.join(catalog.title(m) for m in models)}; "
            "'of which answered' = given that wrong species name instead of 'not sure' or 'not a flower'):", "",
            Table(table), ""]
