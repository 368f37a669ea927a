"""CPU latency (``bench.latency``) and the app's own measurements (``bench.app_benchmark``): tables and sections."""
from __future__ import annotations

import pandas as pd

from ..shipped import catalog, paths
from ..shipped import manifest as art
from .common import Block, Figure, Table


# ---------------------------------------------------------------------------------------------
# Latency (written by flowers_core.bench.latency)
# ---------------------------------------------------------------------------------------------
def latency_table(root=None) -> pd.DataFrame:
    """The stored benchmark: one row per model (batch-1 p50/p95 ms, throughput, size, memory)."""
    return pd.DataFrame(paths.LATENCY.read(root)["models"])


def latency_environment(root=None) -> dict:
    try:
        data = paths.LATENCY.read(root)
    except art.ArtifactMissing:
        return {}
    return data.get("environment", {})


def _latency_runs(root=None) -> list[dict]:
    """The stored latency record, then the latest record of each other kind of CPU (newest first)."""
    try:
        data = paths.LATENCY.read(root)
    except art.ArtifactMissing:
        return []
    return [data, *data.get("other_cpus", [])]


def latency_other_cpus(root=None) -> pd.DataFrame:
    """Batch-1 p50 (ms) per model on the kinds of CPU of earlier records (one column per INT8 instruction
    set, the stored record's included), or an empty frame when only one kind was measured."""
    runs = _latency_runs(root)
    if len(runs) < 2:
        return pd.DataFrame()
    columns = {}
    for run in runs:
        env = run.get("environment", {})
        name = f"p50 (ms) on {env.get('cpu', '?')}, {env.get('int8_isa', '?')}, {str(env.get('date', '?'))[:10]}"
        columns[name] = {r["model"]: r.get("p50_ms") for r in run["models"] if "error" not in r}
    return pd.DataFrame(columns).rename_axis("model").reset_index()


def latency_p50_per_cpu(name: str, root=None) -> dict[str, float]:
    """A model's stored batch-1 p50 (ms) on each kind of CPU measured, by INT8 instruction set."""
    return {run.get("environment", {}).get("int8_isa", "?"): r["p50_ms"] for run in _latency_runs(root)
            for r in run["models"] if r.get("model") == name and r.get("p50_ms") is not None}


def latency_p50(root=None) -> dict[str, float]:
    """Per model: the stored batch-1 p50 (ms)."""
    try:
        df = latency_table(root)
    except (art.ArtifactMissing, ValueError):
        return {}
    if df.empty or "model" not in df.columns or "p50_ms" not in df.columns:
        return {}
    df = df[df["p50_ms"].notna()]
    return {str(m): float(g["p50_ms"].iloc[0]) for m, g in df.groupby("model")}


def _isa(env: dict) -> str:
    """The INT8 instruction set of the latency record's CPU, when it was recorded."""
    return f", INT8 instructions: {env['int8_isa']}" if env.get("int8_isa") else ""


def twins_section(root=None) -> list[Block]:
    """The torch models' ONNX twins (``train.onnx_twins``): what the app runs Compare, Latency and the ensemble on,
    and how close each is to its torch model on the test split."""
    rows, bounds = [], {}
    for name in catalog.names(runtimes=("torch",)):
        try:
            record = art.model_entry(name, root=root).onnx
        except art.ArtifactMissing:
            continue
        if not record:
            continue
        c = record["check"]
        bounds = c.get("bounds", bounds)
        rows.append({"model": catalog.title(name), "file": f"{record['file_bytes'] / 1e6:.1f} MB",
                     f"{c['split']} images": c["n"], "same top-1 as torch": f"{100 * c['top1_agreement']:.2f}%",
                     "largest difference of a probability": f"{c['max_prob_diff']:.4f}", "checked": c["date"]})
    if not rows:
        return ["No ONNX twins of the torch models yet: run `python -m train.onnx_twins`.", ""]
    return ["## The torch models on onnxruntime (`python -m train.onnx_twins`)", "",
            "The app runs levels 1-3, the ensemble (a vote over the three) and the fp32 student on their ONNX twins: "
            "the same networks exported with float16 weights and float32 arithmetic, so a server whose visitors "
            "never ask for a gradient method never loads torch. Each twin was checked against its torch model "
            f"(calibrated probabilities; a twin ships only within {bounds.get('max_prob_diff', '?')} and with "
            f"{100 * bounds.get('min_top1_agreement', float('nan')):.1f}% of answers the same):", "",
            Table(pd.DataFrame(rows), as_written=True), ""]


def latency_section(root=None) -> list[Block]:
    try:
        table = latency_table(root)
    except (art.ArtifactMissing, ValueError):
        return [f"Latency not measured yet: run `{paths.LATENCY.command}`."]
    env = latency_environment(root)
    if "error" in table.columns:
        table = table[table["error"].isna()]
    rounds = int(table["rounds"].max()) if "rounds" in table.columns else 1
    rows = [{"model": catalog.title(r["model"]), "batch-1 p50 (ms)": f"{r['p50_ms']:.1f}",
             "p95 (ms)": f"{r['p95_ms']:.1f}",
             "p50 with novelty check (ms)": f"{r['p50_with_check_ms']:.1f}" if pd.notna(r.get("p50_with_check_ms")) else "—", "img/s at batch 32": f"{r['throughput_img_s']:.1f}",
             "size on disk (MB)": f"{r['size_bytes'] / 1e6:.2f}", "peak memory (MB)": f"{r['model_peak_mb']:.0f}",
             "speed-up vs ensemble": f"{r['speedup_vs_ensemble']:.1f}×" if pd.notna(r.get("speedup_vs_ensemble")) else "—"}
            for r in table.to_dict("records")]
    return [f"## CPU latency (`{paths.LATENCY.command}`)", "",
            f"CPU: {env.get('cpu', '?')} ({env.get('cores', '?')} cores{_isa(env)}), {env.get('threads', '?')} threads, torch "
            f"{env.get('torch', '?')}, onnxruntime {env.get('onnxruntime', '?')}, measured {env.get('date', '?')}; "
            f"batch-1 after warm-up; each model in a fresh process, timed in {rounds} "
            "interleaved round(s), medians shown; 'with novelty check' = the app's path: the logits plus the "
            "check's features and typicality score; peak memory = the model's share of the "
            "process's peak RSS (the model and its novelty check loaded as the app loads them, after importing torch, "
            "onnxruntime and the models' code). Sizes are the shipped files (the "
            "frozen ImageNet trunk comes from the pinned wheel and is not counted).", "", Table(pd.DataFrame(rows)), "",
            *_latency_by_cpu(root)]



def latency_stages_section(root=None) -> list[Block]:
    """The app's path stage by stage (``paths.LATENCY_STAGES``), with the load the machine was under."""
    data = paths.LATENCY_STAGES.read_or_none(root)
    if data is None:
        return [f"The app's path has not been timed stage by stage yet: run `{paths.LATENCY_STAGES.command}`."]
    env = data["environment"]
    rows = [{"stage": stage, "p50 (ms)": f"{v['p50_ms']:.1f}", "p90 (ms)": f"{v['p90_ms']:.1f}",
             "p99 (ms)": f"{v['p99_ms']:.1f}" if v.get("p99_ms") is not None else "— (under 100 runs)"}
            for stage, v in data["stages"].items()]
    load = env.get("load_average") or [None]
    return [f"## The app's path, stage by stage (`{paths.LATENCY_STAGES.command}`)", "",
            f"{catalog.title(data['model'])} from an uploaded file to its answer, on the {data['photos']} shipped "
            f"example photos in turn: {data['runs']} runs after {data['warmup']} warm-up runs left out; CPU: "
            f"{env.get('cpu', '?')} ({env.get('cores', '?')} cores{_isa(env)}), {env.get('threads', '?')} threads, "
            f"onnxruntime {env.get('onnxruntime', '?')}, measured {env.get('date', '?')}"
            + (f" at a load average of {load[0]:.1f}" if load[0] is not None else "") + ". Classify counts the "
            "model's passes over the whole photo and over the closer view when one is cut.", "",
            Table(pd.DataFrame(rows)), ""]


def _latency_by_cpu(root=None) -> list[Block]:
    by_cpu = latency_other_cpus(root)
    if by_cpu.empty:
        return []
    by_cpu["model"] = by_cpu["model"].map(catalog.title)
    for c in by_cpu.columns[1:]:
        by_cpu[c] = by_cpu[c].map(lambda v: "—" if pd.isna(v) else f"{v:.1f}")
    return ["Batch-1 p50 on each kind of CPU this benchmark has run on (the latest record of each INT8 instruction "
            "set; the table above is the newest):", "", Table(by_cpu, as_written=True), ""]


def app_section(root=None) -> list[Block]:
    data = paths.APP_PERFORMANCE.read_or_none(root)
    if data is None:
        return [f"App performance not measured yet: run `{paths.APP_PERFORMANCE.command}`."]
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
    return [f"## App (`{paths.APP_PERFORMANCE.command}`)", "", Table(pd.DataFrame(rows)), "",
            f"Measured {data.get('date', '?')}; the first upload of the server's life took "
            f"{data.get('round_trip_first_s')} s; round trips of the {len(samples)} timed uploads ranged "
            f"{min(samples, default=float('nan'))}–{max(samples, default=float('nan'))} s (2 cores shared by "
            f"the server and the browser). Method: {data.get('method', '?')}.", ""]


def crowd_section(root=None) -> list[Block]:
    """The app with 1, 3 and 5 visitors at once (``app_benchmark --crowd N``): the server's peak and each wait."""
    runs = {n: data for n in paths.APP_CROWD_VISITORS if (data := paths.app_crowd(n).read_or_none(root))}
    if not runs:
        return [f"Crowd not measured yet: run `{paths.app_crowd(3).command}`.", ""]
    steps = {"classify": "classify a photo", "explain_gradcam": "Explain (first heatmap and its check)", "explain_lime": "LIME",
             "compare": "Compare", "latency_run": "Latency's Run"}
    rows = []
    for n, d in runs.items():
        t, ok = d.get("targets", {}), d.get("meets_target", {})
        rows.append({"visitors at once": n, "server peak (VmHWM)": f"{d['server_vmhwm_mb']:.0f} MB",
                     "target": f"≤ {t.get('server_vmhwm_mb', float('nan')):.0f} MB "
                               f"({'met' if ok.get('server_vmhwm_mb') else '**not met**'})",
                     "every visitor answered": "yes" if d.get("every_visitor_answered") else "**no**",
                     "first heatmap and its check on the server": f"{d.get('cold_gradcam_s')} s "
                                                    f"({'met' if ok.get('cold_gradcam_s') else '**not met**'}: "
                                                    f"≤ {t.get('cold_gradcam_s')} s)",
                     **{f"slowest wait: {label}": f"{d.get('slowest_step_s', {}).get(k, '—')} s" for k, label in steps.items()},
                     "load average before": ", ".join(f"{x:.1f}" for x in d.get("machine", {}).get("loadavg_before", []))})
    limit = next(iter(runs.values())).get("targets", {}).get("host_limit_mb")
    return [f"## The app under a crowd (`{paths.app_crowd(3).command}`)", "", Table(pd.DataFrame(rows), as_written=True), "",
            f"A free Streamlit host allows about {limit:.0f} MB per app. Method: {next(iter(runs.values())).get('method', '?')}. "
            "Dates: " + ", ".join(f"{n} visitor(s) {d.get('date', '?')}" for n, d in runs.items()) + ". The load average "
            "before each run says how busy the 2 cores were with other work: the waits grow with it.", ""]


SOAK_STEPS = {"classify": "classify", "explain_gradcam": "Explain: first heatmap and its check",
              "explain_lime": "LIME (every 5th)", "compare": "Compare", "latency_run": "Latency's Run"}


def _met(ok) -> str:
    return {True: "met", False: "**not met**"}.get(ok, "— (too few visitors)")


def soak_section(root=None) -> list[Block]:
    """The app over many visitors one after another (``app_benchmark --soak N``): memory after each, its growth, the
    peak, the memory once idle, and the waits."""
    data = paths.APP_SOAK.read_or_none(root)
    if data is None:
        return [f"Soak not measured yet: run `{paths.APP_SOAK.command}`.", ""]
    t, ok, n = data.get("targets", {}), data.get("meets_target", {}), data["visitors"]
    growth, after = data.get("growth_mb_per_visitor"), data.get("growth_after_visitor", 5)
    torch = data.get("torch_mapped", {})
    yes_no = {True: "yes", False: "no", None: "—"}
    rows = [
        {"measure": "visitors who got every answer", "measured": f"{data['visitors_answered']} of {n}",
         "target": f"all {n}", "status": "met" if data["visitors_answered"] == n else "**not met**"},
        {"measure": f"memory growth per visitor after the {after}th (least squares)",
         "measured": "—" if growth is None else f"{growth:+.2f} MB",
         "target": f"≤ {t.get('growth_mb_per_visitor')} MB", "status": _met(ok.get("growth_mb_per_visitor"))},
        {"measure": f"server peak (VmHWM) over {n} visitors", "measured": f"{data['server_vmhwm_mb']:.0f} MB",
         "target": f"≤ {t.get('server_vmhwm_mb', float('nan')):.0f} MB", "status": _met(ok.get("server_vmhwm_mb"))},
        {"measure": f"RSS after {data['idle_s']:.0f} s idle (against visitor {data.get('reference_visitor')})",
         "measured": f"{data['idle_rss_mb']:.0f} MB ({round(data['idle_rss_delta_mb']) or 0:+d} MB)"
         if data.get("idle_rss_delta_mb") is not None else f"{data['idle_rss_mb']:.0f} MB",
         "target": f"within {t.get('idle_rss_delta_mb', float('nan')):.0f} MB", "status": _met(ok.get("idle_rss_delta_mb"))},
        {"measure": "torch mapped in the server: after the first Classify / at the end",
         "measured": f"{yes_no[torch.get('after_first_classify')]} / {yes_no[torch.get('at_end')]}",
         "target": "no after Classify (torch-free)",
         "status": {False: "met", True: "**not met**"}.get(torch.get("after_first_classify"), "—")},
    ]
    waits = [{"step": label, "visitors": v["visitors"], "median (s)": f"{v['median']:.2f}", "slowest (s)": f"{v['max']:.2f}"}
             for k, label in SOAK_STEPS.items() if (v := data.get("step_s", {}).get(k))]
    m = data.get("machine", {})
    plot = paths.artifacts_dir(root) / paths.APP_SOAK_PLOT
    arena = data.get("malloc_arena_max")
    blocks: list[Block] = [
        f"## The app over many visitors (`{paths.APP_SOAK.command}`)", "",
        "A public demo that lasts: visitors one after another on one server, each in a fresh session with a "
        "different photo, the server's memory after each.", "",
        Table(pd.DataFrame(rows), as_written=True), ""]
    if waits:
        blocks += ["Each step's wait over the visitors:", "", Table(pd.DataFrame(waits), as_written=True), ""]
    if failed := data.get("failed_steps"):
        blocks += [f"{len(failed)} step(s) failed or timed out (each ended its visitor's tour): " + "; ".join(
            f"visitor {f['visitor']}, {f['step']}: {f['error'][:120]}" for f in failed[:5])
            + ("; …" if len(failed) > 5 else "") + ".", ""]
    if plot.is_file():
        blocks += [Figure(plot, f"The server's RSS after each of the {n} visitors"), ""]
    blocks += [f"Measured {data.get('date', '?')} on {m.get('cpus', '?')} × {m.get('cpu_model', '?')}, Python "
               f"{m.get('python', '?')}, load average {', '.join(f'{x:.1f}' for x in m.get('loadavg_before', []))} "
               f"before and {', '.join(f'{x:.1f}' for x in m.get('loadavg_after', []))} after; "
               f"{'MALLOC_ARENA_MAX=' + str(arena) if arena else 'glibc malloc with its default arenas'}; photos: "
               f"{data.get('photos', '?')}. Method: {data.get('method', '?')}.", ""]
    return blocks
