"""Find the flower, then classify (``train.localise``): the rule, its targets, and the recipes compared on people's photos."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..serve.answer import CANDIDATES_SHOWN
from ..serve.localise import MAX_TEST_DROP
from ..shipped import catalog, paths
from ..shipped import manifest as art
from ..shipped.catalog import PRODUCTION
from .common import Block, Table, pct
from .novelty import typicality_signal
from .realworld import _answer_columns, _realworld_or_empty, targets_table
from .robustness import robustness_localised


def localisation_table(data: dict) -> pd.DataFrame:
    """The models of a real-world report that ran the localisation stage: their answers from the whole photo (the
    same pass, ``whole_photo``) beside the localised ones, on the flowering photos (``form`` = flower) and on all
    photos of the 8 species (fractions), and how often the crop was used and several blooms were found."""
    rows = []
    for r in data["models"]:
        whole, place = r.get("whole_photo"), r.get("localise") or {}
        if not whole or not place.get("rule"):
            continue
        flowering, whole_flowering = r.get("flowering", {}), whole.get("flowering", {})
        rows.append({"model": catalog.title(r["model"]),
                     "flowering: top-1, whole photo": whole_flowering.get("top1"),
                     "flowering: top-1, localised": flowering.get("top1"),
                     f"flowering: top {data.get('candidates_shown', CANDIDATES_SHOWN)}, whole photo": whole_flowering.get("top_candidates"),
                     f"flowering: top {data.get('candidates_shown', CANDIDATES_SHOWN)}, localised": flowering.get("top_candidates"),
                     "all photos: top-1, whole photo": whole["top1"], "all photos: top-1, localised": r["top1"],
                     "answered, whole photo": whole["answered"], "answered, localised": r["answered"],
                     "unknown flowers given a species, localised": r["unknown_given_species"],
                     "non-flowers given a species, localised": r["not_flower_given_species"],
                     "crop used (known species)": place.get("crop_used", {}).get("known"),
                     "several blooms found (known species)": place.get("several_blooms", {}).get("known")})
    return pd.DataFrame(rows)


def recipe_ablation(root=None) -> pd.DataFrame:
    """Every real-world report under ``reports/`` (``realworld*.json``: the shipped models' and those of
    recipes tried and not shipped), one row per model: how it was trained, its test-split top-1 and
    its real-world numbers, so a change of recipe is judged on both. A model that answered with the localisation
    stage has two rows: its whole photo's answers (the stage's "before", the same run) and the stage's, with the
    test top-1 the stage's rule recorded for it (``train.localise --score-test``)."""
    record = art.localise_record(root)
    localised_test = {name: row.get("localised") for name, row in (record.test_top1 if record else {}).items()}
    rows = []
    for path in sorted((art.artifacts_dir(root) / "reports").glob("realworld*.json")):
        data = json.loads(path.read_text())
        for r in data["models"]:
            not_sure = "entropy" + (f" + {typicality_signal(r['manifest'])}" if r["manifest"].get("typicality_threshold")
                                    is not None else "")
            recipe = r["manifest"].get("recipe", "?")

            def row(answers: dict, recipe: str, test_top1) -> dict:
                return {"report": path.name, "model": catalog.title(r["model"]), "recipe": recipe, "'not sure' from": not_sure,
                        "test top-1": test_top1, "real top-1": answers["top1"],
                        "flowering top-1": (answers.get("flowering") or {}).get("top1"), **_answer_columns(answers)}

            if r.get("whole_photo"):
                rows.append(row(r["whole_photo"], recipe, r["manifest"]["test_top1"]))
                rows.append(row(r, f"{recipe} + localisation stage ({r['localise']['rule']['combine']} of the whole "
                                   "photo and the crop around its class map's strongest bloom)",
                                localised_test.get(r["model"])))
            else:
                rows.append(row(r, recipe, r["manifest"]["test_top1"]))
    if not rows:
        raise art.ArtifactMissing(f"no real-world report yet: run `{paths.REALWORLD.command}`.")
    return pd.DataFrame(rows)


# How the models of each trial report were made in a trial artifacts folder DIR (``--artifacts DIR``), then measured
# with the shipped flower gate (``bench.realworld --artifacts DIR --gate-from artifacts --output <report>``).
TRIAL_RUNS = {
    "realworld_more_stages.json": ("level1", [
        "python -m train.level1 --protocol stratified --frozen-stages 6 --artifacts DIR",
        "python -m train.uncertainty --artifacts DIR --protocol stratified --models level1"]),
    "realworld_photo_views.json": ("level2 level3 ensemble student student_int8", [
        "python -m train.level2 --protocol stratified --photo-views 2 --artifacts DIR",
        "python -m train.level3 --protocol stratified --photo-views 2 --artifacts DIR",
        "python -m train.level4 --protocol stratified --artifacts DIR",
        "python -m train.level5 --protocol stratified --artifacts DIR",
        "python -m train.uncertainty --artifacts DIR --protocol stratified --models level2 level3 ensemble",
        "python -m train.novelty --artifacts DIR --models level2 level3 ensemble"]),
}


def localisation_section(root=None) -> list[Block]:
    """Find the flower, then classify (issue #28): the rule chosen on validation, its effect on people's photos
    (the same run's whole-photo answers beside the localised ones), on the test split and on latency, and the
    issue's targets."""
    record = art.localise_record(root)
    if record is None:
        return ["No localisation rule recorded yet: run `python -m train.localise`.", ""]
    data = _realworld_or_empty(root)
    table = localisation_table(data)
    lines = [f"## Find the flower, then classify (`{record.command}`)", "",
             f"Rule: {record.rule} (a square crop around the strongest hot region of the INT8 student's class map of "
             f"its best guess, combined with the whole photo), chosen on {record.details.get('chosen_on', '?')}: "
             f"validation top-1 plain {pct(record.details.get('val_plain_top1', {}).get('whole'))} → "
             f"{pct(record.details.get('val_plain_top1', {}).get('localised'))}, framed "
             f"{pct(record.details.get('val_framed_top1', {}).get('whole'))} → "
             f"{pct(record.details.get('val_framed_top1', {}).get('localised'))} (`{paths.LOCALISE.path}` holds the "
             f"grid). Shipped for: {', '.join(map(catalog.title, record.models)) or 'no model'} (those whose test "
             "split it did not lower by more than 0.2 points).", ""]
    tests = [{"model": catalog.title(m), "test top-1, whole photo": pct(r["whole"]), "test top-1, localised": pct(r["localised"]),
              "crop used": pct(r.get("crop_used"))} for m, r in record.test_top1.items()]
    if tests:
        lines += ["Test split (80/10/10), scored once with the rule, the photos decoded as the app decodes them "
                  f"({record.details.get('test_scored', '?')}):", "", Table(pd.DataFrame(tests), as_written=True), ""]
    if table.empty:
        lines += [f"People's photos: not measured with the stage yet (`{paths.REALWORLD.command}`).", ""]
        return lines
    shown = table.copy()
    for c in shown.columns[1:]:
        shown[c] = shown[c].map(pct)
    lines += [f"People's photos (`{paths.REALWORLD.command}`, {data.get('date', '?')}; the whole-photo columns are the "
              "same run's answers before the stage):", "", Table(shown, as_written=True), ""]
    lines += _localised_robustness(root)
    lines += ["Targets (issue #28):", "", targets_table(localisation_checks(table, record, root)), ""]
    return lines


def _localised_robustness(root=None) -> list[Block]:
    """The robustness suite's top-1 with and without the stage (``robustness_localised``)."""
    try:
        table = robustness_localised(root)
    except art.ArtifactMissing:
        return []
    if table.empty:
        return [f"The robustness suite has not been run with the stage yet (`{paths.ROBUSTNESS.command}`).", ""]
    for c in table.columns[1:]:
        table[c] = table[c].map(pct)
    return [f"The test split under photo-like shifts (`{paths.ROBUSTNESS.command}`, the shifted square taken as the "
            "photo; the whole-photo columns are the same pass's answers before the stage; the 'not sure' shares are in "
            "\"Robustness\"). Held-out species with the stage: the unknown-species paragraph of \"Real-world photos\".", "", Table(table, as_written=True), ""]


def localisation_checks(table: pd.DataFrame, record, root=None) -> list[tuple[str, str, bool]]:
    """(target, measured, met) of issue #28: people's photos with the stage, the test split, the latency."""
    rows = table.set_index("model") if not table.empty else table
    int8 = catalog.title(PRODUCTION)
    latency = paths.LATENCY_LOCALISED.read_or_none(root)
    lat = next((m for m in (latency or {}).get("models", []) if m.get("model") == PRODUCTION), None)
    checks = []
    if int8 in rows.index:
        r = rows.loc[int8]
        top = next(c for c in rows.columns if c.startswith("flowering: top ") and c.endswith("localised"))
        checks += [(f"{int8}: flowering photos top-1 ≥ 80%", pct(r["flowering: top-1, localised"]), r["flowering: top-1, localised"] >= 0.80),
                   (f"{int8}: right species in the top 3 on flowering photos ≥ 90%", pct(r[top]), r[top] >= 0.90),
                   (f"{int8}: unknown flowers given a species ≤ 15%", pct(r["unknown flowers given a species, localised"]),
                    r["unknown flowers given a species, localised"] <= 0.15),
                   (f"{int8}: non-flowers given a species ≤ 1%", pct(r["non-flowers given a species, localised"]),
                    r["non-flowers given a species, localised"] <= 0.01)]
    for m, r in record.test_top1.items():
        checks.append((f"{catalog.title(m)}: test top-1 within {100 * MAX_TEST_DROP:g} points of {pct(r['whole'])}", pct(r["localised"]),
                       r["localised"] >= r["whole"] - MAX_TEST_DROP))
    if lat and lat.get("p50_localised_ms") and lat.get("p50_photo_ms"):
        ratio = lat["p50_localised_ms"] / lat["p50_photo_ms"]
        checks.append((f"{int8}: batch-1 p50 with the stage ≤ 2.5× the single pass (both from a decoded photo, "
                       f"`{paths.LATENCY_LOCALISED.path}`)", f"{lat['p50_localised_ms']:.1f} ms / {lat['p50_photo_ms']:.1f} ms "
                       f"= {ratio:.2f}×", ratio <= 2.5))
    return checks


def trial_runs_text(present: set[str]) -> str:
    """How to reproduce each trial report that is present (the commands of ``TRIAL_RUNS``)."""
    runs = []
    for report, (models, commands) in TRIAL_RUNS.items():
        if report in present:
            steps = [*commands, f"{paths.REALWORLD.command} --artifacts DIR --gate-from artifacts --models {models} "
                                f"--output artifacts/reports/{report}"]
            runs.append(f"`{report}`: " + ", then ".join(f"`{c}`" for c in steps))
    return "; ".join(runs)


def recipe_ablation_section(root=None) -> list[Block]:
    try:
        table = recipe_ablation(root)
    except art.ArtifactMissing as e:
        return [str(e)]
    for c in table.columns[4:]:
        table[c] = table[c].map(pct)
    trials = trial_runs_text(set(table["report"]))
    return ["## Recipes on people's photos and on the test split", "",
            f"Each `reports/realworld*.json` is one run of `{paths.REALWORLD.command}` (`realworld.json`: the shipped "
            f"models; `{Path(paths.REALWORLD_BEFORE_NOVELTY.path).name}`: the same models with their novelty checks off, "
            "`--without-novelty`; the others: models of a recipe that was tried and not shipped, measured the same "
            "way with the flower gate shipped at the time (each report records its gate's pass rates): "
            "`realworld_full_finetune.json`, `realworld_student_strong_views.json` (the "
            "students' rows of `realworld.json` when they were distilled on the eval and strong views only), "
            "`realworld_student_before_int8_trunk.json` (their rows when the photo views were added, before the INT8 "
            "trunk's view was) and `realworld_student_7bit_trunk.json` (their rows when that trunk had 7-bit weights "
            "throughout, before `saturation_free_8bit`) before those models were replaced, `realworld_plain_mahalanobis.json` (the rows of `realworld.json` when the novelty checks used the plain Mahalanobis distance, before the relative one), "
            "`realworld_novelty_99.json` (the rows of `realworld.json` when the relative checks let 99% of the validation "
            "flowers pass, before the 95% chosen on held-out species), "
            "the others from a trial artifacts folder DIR, a copy of `artifacts/`"
            + (f" ({trials})" if trials else "") + "). The column \"'not sure' from\" names the signals behind the "
            "'not sure' answers (the flower gate decides 'not a flower' in every row). 'test top-1' is the 80/10/10 "
            "test split of the same models. A model that answered with the localisation stage has two rows of the same "
            "run: its whole photos' answers, then the stage's (its test top-1 from `python -m train.localise "
            "--score-test`); 'flowering top-1' leaves out the dandelion seed heads (reports before `form` have none).", "",
            Table(table), ""]
