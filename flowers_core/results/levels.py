"""The five levels: accuracy, training time, the level 1 vs 2 ablation, the ensemble, the INT8 student and its portability; the model cards and training curves of the Report page."""
from __future__ import annotations

import json

import pandas as pd

from ..serve.novelty import NOVELTY_CMD
from ..shipped import catalog, paths
from ..shipped import manifest as art
from ..shipped.catalog import PRODUCTION, TEACHER
from ..shipped.splits import PROTOCOLS, SHIPPED_PROTOCOL
from .common import L1, L2, OTHER_PROTOCOL, Block, Table, _get, pct
from .latency import latency_p50, latency_p50_per_cpu
from .wording import change_words


# ---------------------------------------------------------------------------------------------
# Report page
# ---------------------------------------------------------------------------------------------
def levels_table(root=None) -> pd.DataFrame:
    """One row per model: test accuracy per protocol, size, stored latency."""
    recorded = {protocol: art.model_entries(protocol, root) for protocol in PROTOCOLS}
    latency = latency_p50(root)
    names = [m for m in catalog.NAMES if any(m in recorded[p] for p in PROTOCOLS)]
    rows = []
    for name in names:
        row = {"model": catalog.title(name), "level": catalog.get(name).level}
        ref = next(recorded[p][name] for p in PROTOCOLS if name in recorded[p])
        for protocol in PROTOCOLS:
            entry = recorded[protocol].get(name)
            test = entry.metrics.get("test", {}) if entry else {}
            row[f"top-1 {protocol}"] = test.get("top1")
            row[f"top-5 {protocol}"] = test.get("top5")
            row[f"macro-F1 {protocol}"] = test.get("macro_f1")
        shipped = recorded[SHIPPED_PROTOCOL].get(name)
        row["ECE (stratified)"] = shipped.metrics.get("test", {}).get("ece") if shipped else None
        row["params (M)"] = ref.params / 1e6 if ref.params else None
        size = ref.details.get("weights_bytes") or ref.details.get("file_bytes")
        row["size (MB)"] = size / 1e6 if size else None
        row["CPU p50 (ms)"] = latency.get(name)
        row["key"] = name
        rows.append(row)
    return pd.DataFrame(rows)


def training_curve(name: str, protocol: str = SHIPPED_PROTOCOL, root=None) -> pd.DataFrame:
    log = art.model_entry(name, protocol, root).details.get("log")
    if not log:
        raise art.ArtifactMissing(f"{catalog.title(name)} has no training log (it is not trained by gradient descent).")
    path = art.artifacts_dir(root) / log
    if not path.is_file():
        raise art.ArtifactMissing(f"{path} is missing; produce it with `{catalog.produced_by(name)}`.")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    df = pd.DataFrame(rows)
    if not df.empty:
        df.insert(0, "model", catalog.title(name))
    return df


ABLATION_FIELDS = (("augment", "augmentation"), ("aug_views", "augmented views cached"),
                   ("train_config.label_smoothing", "label smoothing"), ("train_config.weight_decay", "weight decay"),
                   ("train_config.schedule", "LR schedule"), ("train_config.lr", "learning rate"),
                   ("train_config.epochs", "max epochs"), ("best_epoch", "best epoch"))


def ablation(root=None, a: str = L1, b: str = L2) -> pd.DataFrame:
    """L1 vs L2: what changed in the recipe and what it did to each metric, per protocol."""
    rows = []
    for protocol in PROTOCOLS:
        recorded = art.model_entries(protocol, root)
        ea, eb = (recorded[n].to_dict() if n in recorded else None for n in (a, b))
        if not (ea and eb):
            continue
        for part in ("val", "test"):
            for metric in ("top1", "top5", "macro_f1", "ece", "nll"):
                va, vb = _get(ea, f"metrics.{part}.{metric}"), _get(eb, f"metrics.{part}.{metric}")
                if va is None or vb is None:
                    continue
                rows.append({"protocol": protocol, "split": part, "metric": metric, catalog.title(a): va, catalog.title(b): vb,
                             "change": vb - va})
    if not rows:
        raise art.ArtifactMissing(f"the ablation needs {a} and {b} in the manifest; run "
                                  f"`{catalog.produced_by(a)}` and `{catalog.produced_by(b)}`.")
    return pd.DataFrame(rows)


def recipe_diff(root=None, a: str = L1, b: str = L2) -> pd.DataFrame:
    ea, eb = (art.model_entry(n, SHIPPED_PROTOCOL, root).to_dict() for n in (a, b))
    rows = [{"setting": label, catalog.title(a): str(_get(ea, key)), catalog.title(b): str(_get(eb, key))}
            for key, label in ABLATION_FIELDS]
    return pd.DataFrame(rows)


def model_card(name: str, protocol: str = SHIPPED_PROTOCOL, root=None) -> dict:
    """A model card (markdown sections) built from the manifest entries of both protocols."""
    entries = {p: art.model_entries(p, root).get(name) for p in PROTOCOLS}
    entry = entries.get(protocol) or next((e for e in entries.values() if e), None)
    if entry is None:
        raise art.ArtifactMissing(f"{name} is not in the manifest; run `{catalog.produced_by(name)}`.")
    flat = entry.to_dict()
    details = {k: flat.get(k) for k in ("level", "arch", "head", "format", "members", "frozen_stages",
                                          "trunk_weights", "params", "trainable_params", "weights_bytes", "file_bytes",
                                          "augment", "best_epoch", "train_seconds", "device") if flat.get(k) is not None}
    metrics = []
    for p, e in entries.items():
        for part in ("val", "test"):
            m = e.metrics.get(part) if e else None
            if m:
                metrics.append({"protocol": p, "split": part, **{k: v for k, v in m.items() if not isinstance(v, (list, dict))}})
    return {
        "title": catalog.title(name),
        "description": entry.description,
        "details": details,
        "preprocess": entry.preprocess,
        "train_config": entry.details.get("train_config"),
        "uncertainty": entry.uncertainty or None,
        "metrics": pd.DataFrame(metrics),
        "intended_use": "Identify one of the 102 Flowers-102 species in a photo of a single flower. "
                        "Not for plants outside these species, not for safety decisions (e.g. edibility or toxicity).",
        "limitations": "Trained on ~8k photos from the Oxford Flowers-102 set: close-up, mostly centred, "
                       "mostly European/garden species. Unknown species are still mapped to one of the 102; the "
                       "entropy threshold (when recorded) flags uncertain answers.",
    }


def accuracy_section(root=None) -> list[Block]:
    table = levels_table(root)
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
            Table(pd.DataFrame(rows), as_written=True), "",
            f"Split sizes train/val/test — {sizes}. Sizes are the shipped files (levels 1–3: the fine-tuned "
            "part in fp16; the ensemble: its members). 'reference report' is the ResNet-50 GPU report "
            "this project is measured against (80/10/10 protocol)."]


def training_time_section(root=None) -> list[Block]:
    rows = []
    for protocol in PROTOCOLS:
        for name, entry in art.model_entries(protocol, root).items():
            e = entry.details
            if "train_seconds" in e:
                cache, train = e.get("feature_cache_seconds", 0.0), e["train_seconds"]
                rows.append({"protocol": protocol, "key": name, "model": catalog.title(name),
                             "device": e.get("device", "cpu"),
                             "feature caching (min)": round(cache / 60, 1), "training (min)": round(train / 60, 1),
                             "total (min)": round((cache + train) / 60, 1)})
    if not rows:
        return []
    df = pd.DataFrame(rows)
    l1_l3 = df[(df["protocol"] == SHIPPED_PROTOCOL) & df["key"].isin(catalog.names(levels=(1, 2, 3)))]["total (min)"].sum()
    return ["## Training time (recorded by each run)", "", Table(df.drop(columns="key")), "",
            f"Levels 1–3 on the 80/10/10 protocol: {l1_l3:.0f} minutes of feature caching and training in all "
            "(decoding the JPEGs once is part of level 1's caching; scoring val and test afterwards is not "
            "counted; the ensemble is computed from saved probabilities in seconds). Feature caching happens "
            "once per view and is reused by later levels and later runs: a run that finds its views already on "
            "disk records only the time to load them, and a cold run's time depends on what else ran on the "
            "2 cores at the time.", ""]


def ablation_section(root=None) -> list[Block]:
    try:
        ab = ablation(root)
    except art.ArtifactMissing as e:
        return [str(e)]
    ab = ab[ab["metric"].isin(["top1", "macro_f1", "ece", "nll"])]
    recipe = recipe_diff(root)
    return ["## Ablation: level 1 vs level 2", "", Table(recipe), "", Table(ab), ""]


def ensemble_section(root=None) -> list[Block]:
    lines = []
    for protocol in PROTOCOLS:
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


def student_section(root=None) -> list[Block]:
    manifest = art.read_manifest(root)
    shipped = art.model_entries(SHIPPED_PROTOCOL, root)
    int8 = shipped.get(PRODUCTION)
    if not int8:
        return [f"Level 5 not trained yet: run `{catalog.produced_by(PRODUCTION)}`."]
    lines = ["## Level 5: distilled INT8 student", ""]
    ens = shipped[TEACHER].top1("test") if TEACHER in shipped else None
    acc = int8.top1("test")
    p50s = latency_p50(root)
    p50 = p50s.get(PRODUCTION)
    speedup = p50s[TEACHER] / p50 if p50 and TEACHER in p50s else None
    per_cpu = latency_p50_per_cpu(PRODUCTION, root)
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
    lines += [Table(pd.DataFrame(targets, columns=["target", "measured", "status"])), "",
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
                  f"{comparison.get('threads')} threads:", "", Table(pd.DataFrame(rows)), "",
                  f"Chosen: **{comparison.get('chosen')}**: {comparison.get('reason', '')}.", ""]
        trials = (int8.quantization or {}).get("trials", [])
        if trials:
            lines += ["ONNX Runtime static-PTQ configurations tried in order (first within 0.5 point of fp32 on "
                      "val wins):", "", Table(pd.DataFrame(trials)), ""]
    u = int8.uncertainty
    if u:
        sel = u.get("selective", {}).get("test", {})
        lines += [f"Uncertainty: temperature {u['temperature']:.3f} fitted on validation; test ECE "
                  f"{change_words(u['ece_before']['test'], u['ece_after']['test'], '{:.4f}')}. Predictions with "
                  f"entropy above {u['entropy_threshold']:.3f} nats are flagged 'not sure' (threshold chosen on "
                  f"validation for {pct(u['target_selective_accuracy'])} selective accuracy); on test this keeps "
                  f"{pct(sel.get('coverage'))} of the images at {pct(sel.get('selective_accuracy'))} accuracy.", ""]
    if int8.novelty:
        lines += [f"Novelty check (`{NOVELTY_CMD}`): the INT8 file's pooled features (its second output) "
                  "against the training classes; threshold and pass rates in the real-world section's table.", ""]
    return lines


def int8_portability_lines(root=None) -> list[Block]:
    """Each kind of CPU the shipped INT8 file was re-scored on (``bench.int8_portability``), against its recording."""
    data = paths.INT8_PORTABILITY.read_or_none(root)
    if data is None:
        return [f"The INT8 file has not been re-scored on another CPU yet: run `{paths.INT8_PORTABILITY.command}`.", ""]
    runs = data["runs"]
    rows = [{"CPU": f"{run['cpu']} ({run['int8_isa']})", "onnxruntime": run["onnxruntime"], "measured": run["date"],
             "model": catalog.title(r["model"]), "split": r["split"], "images": r["n"],
             "top-1 agrees with the recording": pct(r["top1_agreement"]),
             "largest probability difference": f"{r['max_prob_difference']:.1e}",
             "top-1 now / recorded": f"{pct(r['top1_now'])} / {pct(r['top1_recorded'])}"}
            for run in runs for r in run["rows"]]
    gates = [f"on {run['cpu']} ({run['int8_isa']}) {pct(g['pass_rate_now'])} of the {g['n']} validation flowers pass "
             f"(recorded: {pct(g['pass_rate_recorded'])}), median flower score {g['median_score_now']:.4f} (recorded: "
             f"{g['median_score_recorded']:.4f})" for run in runs if (g := run.get("gate"))]
    return [f"The shipped INT8 file re-scored on the CPUs below (`{paths.INT8_PORTABILITY.command}`; the model as the app loads it, on the decoded images, against "
            "the probabilities saved when it was recorded, which are stored in fp16):", "", Table(pd.DataFrame(rows), as_written=True), "",
            *([f"The flower gate's INT8 file, re-run the same way: {'; '.join(gates)}.", ""] if gates else [])]
