"""The results section of the README, generated from ``artifacts/`` (``python -m flowers_core.summary``).

Every number in it is read from files the training, benchmark and app-measurement commands wrote;
the section is rewritten between the ``results`` markers, so re-running it after a new training
run keeps the README honest.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from . import artifacts as art
from . import reports
from .data import REPO_ROOT

START, END = "<!-- results:start -->", "<!-- results:end -->"

# The targets of the issues, checked against the measured values.
TARGETS = {"level1": 0.97, "level2": 0.97, "level3": 0.97, "ensemble": 0.985, "student_int8": 0.98}
REFERENCE = {"level1": 0.9731, "level2": 0.9792, "level3": 0.9768, "ensemble": 0.9817, "student_int8": 0.978}


def pct(v) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}%"


def md(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, floatfmt=".4g")


def accuracy_section(root=None) -> list[str]:
    table = reports.levels_table(root)
    if table.empty:
        return ["No trained models yet: run `python -m train.all`."]
    rows = []
    for _, r in table.iterrows():
        key = r["key"]
        target = TARGETS.get(key)
        measured = r["top-1 stratified"]
        verdict = "—" if target is None or measured is None or pd.isna(measured) else (
            "met" if measured >= target else f"**not met** ({pct(measured)} < {pct(target)})")
        rows.append({
            "model": r["model"], "test top-1 (80/10/10)": pct(measured), "test top-1 (official)": pct(r["top-1 official"]),
            "top-5 (80/10/10)": pct(r["top-5 stratified"]), "macro-F1 (80/10/10)": pct(r["macro-F1 stratified"]),
            "ECE": "—" if pd.isna(r["ECE (stratified)"]) else f"{r['ECE (stratified)']:.3f}",
            "size (MB)": "—" if pd.isna(r["size (MB)"]) else f"{r['size (MB)']:.1f}",
            "CPU p50 (ms)": "—" if pd.isna(r["CPU p50 (ms)"]) else f"{r['CPU p50 (ms)']:.1f}",
            "target (80/10/10)": pct(target) if target else "—", "reference report": pct(REFERENCE.get(key)),
            "status": verdict,
        })
    splits = art.read_manifest(root).get("splits", {})
    sizes = ", ".join(f"{p}: {s.get('train')}/{s.get('val')}/{s.get('test')}" for p, s in splits.items())
    return ["### Accuracy (test split, scored once per shipped model)", "",
            md(pd.DataFrame(rows)), "",
            f"Split sizes train/val/test — {sizes}. Sizes are the shipped files (levels 1–3: the fine-tuned "
            "part in fp16; the ensemble: its members). 'reference report' is the ResNet-50 GPU report "
            "this project is measured against (80/10/10 protocol)."]


def ablation_section(root=None) -> list[str]:
    try:
        ab = reports.ablation(root)
    except art.ArtifactMissing as e:
        return [str(e)]
    ab = ab[ab["metric"].isin(["top1", "macro_f1", "ece", "nll"])]
    recipe = reports.recipe_diff(root)
    return ["### Ablation: level 1 vs level 2", "", md(recipe), "", md(ab), ""]


def ensemble_section(root=None) -> list[str]:
    lines = []
    for protocol in reports.PROTOCOLS:
        entry = art.read_manifest(root).get("models", {}).get(protocol, {}).get("ensemble")
        if not entry:
            continue
        corr = entry.get("error_correlation", {}).get("test", {})
        members = ", ".join(f"{m} {pct(v['test']['top1'])}" for m, v in entry.get("member_metrics", {}).items())
        pairs = ", ".join(f"{k.replace('~', ' vs ')}: {v:.2f}" for k, v in corr.items())
        lines.append(f"- **{protocol}**: ensemble {pct(entry['metrics']['test']['top1'])}; members {members}; "
                     f"pairwise error correlation (test) {pairs}.")
    return ["### Level-4 ensemble", "", *lines, ""] if lines else []


def student_section(root=None) -> list[str]:
    manifest = art.read_manifest(root)
    lines = []
    comparison = manifest.get("quantization_comparison")
    if comparison:
        rows = comparison if isinstance(comparison, list) else comparison.get("rows", [])
        if rows:
            lines += ["### INT8 path: measured comparison", "", md(pd.DataFrame(rows)), ""]
        chosen = comparison.get("chosen") if isinstance(comparison, dict) else None
        if chosen:
            lines += [f"Chosen: **{chosen}**. {comparison.get('reason', '')}", ""]
    entry = manifest.get("models", {}).get("stratified", {}).get("student_int8")
    if entry and entry.get("uncertainty"):
        u = entry["uncertainty"]
        lines += ["### Uncertainty (INT8 student)", "",
                  f"Temperature {u.get('temperature', float('nan')):.3f} fitted on validation; ECE "
                  f"{u.get('ece_before', float('nan')):.4f} before → {u.get('ece_after', float('nan')):.4f} after. "
                  f"Predictions with entropy above {u.get('entropy_threshold', float('nan')):.3f} nats are flagged "
                  f"'not sure' (chosen on validation for {pct(u.get('target_selective_accuracy'))} selective "
                  "accuracy).", ""]
    return lines


def latency_section(root=None) -> list[str]:
    try:
        table = reports.latency_table(root)
    except (art.ArtifactMissing, ValueError):
        return ["Latency not measured yet: run `python -m flowers_core.latency`."]
    env = reports.latency_environment(root)
    keep = [c for c in ("model", "precision", "p50_ms", "p95_ms", "throughput_b32_img_s", "size_mb", "peak_memory_mb")
            if c in table.columns]
    return ["### CPU latency (`python -m flowers_core.latency`)", "",
            f"CPU: {env.get('cpu', '?')}, {env.get('threads', '?')} threads, torch {env.get('torch', '?')}, "
            f"onnxruntime {env.get('onnxruntime', '?')}.", "", md(table[keep] if keep else table), ""]


def app_section(root=None) -> list[str]:
    path = art.artifacts_dir(root) / "reports" / "app_performance.json"
    if not path.is_file():
        return ["App performance not measured yet: run `python -m flowers_core.app_benchmark`."]
    data = json.loads(path.read_text())
    flat = {k: v for k, v in data.items() if isinstance(v, (int, float, str))}
    return ["### App (`python -m flowers_core.app_benchmark`)", "",
            md(pd.DataFrame([{"measure": k, "value": v} for k, v in flat.items()])), ""]


def render(root=None) -> str:
    parts = ["## Results", "",
             "Generated by `python -m flowers_core.summary` from `artifacts/` — do not edit by hand.", ""]
    for section in (accuracy_section, ablation_section, ensemble_section, student_section, latency_section,
                    app_section):
        parts += section(root) + [""]
    return "\n".join(parts).rstrip() + "\n"


def write_readme(readme: Path, root=None) -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no {START} … {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{render(root)}{END}{tail}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--artifacts", default=None)
    p.add_argument("--readme", default=str(REPO_ROOT / "README.md"))
    p.add_argument("--print", action="store_true", help="print the section instead of rewriting the README")
    args = p.parse_args(argv)
    if args.print:
        print(render(args.artifacts))
    else:
        write_readme(Path(args.readme), args.artifacts)
        print(f"results section of {args.readme} rewritten")


if __name__ == "__main__":
    main()
