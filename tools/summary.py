"""RESULTS.md, written whole from ``artifacts/`` (``python -m tools.summary``; ``--check`` fails when the file
differs from what the artifacts give, which CI runs).

Every number in it is read from files the training, benchmark and app-measurement commands wrote, so
re-running it after a new training run or benchmark keeps the results honest; nobody edits RESULTS.md.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from flowers_core import artifacts as art
from flowers_core import catalog, reports, tables
from flowers_core.catalog import PRODUCTION, TEACHER
from flowers_core.data import PROTOCOLS, REPO_ROOT, SHIPPED_PROTOCOL
from flowers_core.localise import MAX_TEST_DROP
from flowers_core.novelty import NOVELTY_CMD

OTHER_PROTOCOL = next(p for p in PROTOCOLS if p != SHIPPED_PROTOCOL)  # official: metrics only, no shipped weights
RESULTS = REPO_ROOT / "RESULTS.md"
README = REPO_ROOT / "README.md"
HEADLINE_START, HEADLINE_END = "<!-- headline:start -->", "<!-- headline:end -->"  # the README's generated table



def pct(v) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}%"


def md(df: pd.DataFrame, *, as_written: bool = False) -> str:
    """A markdown table; ``as_written`` keeps pre-formatted strings as they are ("0.010" stays "0.010")."""
    return df.to_markdown(index=False, floatfmt=".4g", disable_numparse=as_written)


def accuracy_section(root=None) -> list[str]:
    table = tables.levels_table(root)
    if table.empty:
        return ["No trained models yet: run `python -m train.all`."]
    rows = []
    for _, r in table.iterrows():
        key = r["key"]
        target = catalog.get(key).target_top1
        measured = r["top-1 stratified"]
        verdict = "—" if target is None or measured is None or pd.isna(measured) else (
            "met" if measured >= target else f"**not met** ({pct(measured)} < {pct(target)})")
        rows.append({
            "model": r["model"], "test top-1 (80/10/10)": pct(measured), "test top-1 (official)": pct(r["top-1 official"]),
            "top-5 (80/10/10)": pct(r["top-5 stratified"]), "macro-F1 (80/10/10)": pct(r["macro-F1 stratified"]),
            "ECE": "—" if pd.isna(r["ECE (stratified)"]) else f"{r['ECE (stratified)']:.3f}",
            "size (MB)": "—" if pd.isna(r["size (MB)"]) else f"{r['size (MB)']:.1f}",
            "CPU p50 (ms)": "—" if pd.isna(r["CPU p50 (ms)"]) else f"{r['CPU p50 (ms)']:.1f}",
            "target (80/10/10)": pct(target) if target else "—", "reference report": pct(catalog.get(key).reference_top1),
            "status": verdict,
        })
    splits = art.read_manifest(root).get("splits", {})
    sizes = ", ".join(f"{p}: {s.get('train')}/{s.get('val')}/{s.get('test')}" for p, s in splits.items())
    return ["## Accuracy (test split, scored once per shipped model)", "",
            md(pd.DataFrame(rows), as_written=True), "",
            f"Split sizes train/val/test — {sizes}. Sizes are the shipped files (levels 1–3: the fine-tuned "
            "part in fp16; the ensemble: its members). 'reference report' is the ResNet-50 GPU report "
            "this project is measured against (80/10/10 protocol)."]


def training_time_section(root=None) -> list[str]:
    rows = []
    for protocol in tables.PROTOCOLS:
        for name, entry in art.model_entries(protocol, root).items():
            e = entry.details
            if "train_seconds" in e:
                cache, train = e.get("feature_cache_seconds", 0.0), e["train_seconds"]
                rows.append({"protocol": protocol, "key": name, "model": tables.pretty(name),
                             "device": e.get("device", "cpu"),
                             "feature caching (min)": round(cache / 60, 1), "training (min)": round(train / 60, 1),
                             "total (min)": round((cache + train) / 60, 1)})
    if not rows:
        return []
    df = pd.DataFrame(rows)
    l1_l3 = df[(df["protocol"] == SHIPPED_PROTOCOL) & df["key"].isin(catalog.names(levels=(1, 2, 3)))]["total (min)"].sum()
    return ["## Training time (recorded by each run)", "", md(df.drop(columns="key")), "",
            f"Levels 1–3 on the 80/10/10 protocol: {l1_l3:.0f} minutes of feature caching and training in all "
            "(decoding the JPEGs once is part of level 1's caching; scoring val and test afterwards is not "
            "counted; the ensemble is computed from saved probabilities in seconds). Feature caching happens "
            "once per view and is reused by later levels and later runs: a run that finds its views already on "
            "disk records only the time to load them, and a cold run's time depends on what else ran on the "
            "2 cores at the time.", ""]


def ablation_section(root=None) -> list[str]:
    try:
        ab = tables.ablation(root)
    except art.ArtifactMissing as e:
        return [str(e)]
    ab = ab[ab["metric"].isin(["top1", "macro_f1", "ece", "nll"])]
    recipe = tables.recipe_diff(root)
    return ["## Ablation: level 1 vs level 2", "", md(recipe), "", md(ab), ""]


def ensemble_section(root=None) -> list[str]:
    lines = []
    for protocol in tables.PROTOCOLS:
        models = art.model_entries(protocol, root)
        entry = models.get(TEACHER)
        if not entry:
            continue
        corr = entry.details.get("error_correlation", {}).get("test", {})
        members = ", ".join(f"{m} ({models[m].arch if m in models else '?'}) {pct(v['test']['top1'])}"
                            for m, v in entry.details.get("member_metrics", {}).items())
        pairs = ", ".join(f"{k.replace('~', ' vs ')}: {v:.2f}" for k, v in corr.items())
        variants = "; ".join(f"{k} {pct(v['val']['top1'])}" for k, v in entry.details.get("voting_variants_val", {}).items())
        temps = ", ".join(f"{t:.2f}" for t in entry.member_temperatures or [])
        lines.append(f"- **{protocol}**: ensemble {pct(entry.top1('test'))}; members {members}; "
                     f"pairwise error correlation (test) {pairs}."
                     + (f" Voting on validation: {variants} → shipped: {entry.details.get('voting')} (member temperatures "
                        f"{temps})." if variants else ""))
    return ["## Level-4 ensemble", "", *lines, ""] if lines else []


def student_section(root=None) -> list[str]:
    manifest = art.read_manifest(root)
    shipped = art.model_entries(SHIPPED_PROTOCOL, root)
    int8 = shipped.get(PRODUCTION)
    if not int8:
        return [f"Level 5 not trained yet: run `{catalog.produced_by(PRODUCTION)}`."]
    lines = ["## Level 5: distilled INT8 student", ""]
    ens = shipped[TEACHER].top1("test") if TEACHER in shipped else None
    acc = int8.top1("test")
    p50s = tables.latency_p50(root)
    p50 = p50s.get(PRODUCTION)
    speedup = p50s[TEACHER] / p50 if p50 and TEACHER in p50s else None
    per_cpu = tables.latency_p50_per_cpu(PRODUCTION, root)
    size = int8.details.get("file_bytes")

    def check(ok, text):
        return "—" if ok is None else ("met" if ok else f"**not met** ({text})")

    targets = [
        ("test top-1 (80/10/10) ≥ 98.0%", pct(acc), check(acc >= 0.98, pct(acc))),
        ("within 0.5 points of the ensemble", "—" if ens is None else f"{100 * (ens - acc):.2f} points "
         f"{'behind' if ens >= acc else 'ahead'}",
         check(None if ens is None else ens - acc <= 0.005, f"{100 * (ens - acc):.2f} points behind" if ens else "")),
        ("batch-1 p50 ≤ 10 ms at 2 threads, on each kind of CPU measured",
         ", ".join(f"{v:.1f} ms ({isa})" for isa, v in per_cpu.items()) or "—",
         check(max(per_cpu.values()) <= 10 if per_cpu else None,
               "; ".join(f"{v:.1f} ms on {isa}" for isa, v in per_cpu.items() if v > 10))),
        ("≥ 8× faster than the fp32 ensemble", "—" if speedup is None else f"{speedup:.1f}×",
         check(None if speedup is None else speedup >= 8, f"{speedup:.1f}×")),
        ("INT8 file ≤ 6 MB", "—" if size is None else f"{size / 1e6:.2f} MB",
         check(None if size is None else size <= 6e6, f"{size}")),
    ]
    official_entry = art.model_entries(OTHER_PROTOCOL, root).get(PRODUCTION)
    official = official_entry.top1("test") if official_entry else None
    lines += [md(pd.DataFrame(targets, columns=["target", "measured", "status"])), "",
              f"Official protocol: INT8 student {pct(official)} test top-1. INT8 vs fp32 top-1 agreement on test: "
              f"{pct(int8.details.get('agreement_with_fp32', {}).get('test'))} (80/10/10), "
              f"{pct(official_entry.details.get('agreement_with_fp32', {}).get('test') if official_entry else None)} "
              "(official).", ""]
    lines += int8_portability_lines(root)
    comparison = manifest.get("quantization_comparison", {}).get(SHIPPED_PROTOCOL)
    if comparison:
        rows = [{"backend": r["backend"], "val top-1": pct(r.get("accuracy")),
                 "agrees with fp32 torch": pct(r.get("agreement_with_fp32")),
                 "p50 ms": r.get("p50_ms"), "p95 ms": r.get("p95_ms"),
                 "file MB": f"{r['bytes'] / 1e6:.2f}" if r.get("bytes") else "—",
                 "note": r.get("error") or r.get("note", "")} for r in comparison.get("rows", [])]
        lines += [f"INT8 paths compared on {comparison.get('n_images')} validation images at "
                  f"{comparison.get('threads')} threads:", "", md(pd.DataFrame(rows)), "",
                  f"Chosen: **{comparison.get('chosen')}**: {comparison.get('reason', '')}.", ""]
        trials = (int8.quantization or {}).get("trials", [])
        if trials:
            lines += ["ONNX Runtime static-PTQ configurations tried in order (first within 0.5 point of fp32 on "
                      "val wins):", "", md(pd.DataFrame(trials)), ""]
    u = int8.uncertainty
    if u:
        sel = u.get("selective", {}).get("test", {})
        lines += [f"Uncertainty: temperature {u['temperature']:.3f} fitted on validation; test ECE "
                  f"{u['ece_before']['test']:.4f} before → {u['ece_after']['test']:.4f} after. Predictions with "
                  f"entropy above {u['entropy_threshold']:.3f} nats are flagged 'not sure' (threshold chosen on "
                  f"validation for {pct(u['target_selective_accuracy'])} selective accuracy); on test this keeps "
                  f"{pct(sel.get('coverage'))} of the images at {pct(sel.get('selective_accuracy'))} accuracy.", ""]
    if int8.novelty:
        lines += [f"Novelty check (`{NOVELTY_CMD}`): the INT8 file's pooled features (its second output) "
                  "against the training classes; threshold and pass rates in the real-world section's table.", ""]
    return lines


def int8_portability_lines(root=None) -> list[str]:
    """Each kind of CPU the shipped INT8 file was re-scored on (``bench.int8_portability``), against its recording."""
    data = reports.INT8_PORTABILITY.read_or_none(root)
    if data is None:
        return [f"The INT8 file has not been re-scored on another CPU yet: run `{reports.INT8_PORTABILITY.command}`.", ""]
    runs = data["runs"]
    rows = [{"CPU": f"{run['cpu']} ({run['int8_isa']})", "onnxruntime": run["onnxruntime"], "measured": run["date"],
             "model": tables.pretty(r["model"]), "split": r["split"], "images": r["n"],
             "top-1 agrees with the recording": pct(r["top1_agreement"]),
             "largest probability difference": f"{r['max_prob_difference']:.1e}",
             "top-1 now / recorded": f"{pct(r['top1_now'])} / {pct(r['top1_recorded'])}"}
            for run in runs for r in run["rows"]]
    gates = [f"on {run['cpu']} ({run['int8_isa']}) {pct(g['pass_rate_now'])} of the {g['n']} validation flowers pass "
             f"(recorded: {pct(g['pass_rate_recorded'])}), median flower score {g['median_score_now']:.4f} (recorded: "
             f"{g['median_score_recorded']:.4f})" for run in runs if (g := run.get("gate"))]
    return [f"The shipped INT8 file re-scored on the CPUs below (`{reports.INT8_PORTABILITY.command}`; the model as the app loads it, on the decoded images, against "
            "the probabilities saved when it was recorded, which are stored in fp16):", "", md(pd.DataFrame(rows), as_written=True), "",
            *([f"The flower gate's INT8 file, re-run the same way: {'; '.join(gates)}.", ""] if gates else [])]


def _isa(env: dict) -> str:
    """The INT8 instruction set of the latency record's CPU, when it was recorded."""
    return f", INT8 instructions: {env['int8_isa']}" if env.get("int8_isa") else ""


def latency_section(root=None) -> list[str]:
    try:
        table = tables.latency_table(root)
    except (art.ArtifactMissing, ValueError):
        return [f"Latency not measured yet: run `{reports.LATENCY.command}`."]
    env = tables.latency_environment(root)
    if "error" in table.columns:
        table = table[table["error"].isna()]
    rounds = int(table["rounds"].max()) if "rounds" in table.columns else 1
    rows = [{"model": tables.pretty(r["model"]), "batch-1 p50 (ms)": f"{r['p50_ms']:.1f}",
             "p95 (ms)": f"{r['p95_ms']:.1f}",
             "p50 with novelty check (ms)": f"{r['p50_with_check_ms']:.1f}" if pd.notna(r.get("p50_with_check_ms")) else "—", "img/s at batch 32": f"{r['throughput_img_s']:.1f}",
             "size on disk (MB)": f"{r['size_bytes'] / 1e6:.2f}", "peak memory (MB)": f"{r['model_peak_mb']:.0f}",
             "speed-up vs ensemble": f"{r['speedup_vs_ensemble']:.1f}×" if pd.notna(r.get("speedup_vs_ensemble")) else "—"}
            for r in table.to_dict("records")]
    return [f"## CPU latency (`{reports.LATENCY.command}`)", "",
            f"CPU: {env.get('cpu', '?')} ({env.get('cores', '?')} cores{_isa(env)}), {env.get('threads', '?')} threads, torch "
            f"{env.get('torch', '?')}, onnxruntime {env.get('onnxruntime', '?')}, measured {env.get('date', '?')}; "
            f"batch-1 after warm-up; each model in a fresh process, timed in {rounds} "
            "interleaved round(s), medians shown; 'with novelty check' = the app's path: the logits plus the "
            "check's features and typicality score; peak memory = the model's share of the "
            "process's peak RSS (the model and its novelty check loaded as the app loads them, after importing torch, "
            "onnxruntime and the models' code). Sizes are the shipped files (the "
            "frozen ImageNet trunk comes from the pinned wheel and is not counted).", "", md(pd.DataFrame(rows)), "",
            *_latency_by_cpu(root)]


def _latency_by_cpu(root=None) -> list[str]:
    by_cpu = tables.latency_other_cpus(root)
    if by_cpu.empty:
        return []
    by_cpu["model"] = by_cpu["model"].map(tables.pretty)
    for c in by_cpu.columns[1:]:
        by_cpu[c] = by_cpu[c].map(lambda v: "—" if pd.isna(v) else f"{v:.1f}")
    return ["Batch-1 p50 on each kind of CPU this benchmark has run on (the latest record of each INT8 instruction "
            "set; the table above is the newest):", "", md(by_cpu, as_written=True), ""]


def robustness_section(root=None) -> list[str]:
    try:
        table, info = tables.robustness_table(root)
    except art.ArtifactMissing:
        return [f"Robustness not measured yet: run `{reports.ROBUSTNESS.command}`."]
    shown = table.copy()
    for c in shown.columns[1:]:
        shown[c] = shown[c].map(pct)
    return [f"## Robustness: the test split under photo-like shifts (`{reports.ROBUSTNESS.command}`)", "",
            f"The {info['n_images']} {info['protocol']} test images, each shifted the same seeded way for every "
            "model. 'not sure' = share of answers flagged 'not sure' by the verdict (the model's entropy threshold "
            "and its novelty check); 'accuracy when answered' = "
            "top-1 of the answers that are not flagged. The models shipped with the localisation stage answer "
            "with it, each shifted square taken as the photo; 'whole photo only' is the same pass's answer "
            "from the whole square (the stage's 'before').", "", md(shown), ""]


def realworld_targets(table: pd.DataFrame) -> list[str]:
    """Issue #12's targets on people's photos, checked against the real-world table (fractions, one row per model)."""
    checks = realworld_checks(table)
    if not checks:
        return []
    return ["Targets on people's photos (issue #12), from the table above:", "", targets_table(checks), ""]


def targets_table(checks: list[tuple[str, str, bool]]) -> str:
    return md(pd.DataFrame([(t, m, "met" if ok else "**not met**") for t, m, ok in checks],
                           columns=["target", "measured", "status"]), as_written=True)


def realworld_checks(table: pd.DataFrame) -> list[tuple[str, str, bool]]:
    """(target, measured, met) of issue #12 on people's photos, from the real-world table."""
    rows = table.set_index("model")
    int8, ensemble = tables.pretty(PRODUCTION), tables.pretty(TEACHER)
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


def realworld_section(root=None) -> list[str]:
    try:
        table, species, info = tables.realworld_table(root)
    except art.ArtifactMissing:
        return [f"Real-world photos not measured yet: run `{reports.REALWORLD.command}`."]
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
    stale = (f" **Stale**: {', '.join(info['stale'])} changed since this run; re-run `{reports.REALWORLD.command}`."
             if info["stale"] else "")
    return [f"## Real-world photos (`{reports.REALWORLD.command}`)", "",
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
            md(table), "", *targets, gate_text, "", *novelty_lines(root), "Top-1 per species:", "", md(species), "",
            *confusion_lines(root), *realworld_operating_lines(root)]


def _realworld_or_empty(root=None) -> dict:
    """The real-world report, or one with no model rows when it was not run yet."""
    return reports.REALWORLD.read_or_none(root) or {"models": []}


def localisation_section(root=None) -> list[str]:
    """Find the flower, then classify (issue #28): the rule chosen on validation, its effect on people's photos
    (the same run's whole-photo answers beside the localised ones), on the test split and on latency, and the
    issue's targets."""
    record = art.localise_record(root)
    if record is None:
        return ["No localisation rule recorded yet: run `python -m train.localise`.", ""]
    data = _realworld_or_empty(root)
    table = tables.localisation_table(data)
    lines = [f"## Find the flower, then classify (`{record.command}`)", "",
             f"Rule: {record.rule} (a square crop around the strongest hot region of the INT8 student's class map of "
             f"its best guess, combined with the whole photo), chosen on {record.details.get('chosen_on', '?')}: "
             f"validation top-1 plain {pct(record.details.get('val_plain_top1', {}).get('whole'))} → "
             f"{pct(record.details.get('val_plain_top1', {}).get('localised'))}, framed "
             f"{pct(record.details.get('val_framed_top1', {}).get('whole'))} → "
             f"{pct(record.details.get('val_framed_top1', {}).get('localised'))} (`{reports.LOCALISE.path}` holds the "
             f"grid). Shipped for: {', '.join(map(tables.pretty, record.models)) or 'no model'} (those whose test "
             "split it did not lower by more than 0.2 points).", ""]
    tests = [{"model": tables.pretty(m), "test top-1, whole photo": pct(r["whole"]), "test top-1, localised": pct(r["localised"]),
              "crop used": pct(r.get("crop_used"))} for m, r in record.test_top1.items()]
    if tests:
        lines += ["Test split (80/10/10), scored once with the rule, the photos decoded as the app decodes them "
                  f"({record.details.get('test_scored', '?')}):", "", md(pd.DataFrame(tests), as_written=True), ""]
    if table.empty:
        lines += [f"People's photos: not measured with the stage yet (`{reports.REALWORLD.command}`).", ""]
        return lines
    shown = table.copy()
    for c in shown.columns[1:]:
        shown[c] = shown[c].map(pct)
    lines += [f"People's photos (`{reports.REALWORLD.command}`, {data.get('date', '?')}; the whole-photo columns are the "
              "same run's answers before the stage):", "", md(shown, as_written=True), ""]
    lines += _localised_robustness(root)
    lines += ["Targets (issue #28):", "", targets_table(localisation_checks(table, record, root)), ""]
    return lines


def _localised_robustness(root=None) -> list[str]:
    """The robustness suite's top-1 with and without the stage (``tables.robustness_localised``)."""
    try:
        table = tables.robustness_localised(root)
    except art.ArtifactMissing:
        return []
    if table.empty:
        return [f"The robustness suite has not been run with the stage yet (`{reports.ROBUSTNESS.command}`).", ""]
    for c in table.columns[1:]:
        table[c] = table[c].map(pct)
    return [f"The test split under photo-like shifts (`{reports.ROBUSTNESS.command}`, the shifted square taken as the "
            "photo; the whole-photo columns are the same pass's answers before the stage; the 'not sure' shares are in "
            "\"Robustness\"). Held-out species with the stage: the unknown-species paragraph of \"Real-world photos\".", "", md(table, as_written=True), ""]


def localisation_checks(table: pd.DataFrame, record, root=None) -> list[tuple[str, str, bool]]:
    """(target, measured, met) of issue #28: people's photos with the stage, the test split, the latency."""
    rows = table.set_index("model") if not table.empty else table
    int8 = tables.pretty(PRODUCTION)
    latency = reports.LATENCY_LOCALISED.read_or_none(root)
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
        checks.append((f"{tables.pretty(m)}: test top-1 within {100 * MAX_TEST_DROP:g} points of {pct(r['whole'])}", pct(r["localised"]),
                       r["localised"] >= r["whole"] - MAX_TEST_DROP))
    if lat and lat.get("p50_localised_ms") and lat.get("p50_photo_ms"):
        ratio = lat["p50_localised_ms"] / lat["p50_photo_ms"]
        checks.append((f"{int8}: batch-1 p50 with the stage ≤ 2.5× the single pass (both from a decoded photo, "
                       f"`{reports.LATENCY_LOCALISED.path}`)", f"{lat['p50_localised_ms']:.1f} ms / {lat['p50_photo_ms']:.1f} ms "
                       f"= {ratio:.2f}×", ratio <= 2.5))
    return checks


def realworld_operating_lines(root=None) -> list[str]:
    """The app's model and the teacher on people's photos at each recorded pass rate of their novelty checks."""
    models = (PRODUCTION, TEACHER)
    table = tables.realworld_operating_points(models, root)
    if table.empty:
        return []
    for c in tables.OPERATING_POINT_SHARES:
        table[c] = table[c].map(pct)
    return [f"The same photos with the novelty checks at every threshold each fit recorded ({' and '.join(tables.pretty(m) for m in models)}; "
            "the entropy rule and the flower gate unchanged; measured after the shipped share was chosen on the held-out "
            "species above, not used to choose it): a laxer check answers more of the known species' photos, less "
            "accurately, and gives more unknown flowers a species.", "", md(table, as_written=True), ""]


def confusion_lines(root=None) -> list[str]:
    """Where the app's model and the teacher go wrong on the known species' photos."""
    models = (PRODUCTION, TEACHER)
    table = tables.realworld_confusions(models, per_model=6, root=root)
    if table.empty:
        return []
    return [f"Most frequent mistakes on the known species' photos ({' and '.join(tables.pretty(m) for m in models)}; "
            "'of which answered' = given that wrong species name instead of 'not sure' or 'not a flower'):", "",
            md(table), ""]


def novelty_lines(root=None) -> list[str]:
    try:
        table = tables.novelty_table(root)
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
            f"`{Path(reports.REALWORLD_BEFORE_NOVELTY.path).name}` (Recipes table below) is the same run with the checks off.", "",
            md(table), "", *unseen_species_lines(root)]


def unseen_species_lines(root=None) -> list[str]:
    """How each "not sure" signal turns away Flowers-102 species held out of training (``bench.unseen_species``)."""
    try:
        table, data = tables.unseen_species_table(root)
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
            md(table), "", *_localised_unseen(data), *_operating_points(data, root)]


def _localised_unseen(data: dict) -> list[str]:
    """The app's rule on the held-out species with the localisation stage on, beside the same rule without it."""
    stage = data.get("mean_localised")
    if not stage:
        return []
    rule = ", ".join(f"{k} {v}" for k, v in data["localise_rule"].items())
    return ["With the localisation stage (the recorded rule: " + rule + "; each fold model finds the bloom in its own "
            "class activation map, as the INT8 file's class maps do for the shipped models; the thresholds unchanged, "
            "fitted on whole images), mean over the folds:", "",
            md(pd.DataFrame([
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


def _operating_points(data: dict, root=None) -> list[str]:
    """The app's rule on the held-out species at other pass rates of the novelty check, the chosen rate and the
    shipped one (``tables.unseen_operating_points``)."""
    table, chosen, shipped, limit = tables.unseen_operating_points(data, root)
    if table.empty:
        return []
    for c in table.columns[:4]:
        table[c] = table[c].map(pct)
    return ["The app's rule at other thresholds of the novelty check (the same folds, the entropy rule unchanged; "
            "the threshold lets the stated share of the trained species' validation images pass the check alone). "
            f"Chosen (`novelty.operating_point`): the largest share at which at most {pct(limit)} of the held-out "
            f"species' images are given a species name: {pct(chosen)}; the shipped checks are fitted with "
            f"{', '.join(pct(r) for r in shipped) or 'no recorded share'} (`{NOVELTY_CMD}`).", "",
            md(table, as_written=True), ""]


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


def trial_runs_text(present: set[str]) -> str:
    """How to reproduce each trial report that is present (the commands of ``TRIAL_RUNS``)."""
    runs = []
    for report, (models, commands) in TRIAL_RUNS.items():
        if report in present:
            steps = [*commands, f"{reports.REALWORLD.command} --artifacts DIR --gate-from artifacts --models {models} "
                                f"--output artifacts/reports/{report}"]
            runs.append(f"`{report}`: " + ", then ".join(f"`{c}`" for c in steps))
    return "; ".join(runs)


def recipe_ablation_section(root=None) -> list[str]:
    try:
        table = tables.recipe_ablation(root)
    except art.ArtifactMissing as e:
        return [str(e)]
    for c in table.columns[4:]:
        table[c] = table[c].map(pct)
    trials = trial_runs_text(set(table["report"]))
    return ["## Recipes on people's photos and on the test split", "",
            f"Each `reports/realworld*.json` is one run of `{reports.REALWORLD.command}` (`realworld.json`: the shipped "
            f"models; `{Path(reports.REALWORLD_BEFORE_NOVELTY.path).name}`: the same models with their novelty checks off, "
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
            md(table), ""]


def app_section(root=None) -> list[str]:
    data = reports.APP_PERFORMANCE.read_or_none(root)
    if data is None:
        return [f"App performance not measured yet: run `{reports.APP_PERFORMANCE.command}`."]
    targets, samples = data.get("targets", {}), data.get("round_trip_samples_s", [])
    rows = []
    for key, label, unit in (("cold_start_s", "cold start to a usable Classify page", "s"),
                             ("round_trip_p50_s", "classification round trip in the browser (median)", "s"),
                             ("classify_only_rss_mb", "server memory after a Classify-only visit", "MB"),
                             ("peak_rss_mb", "peak memory of the server, all pages visited", "MB")):
        value, target = data.get(key), targets.get(key)
        if value is None:  # a measure this report does not hold
            continue
        status = "—" if value is None or target is None else ("met" if value <= target else "**not met**")
        rows.append({"measure": label, "measured": f"{value} {unit}", "target": f"≤ {target} {unit}" if target else "—",
                     "status": status})
    return [f"## App (`{reports.APP_PERFORMANCE.command}`)", "", md(pd.DataFrame(rows)), "",
            f"Measured {data.get('date', '?')}; the first upload of the server's life took "
            f"{data.get('round_trip_first_s')} s; round trips of the {len(samples)} timed uploads ranged "
            f"{min(samples, default=float('nan'))}–{max(samples, default=float('nan'))} s (2 cores shared by "
            f"the server and the browser). Method: {data.get('method', '?')}.", ""]


def crowd_section(root=None) -> list[str]:
    """The app with 1 and 3 visitors at once (``app_benchmark --crowd N``): the server's peak and each wait."""
    runs = {n: data for n in reports.APP_CROWD_VISITORS if (data := reports.app_crowd(n).read_or_none(root))}
    if not runs:
        return [f"Crowd not measured yet: run `{reports.app_crowd(3).command}`.", ""]
    steps = {"classify": "classify a photo", "explain_gradcam": "Explain (Grad-CAM)", "explain_lime": "LIME",
             "compare": "Compare", "latency_run": "Latency's Run"}
    rows = []
    for n, d in runs.items():
        t, ok = d.get("targets", {}), d.get("meets_target", {})
        rows.append({"visitors at once": n, "server peak (VmHWM)": f"{d['server_vmhwm_mb']:.0f} MB",
                     "target": f"≤ {t.get('server_vmhwm_mb', float('nan')):.0f} MB "
                               f"({'met' if ok.get('server_vmhwm_mb') else '**not met**'})",
                     "every visitor answered": "yes" if d.get("every_visitor_answered") else "**no**",
                     "first Grad-CAM of the server": f"{d.get('cold_gradcam_s')} s "
                                                    f"({'met' if ok.get('cold_gradcam_s') else '**not met**'}: "
                                                    f"≤ {t.get('cold_gradcam_s')} s)",
                     **{f"slowest wait: {label}": f"{d.get('slowest_step_s', {}).get(k, '—')} s" for k, label in steps.items()},
                     "load average before": ", ".join(f"{x:.1f}" for x in d.get("machine", {}).get("loadavg_before", []))})
    limit = next(iter(runs.values())).get("targets", {}).get("host_limit_mb")
    return [f"## The app under a crowd (`{reports.app_crowd(3).command}`)", "", md(pd.DataFrame(rows), as_written=True), "",
            f"A free Streamlit host allows about {limit:.0f} MB per app. Method: {next(iter(runs.values())).get('method', '?')}. "
            "Dates: " + ", ".join(f"{n} visitor(s) {d.get('date', '?')}" for n, d in runs.items()) + ". The load average "
            "before each run says how busy the 2 cores were with other work: the waits grow with it.", ""]


def answer_rules_section(root=None) -> list[str]:
    """The flower gate's threshold and the agreement of photos of one plant, chosen from data
    (``bench.answer_rules``, DECISIONS A9 and P7)."""
    data = reports.ANSWER_RULES.read_or_none(root)
    if data is None:
        return [f"Answer rules not chosen yet: run `{reports.ANSWER_RULES.command}`.", ""]
    gate, chosen = data["gate"], data["gate"].get("chosen") or {}
    rows = [{"threshold": f"{c['threshold']:.4f}",
             "from": "before (99% of clean validation)" if c is gate["shipped_before"]
             else f"{c['val_pass_rate_shifted']:.1%} of photo-like validation views",
             "clean validation passing": pct(c["val_pass_rate_clean"]),
             "flowering photos: 'not a flower'": pct(c["flowering_not_a_flower"]),
             "seed heads: 'not a flower'": pct(c["other_forms_not_a_flower"]),
             "non-flowers given a species": pct(c["non_flower_named"]),
             "non-flowers: 'not a flower'": pct(c["non_flower_not_a_flower"]),
             "unknown flowers given a species": pct(c["unknown_named"]),
             "shipped": "yes" if c.get("threshold") == chosen.get("threshold") else ""}
            for c in [gate["shipped_before"], *gate["candidates"]]]
    agree = data["agreement"]
    bound = str(agree["chosen"])
    val, real = agree["validation"]["split"].get(bound, {}), agree["real_photos_flowering"]["split"].get(bound, {})
    return [f"## The flower gate's threshold and photos that agree (`{reports.ANSWER_RULES.command}`)", "",
            md(pd.DataFrame(rows), as_written=True), "",
            f"The INT8 student's own answers on people's photos with the gate at each threshold; {gate['how_chosen']}. "
            f"Photos of one plant are combined when every pair's answers overlap at least {agree['chosen']} "
            f"({agree['measure']}): {pct(val.get('same'))} of the {agree['validation']['pairs_same']:,} same-species "
            f"validation pairs are split and {pct(val.get('different'))} of the different-species pairs caught; on "
            f"people's photos {pct(real.get('same'))} and {pct(real.get('different'))}. Measured {data['date']}.", ""]


def render(root=None) -> str:
    parts = ["# Results", "",
             "Generated by `python -m tools.summary` from `artifacts/`: do not edit by hand. What each number means "
             "and how it was chosen: [README.md](README.md) and [DECISIONS.md](DECISIONS.md).", ""]
    for section in (accuracy_section, training_time_section, ablation_section, ensemble_section, student_section,
                    robustness_section, realworld_section, answer_rules_section, localisation_section,
                    recipe_ablation_section, latency_section, app_section,
                    crowd_section):
        parts += section(root) + [""]
    return "\n".join(parts).rstrip() + "\n"


def headline(root=None) -> str:
    """The README's one short table: the app's model and the teacher on the test split, on people's photos and
    on this CPU (the whole story is RESULTS.md)."""
    levels = tables.levels_table(root)
    levels = levels.set_index("key") if not levels.empty else levels
    realworld = {r["model"]: r for r in (reports.REALWORLD.read_or_none(root) or {}).get("models", [])}
    p50 = tables.latency_p50(root)
    rows = []
    for name in (PRODUCTION, TEACHER):
        photos = realworld.get(name, {})
        rows.append({
            "model": tables.pretty(name),
            "test top-1 (80/10/10)": pct(levels.loc[name, "top-1 stratified"]) if name in levels.index else "—",
            "people's photos: top-1 (8 species)": pct(photos.get("top1")),
            "flowering photos: top-1 / top 3": f"{pct(photos.get('flowering', {}).get('top1'))} / "
                                              f"{pct(photos.get('flowering', {}).get('top_candidates'))}",
            "answered / accuracy when answered": f"{pct(photos.get('answered'))} / {pct(photos.get('accuracy_when_answered'))}",
            "non-flowers given a species": pct(photos.get("not_flower_given_species")),
            "CPU batch-1 p50": f"{p50[name]:.1f} ms" if name in p50 else "—"})
    lines = [md(pd.DataFrame(rows), as_written=True), ""]
    crowd = reports.app_crowd(max(reports.APP_CROWD_VISITORS)).read_or_none(root)
    alone = reports.app_crowd(min(reports.APP_CROWD_VISITORS)).read_or_none(root)
    if crowd and alone:
        lines += [f"The app: the server's peak memory with {crowd['visitors']} visitors at once pressing every heavy "
                  f"button {crowd['server_vmhwm_mb']:.0f} MB (a free host allows about "
                  f"{crowd['targets']['host_limit_mb']:.0f} MB), {alone['server_vmhwm_mb']:.0f} MB with one; the first "
                  f"Grad-CAM of a cold server {alone['cold_gradcam_s']} s with one visitor, "
                  f"{crowd['cold_gradcam_s']} s with {crowd['visitors']}.", ""]
    unmet = [f"- {target}: **{measured}**" for target, measured, ok in open_targets(root) if not ok]
    if unmet:
        lines += ["Targets not met (measured; what was tried: DECISIONS.md):", "", *unmet, ""]
    return "\n".join(lines)


def open_targets(root=None) -> list[tuple[str, str, bool]]:
    """Every issue target RESULTS.md checks: people's photos (#12) and the localisation stage (#28)."""
    checks = []
    try:
        checks += realworld_checks(tables.realworld_table(root)[0])
    except art.ArtifactMissing:
        pass
    record = art.localise_record(root)
    if record is not None:
        checks += localisation_checks(tables.localisation_table(_realworld_or_empty(root)), record, root)
    return checks


def write_between(path: Path, start: str, end: str, text: str) -> str:
    """``path``'s text with ``text`` between the ``start`` and ``end`` markers (which must be there)."""
    old = path.read_text()
    if start not in old or end not in old:
        raise SystemExit(f"{path} has no {start} … {end} markers")
    head, rest = old.split(start, 1)
    return f"{head}{start}\n{text}{end}{rest.split(end, 1)[1]}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--artifacts", default=None)
    p.add_argument("--output", type=Path, default=RESULTS)
    p.add_argument("--readme", type=Path, default=README, help="whose headline table to write (between its markers)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not what the artifacts give")
    p.add_argument("--print", action="store_true", help="print the results instead of writing the files")
    args = p.parse_args(argv)
    wanted = {args.output: render(args.artifacts),
              args.readme: write_between(args.readme, HEADLINE_START, HEADLINE_END, headline(args.artifacts))}
    if args.print:
        print(wanted[args.output], end="")
    elif args.check:
        stale = [str(path) for path, text in wanted.items() if not path.is_file() or path.read_text() != text]
        if stale:
            raise SystemExit(f"{', '.join(stale)} not what the artifacts give: run `python -m tools.summary`")
        print("RESULTS.md and the README's headline table are up to date")
    else:
        for path, text in wanted.items():
            path.write_text(text)
        print(f"{args.output} and the headline table of {args.readme} written")


if __name__ == "__main__":
    main()
