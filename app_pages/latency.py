"""Latency: measure the models on this server's CPU, next to the stored benchmark."""
import os

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from flowers_core.app import live_latency, widgets
from flowers_core.results import common, wording
from flowers_core.results import latency as stored_latency
from flowers_core.serve import stages
from flowers_core.shipped import catalog, paths
from flowers_core.shipped import manifest as art


def machine_line(env: dict) -> str:
    """"CPU, INT8 instructions AVX2, 2 threads · onnxruntime 1.32.0 · torch 2.14.1" of a measurement's environment."""
    parts = [wording.machine_words(env), f"onnxruntime {env.get('onnxruntime', '?')}"]
    if env.get("torch"):
        parts.append(f"torch {env['torch']}")
    return " · ".join(parts)

def load_words(env: dict) -> str:
    """", while the machine's load was 6.4 on 2 cores (…)" from a record's load average ("" when unknown)."""
    load = env.get("load_average")
    if not load:
        return ""
    cores = env.get("cores") or 1
    busy = " (more work than cores: some of it waited for the processor)" if load[0] > cores else ""
    return f", while the machine's load was {load[0]:.1f} on {cores} cores{busy}"

def numbers_table(rows: list[dict], index: str) -> pd.DataFrame:
    """Rows of figures as text with one decimal (ratios as "2.5×", absent ones as "–"), indexed by ``index``."""
    def text(column: str, value) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "–"
        if isinstance(value, str):  # a model's error message
            return value
        return f"{value:.1f}×" if column == "live ÷ stored" else f"{value:.1f}"

    frame = pd.DataFrame(rows).set_index(index)
    return frame.apply(lambda col: col.map(lambda v, c=col.name: text(c, v)))

def raw_csv(series: dict[str, list[float]], label: str) -> bytes:
    """Every timed run as CSV (one row per run): what a reader needs to check the figures."""
    frame = pd.DataFrame([{label: name, "run": i + 1, "ms": round(ms, 4)}
                          for name, values in series.items() for i, ms in enumerate(values)])
    return frame.to_csv(index=False).encode()

def show_live_rows(rows: list[dict]) -> None:
    """The live run: what was counted and left out, the machine, median and p90 per model, each model's spread,
    its median beside the stored one, and the raw timings to download."""
    for r in rows:
        if "error" in r:
            st.info(f"{r['model']}: {r['error']}")
    ok = [r for r in rows if "error" not in r]
    if not ok:
        return
    env = stages.machine(ok[0]["threads"])  # torch's version too: the run loaded it
    n, warm = ok[0]["iters"], ok[0]["warmup"]
    st.markdown(f"**{n} timed runs per model**, after {warm} warm-up runs that are left out (the first runs load "
                f"and prepare the model, and are slower). Measured on {machine_line(env)}{load_words(env)}.")
    with_p99 = n >= stages.P99_MIN_RUNS
    stored_report = paths.LATENCY.read_or_none()
    table_rows, words, stored_env = [], [], {}
    for r in ok:
        row = {"model": r["model"], "runs on": r.get("runtime", "?"), "median (ms)": r["p50_ms"],
               "slowest 1 in 10 (ms)": r["p90_ms"]}
        if with_p99:
            row["slowest 1 in 100 (ms)"] = float(np.percentile(r["times_ms"], 99))
        if r["batch"] > 1:
            row["per photo (ms)"] = r["per_image_ms"]
        stored_ms, matched_env = stages.stored_median(stored_report, r.get("name", ""), env,
                                                      r.get("runtime"))  # a like machine only
        if stored_ms and r["batch"] == 1:
            stored_env = matched_env
            ratio, sentence = wording.latency_gap_words(r["p50_ms"], stored_ms, env, stored_env)
            row["stored median (ms)"], row["live ÷ stored"] = stored_ms, ratio
            words.append(f"**{r['model']}**: {r['p50_ms']:.1f} ms here against {stored_ms:.1f} ms stored, "
                         f"{sentence}.")
        table_rows.append(row)
    st.table(numbers_table(table_rows, "model"))  # a static table: its headers wrap on a phone
    if not with_p99:
        st.caption(f"The slowest 1 in 100 runs is not shown: {n} runs are too few to measure it "
                   f"(from {stages.P99_MIN_RUNS} runs it is).")
    if words:
        st.markdown("\n".join(f"- {w}" for w in words))
        st.caption(f"The stored figures: `{paths.LATENCY.command}` on {machine_line(stored_env)}, "
                   f"{stored_env.get('date', '?')}{load_words(stored_env)}, one model at a time, on random pixels.")
    if ok[0]["batch"] > 1:
        st.caption("The stored figures are for one photo at a time: set the batch size to 1 to compare with them.")
    elif len(words) < len(ok) and stored_report:
        runs = stages.stored_runs(stored_report)
        if not any(not stages.unmatched(env, run.get("environment", {})) for run in runs):  # no like machine
            st.caption(wording.no_stored_match_words(env, [run.get("environment", {}) for run in runs]))
    twins = [r["model"] for r in ok if r.get("runtime") == "onnxruntime" and catalog.get(r["name"]).runtime != "onnx"]
    if twins:
        st.caption(f"{', '.join(twins)} ran on {'its' if len(twins) == 1 else 'their'} ONNX "
                   f"{'twin' if len(twins) == 1 else 'twins'} (the same network exported for onnxruntime, as "
                   "Compare and the app run it); the stored benchmark timed the fp32 models on torch, so a stored "
                   "figure is set beside a live one only when both ran on the same runtime.")
    fig = go.Figure()
    for r in ok:
        fig.add_histogram(x=r["times_ms"], name=r["model"], opacity=0.65, nbinsx=30)
    fig.update_layout(barmode="overlay", xaxis_title="ms per run", yaxis_title="runs", height=300,
                      margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=1.15))
    st.plotly_chart(fig, key="lat_hist")
    st.download_button("Download every run (CSV)", raw_csv({r["model"]: r["times_ms"] for r in ok}, "model"),
                       file_name="latency_runs.csv", mime="text/csv", key="lat_csv", on_click="ignore")

def show_stages(measured) -> None:
    """The stages' median and p90, live (when run) beside the stored benchmark's."""
    stored = paths.LATENCY_STAGES.read_or_none()
    if measured is None and stored is None:
        st.caption(f"No stored timing of the stages yet (`{paths.LATENCY_STAGES.command}`).")
        return
    live = None
    beside = stored is not None  # the stored timing in the live one's table: only when measured on a like machine
    if measured is not None:
        times, env = measured
        live = {stage: stages.summarise(times[stage]) for stage in (*stages.STAGES, "total")}
        n = live["total"]["runs"]
        st.markdown(f"**Live: {n} runs**, after 3 warm-up runs that are left out, on {machine_line(env)}"
                    f"{load_words(env)}.")
        beside = stored is not None and not stages.unmatched(env, stored["environment"])

    def stage_table(with_live: bool, with_stored: bool) -> None:
        rows = []
        for stage in (*stages.STAGES, "total"):
            row = {"stage": stage}
            if with_live:
                row |= {"median here (ms)": live[stage]["p50_ms"], "slowest 1 in 10 here (ms)": live[stage]["p90_ms"]}
            if with_stored:
                row |= {"median stored (ms)": stored["stages"][stage]["p50_ms"],
                        "slowest 1 in 10 stored (ms)": stored["stages"][stage]["p90_ms"]}
            rows.append(row)
        st.table(numbers_table(rows, "stage"))

    if live is not None:
        stage_table(True, beside)
        if stored is not None and not beside:
            st.caption(wording.no_stored_match_words(env, [stored["environment"]]) + " The stored timing follows "
                       "on its own.")
    if stored is not None and (live is None or not beside):
        stage_table(False, True)
    if stored is not None:
        env = stored["environment"]
        st.caption(f"Stored: `{paths.LATENCY_STAGES.command}`, {stored['runs']} runs after {stored['warmup']} "
                   f"warm-up runs, on {machine_line(env)}, {env.get('date', '?')}{load_words(env)}. Classify is two passes of the model when a closer view is cut: the stored benchmark's "
                     "single pass on random pixels is faster.")
    if live is not None and beside:
        fig = go.Figure()
        fig.add_bar(name="here", y=list(stages.STAGES), x=[live[s]["p50_ms"] for s in stages.STAGES],
                    orientation="h", marker_color="#b5338a")
        fig.add_bar(name="stored", y=list(stages.STAGES), x=[stored["stages"][s]["p50_ms"] for s in stages.STAGES],
                    orientation="h", marker_color="#e7a3cf")
        fig.update_layout(barmode="group", xaxis_title="median ms", height=300, margin=dict(l=10, r=10, t=10, b=10),
                          legend=dict(orientation="h", y=1.15), yaxis=dict(autorange="reversed"))
        st.plotly_chart(fig, key="stage_chart")
    if measured is not None:
        st.download_button("Download every run of every stage (CSV)", raw_csv(measured[0], "stage"),
                           file_name="app_path_runs.csv", mime="text/csv", key="stage_csv", on_click="ignore")

st.title("⏱️ Latency")
st.write("How fast is each model on this server's processor (CPU)? Run a live measurement and compare it with "
         "the benchmark stored with the models. Times are in milliseconds (ms, thousandths of a second); the "
         "**median** is the middle run (half were faster), \"slowest 1 in 10\" the time 9 runs in 10 beat. Each "
         "measurement names the processor, the threads and the versions of onnxruntime and torch, the libraries "
         "that run the models.")

FP32 = catalog.names(runtimes=("torch", "ensemble"))
available = [m for m in catalog.NAMES if common.has_weights(m)]
live, stored = st.container(), st.container()  # one above the other: side by side, the tables were cut

with live:
    st.subheader("Live measurement")
    if not available:
        widgets.missing("No model weights are shipped in this copy; run `python -m train.all`.", "Live measurement")
    else:
        c1, c2 = st.columns(2)
        fp32_default = [catalog.fp32_twin(catalog.PRODUCTION), catalog.TEACHER]
        chosen = c1.multiselect("Models", [m for m in FP32 if m in available] or FP32,
                                default=[m for m in fp32_default if m in available][:2]
                                or [m for m in FP32 if m in available][:1],
                                format_func=catalog.title, key="lat_models")
        with_int8 = [m for m in FP32 if catalog.int8_twin(m)]
        precisions = c2.multiselect("Precision", ["fp32", "INT8"], default=["fp32", "INT8"], key="lat_prec",
                                    help="fp32: the model's numbers at full precision (32 bits). INT8: stored in 8 "
                                      f"bits, smaller and faster; it exists for {', '.join(map(catalog.title, with_int8))} "
                                      "only, and is what the app answers with.")
        c3, c4, c5 = st.columns(3)
        threads = c3.slider("CPU threads", 1, max(1, os.cpu_count() or 1), min(2, os.cpu_count() or 1), key="lat_threads",
                            help="How many of the processor's cores one model may use at once.")
        batch = c4.select_slider("Batch size", [1, 2, 4, 8, 16, 32], value=1, key="lat_batch",
                                 help="Photos sent to the model together in one call (the app sends one).")
        iters = c5.slider("Runs", 5, 200, 20, 5, key="lat_iters",
                          help="Timed runs per model, after 3 warm-up runs that are not counted. The slowest 1 in "
                               "100 is shown from 100 runs.")
        names = [m for m in chosen if "fp32" in precisions]
        if "INT8" in precisions:
            for m in chosen:
                int8 = catalog.int8_twin(m)
                if int8 and int8 in available:
                    names.append(int8)
                elif int8:
                    st.caption(f"ℹ️ {catalog.title(int8)} is not available (`{catalog.produced_by(int8)}`).")
        if "INT8" in precisions and any(not catalog.int8_twin(m) for m in chosen):
            st.caption(f"Only {', '.join(map(catalog.title, with_int8))} has an INT8 version; "
                       "the other models are measured in fp32.")
        if st.button("Run", type="primary", disabled=not names, key="lat_run"):
            bar = st.progress(0.0, text="Loading the models (a few seconds the first time), then measuring…")
            rows = live_latency.live_latency(names, threads, batch, iters,
                                   progress=lambda i, n: bar.progress(i / n, text=f"Measuring… {i}/{n}"))
            bar.empty()
            st.session_state["lat_rows"] = rows
        rows = st.session_state.get("lat_rows")
        if rows:
            show_live_rows(rows)

    st.subheader("The app's path, stage by stage")
    st.write("What a visitor waits for between sending a photo and reading the answer, with the model the app "
             "answers with, on the app's example photos. Each stage in plain words:")
    st.markdown("\n".join(f"- **{stage}**: {stages.STAGE_HELP[stage]}" for stage in stages.STAGES))
    runs = st.select_slider("Runs", [16, 40, 100, 200], value=40, key="stage_runs",
                            help="Each run sends one example photo through the whole path, the photos in turn. "
                                 "The slowest 1 in 100 is shown only from 100 runs.")
    if st.button("Time the app's path", key="stage_run"):
        bar = st.progress(0.0, text="Timing the app's path…")
        try:
            st.session_state["stage_times"] = live_latency.live_stages(
                runs, min(2, os.cpu_count() or 1), progress=lambda i, n: bar.progress(i / n, text=f"Run {i} of {n}"))
        except art.ArtifactMissing as e:
            widgets.missing(str(e), "Timing the app's path")
        bar.empty()
    show_stages(st.session_state.get("stage_times"))

with stored:
    st.subheader("Stored benchmark")
    try:
        table = stored_latency.latency_table()
    except art.ArtifactMissing as e:
        widgets.missing(str(e), "The stored benchmark")
    else:
        env = stored_latency.latency_environment()
        if env:
            st.caption(f"{wording.machine_words(env)} · measured {env.get('date', '?')}")
        cols = [c for c in ("model", "p50_ms", "p95_ms", "p50_with_check_ms", "throughput_img_s", "size_bytes",
                            "model_peak_mb", "speedup_vs_ensemble", "error") if c in table.columns]
        shown = table[cols].assign(model=table["model"].map(catalog.title))
        if "size_bytes" in shown:
            shown = shown.assign(size_bytes=shown["size_bytes"] / 1e6)
        labels = {"p50_ms": "median (ms)", "p95_ms": "slowest 1 in 20 (ms)",
                  "p50_with_check_ms": "median with novelty check (ms)", "throughput_img_s": "photos/s in batches of 32",
                  "size_bytes": "size (MB)", "model_peak_mb": "memory (MB)", "speedup_vs_ensemble": "× faster than L4",
                  "error": "not measured"}
        st.table(numbers_table(shown.rename(columns=labels).to_dict("records"), "model"))  # headers wrap on a phone
        st.caption("One photo at a time, on random pixels, the model alone: the stage-by-stage timing above adds "
                   "the rest of the app's path. Median with novelty check: the model's answer plus its check of "
                   "how familiar the photo looks. Memory: what loading and running the model adds.")
        by_cpu = stored_latency.latency_other_cpus()
        if not by_cpu.empty:
            st.markdown("**Batch-1 median (ms) on each kind of CPU measured** (the CPU changes between machines)")
            by_cpu = by_cpu.assign(model=by_cpu["model"].map(catalog.title)).rename(
                columns=lambda c: c.replace("p50 (ms) on ", ""))
            st.dataframe(by_cpu, hide_index=True,
                         column_config={c: st.column_config.NumberColumn(format="%.1f")
                                        for c in by_cpu.columns if c != "model"})
        if {"model", "p50_ms"} <= set(table.columns):
            ok = shown[shown["p50_ms"].notna()]
            st.plotly_chart(go.Figure(go.Bar(x=ok["model"], y=ok["p50_ms"], marker_color="#b5338a"))
                            .update_layout(yaxis_title="median ms (batch 1)", height=300,
                                           margin=dict(l=10, r=10, t=10, b=10))
                            .update_xaxes(automargin=True, tickangle=-30), key="lat_stored")
