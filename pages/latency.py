"""Latency: measure the models on this server's CPU, next to the stored benchmark."""
import os

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from flowers_core.app import live_latency, widgets
from flowers_core.app.handover import hand_over_to_app
from flowers_core.results import common, latency
from flowers_core.shipped import catalog
from flowers_core.shipped import manifest as art

hand_over_to_app()

st.title("⏱️ Latency")
st.write("How fast is each model on this server's CPU? Run a live measurement and compare it with the "
         "benchmark stored with the models.")

FP32 = catalog.names(runtimes=("torch", "ensemble"))
available = [m for m in catalog.NAMES if common.has_weights(m)]
live, stored = st.columns([3, 2], gap="large")

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
                                    help=f"INT8 exists for {', '.join(map(catalog.title, with_int8))} only "
                                         "(ONNX Runtime, static quantisation).")
        c3, c4, c5 = st.columns(3)
        threads = c3.slider("CPU threads", 1, max(1, os.cpu_count() or 1), min(2, os.cpu_count() or 1), key="lat_threads")
        batch = c4.select_slider("Batch size", [1, 2, 4, 8, 16, 32], value=1, key="lat_batch")
        iters = c5.slider("Iterations", 5, 200, 20, 5, key="lat_iters")
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
            for r in rows:
                if "error" in r:
                    st.info(f"{r['model']}: {r['error']}")
            ok = [r for r in rows if "error" not in r]
            if ok:
                fig = go.Figure()
                labels = [r["model"] for r in ok]  # the student's names carry their precision already
                fig.add_bar(name="median", x=labels, y=[r["p50_ms"] for r in ok], marker_color="#b5338a")
                fig.add_bar(name="95th percentile", x=labels, y=[r["p95_ms"] for r in ok], marker_color="#e7a3cf")
                fig.update_layout(barmode="group", yaxis_title="ms per batch", height=340,
                                  margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=1.1))
                fig.update_xaxes(automargin=True, tickangle=-30)
                st.plotly_chart(fig, key="lat_chart")
                st.dataframe(pd.DataFrame(ok)[["model", "precision", "threads", "batch", "p50_ms", "p95_ms",
                                               "per_image_ms"]], hide_index=True, column_config={
                    "p50_ms": st.column_config.NumberColumn("median (ms)", format="%.1f"),
                    "p95_ms": st.column_config.NumberColumn("95th pct (ms)", format="%.1f"),
                    "per_image_ms": st.column_config.NumberColumn("per photo (ms)", format="%.1f")})
            st.caption("Measured in this visitor's session on a shared server: other visitors and jobs on the "
                       "same CPU add noise, and the thread setting applies to the whole process while it runs.")

with stored:
    st.subheader("Stored benchmark")
    try:
        table = latency.latency_table()
    except art.ArtifactMissing as e:
        widgets.missing(str(e), "The stored benchmark")
    else:
        env = latency.latency_environment()
        if env:
            st.caption(f"{env.get('cpu', '?')} · {env.get('threads', '?')} threads · measured {env.get('date', '?')}")
        cols = [c for c in ("model", "p50_ms", "p95_ms", "p50_with_check_ms", "throughput_img_s", "size_bytes",
                            "model_peak_mb", "speedup_vs_ensemble", "error") if c in table.columns]
        shown = table[cols].assign(model=table["model"].map(catalog.title))
        if "size_bytes" in shown:
            shown = shown.assign(size_bytes=shown["size_bytes"] / 1e6)
        st.dataframe(shown, hide_index=True, column_config={
            "p50_ms": st.column_config.NumberColumn("median (ms)", format="%.1f"),
            "p95_ms": st.column_config.NumberColumn("95th pct (ms)", format="%.1f"),
            "p50_with_check_ms": st.column_config.NumberColumn("median, app's path (ms)", format="%.1f"),
            "throughput_img_s": st.column_config.NumberColumn("photos/s", format="%.0f"),
            "size_bytes": st.column_config.NumberColumn("size (MB)", format="%.1f"),
            "model_peak_mb": st.column_config.NumberColumn("memory (MB)", format="%.0f"),
            "speedup_vs_ensemble": st.column_config.NumberColumn("× faster than L4", format="%.1f")})
        st.caption("Median, app's path: the logits plus the novelty check's features and score.")
        by_cpu = latency.latency_other_cpus()
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
