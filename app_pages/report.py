"""Report: the results sections of RESULTS.md (declared once in ``flowers_core.results``), then what only a page
can show: training curves, calibration plots, the dataset and the model cards."""
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from flowers_core.app import widgets
from flowers_core.results import (
    answer_rules,
    common,
    explanations,
    explore,
    levels,
    localisation,
    realworld,
    robustness,
    wording,
)
from flowers_core.shipped import catalog
from flowers_core.shipped import manifest as art
from flowers_core.shipped.splits import PROTOCOLS

# RESULTS.md's sections that a stakeholder reads here too (training time and the app's own benchmarks are on
# RESULTS.md and the Latency page)
REPORT_SECTIONS = (levels.accuracy_section, levels.ablation_section, levels.ensemble_section, levels.student_section,
                   robustness.robustness_section, realworld.realworld_section, answer_rules.answer_rules_section,
                   localisation.localisation_section,
                   localisation.recipe_ablation_section, explanations.explanations_section,
                   explanations.first_map_section)

st.title("📊 Report")
with st.expander("Words on this page"):
    st.markdown(wording.glossary())

# --- the results, as RESULTS.md has them (each section declared once in flowers_core.results) ---------
st.write("The same sections as RESULTS.md, from the committed reports; open one to read it.")
for i, section in enumerate(REPORT_SECTIONS):
    widgets.show_section(section, expanded=i == 0)

protocol = st.radio("Protocol for the sections below", PROTOCOLS, horizontal=True, key="rep_protocol")
names = common.models(protocol)

# --- training curves -----------------------------------------------------------------------------
st.header("Training curves")
trained = [m for m in names if m in catalog.names(runtimes=("torch",))]  # the ones with a training log
if not trained:
    widgets.missing(f"No trained model for the {protocol} protocol.", "Training curves")
else:
    pick = st.multiselect("Models", trained, default=trained, format_func=catalog.title, key="rep_curves")
    frames, notes = [], []
    for m in pick:
        try:
            frames.append(levels.training_curve(m, protocol))
        except art.ArtifactMissing as e:
            notes.append(str(e))
    for n in notes:
        st.caption(f"ℹ️ {n}")
    if frames:
        curves = pd.concat(frames, ignore_index=True)
        c1, c2 = st.columns(2)
        c1.plotly_chart(px.line(curves, x="epoch", y="val_acc", color="model", markers=True,
                                title="Validation accuracy").update_layout(height=320), key="rep_valacc")
        ycols = [c for c in ("train_loss", "val_loss") if c in curves.columns]
        long = curves.melt(id_vars=["model", "epoch"], value_vars=ycols, var_name="loss", value_name="value")
        c2.plotly_chart(px.line(long, x="epoch", y="value", color="model", line_dash="loss", markers=True,
                                title="Loss (train solid, validation dashed)").update_layout(height=320),
                        key="rep_loss")

# --- calibration ---------------------------------------------------------------------------------
st.header("Calibration and selective prediction")
if not names:
    widgets.missing(f"No model for the {protocol} protocol.", "Calibration")
else:
    production = (catalog.PRODUCTION, catalog.fp32_twin(catalog.PRODUCTION))
    default = next((i for i, m in enumerate(names) if m in production), 0)
    cal_model = st.selectbox("Model", names, index=default, format_func=catalog.title, key="rep_cal_model")
    try:
        probs, _, labels = explore.test_probs(cal_model, protocol)
        rel = explore.reliability(probs, labels)
        curve, threshold, source = explore.coverage(cal_model, protocol)
    except art.ArtifactMissing as e:
        widgets.missing(str(e), "Calibration")
    else:
        c1, c2 = st.columns(2)
        fig = go.Figure([go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"),
                                    name="perfect"),
                         go.Scatter(x=rel["confidence"], y=rel["accuracy"], mode="lines+markers",
                                    marker=dict(size=6 + 20 * rel["count"] / rel["count"].max()), name="model")])
        fig.update_layout(title="Reliability (test)", xaxis_title="confidence", yaxis_title="accuracy", height=340)
        c1.plotly_chart(fig, key="rep_rel")
        entry = art.model_entry(cal_model, protocol)
        unc = entry.uncertainty
        ece = entry.metrics.get("test", {}).get("ece")
        c1.caption(f"ECE (test): {ece:.3f} ({wording.GLOSSARY['ECE']})." if ece is not None else "ECE not recorded")
        before, after = unc.get("ece_before") or {}, unc.get("ece_after") or {}
        if "test" in before and "test" in after:
            # the direction is read from the numbers: scaling can raise the error on a split it was not fitted on
            on_val = (f"on the validation photos it was fitted on, the ECE {wording.change_words(before['val'], after['val'])}; "
                      if "val" in before and "val" in after else "")
            c1.caption(f"Temperature scaling (T = {unc.get('temperature', 1):.2f}; {wording.GLOSSARY['temperature scaling']}): "
                       f"{on_val}on the test photos it {wording.change_words(before['test'], after['test'])}. "
                       "The app uses the scaled probabilities.")
        fig = px.line(curve, x="coverage", y="accuracy", markers=True, title="Coverage – accuracy (test)",
                      hover_data=[c for c in ("threshold",) if c in curve.columns])
        if threshold is not None and "threshold" in curve.columns:
            kept = curve[curve["threshold"] <= threshold]
            if len(kept):
                fig.add_vline(x=float(kept["coverage"].max()), line_dash="dash",
                              annotation_text=f"entropy ≤ {threshold:.2f}")
        c2.plotly_chart(fig.update_layout(height=340), key="rep_cov")
        c2.caption(f"Answers are kept only when the entropy ({wording.GLOSSARY['entropy']}) is below a threshold; "
                   "fewer answers, higher accuracy. "
                   f"Source: `{source}`." + ("" if threshold is not None else " No threshold stored for this model."))

# --- data ----------------------------------------------------------------------------------------
st.header("The dataset")
try:
    dist = explore.class_distribution(protocol)
    parts = [p for p in ("train", "val", "test") if p in dist.columns]
    fig = px.bar(dist.sort_values("total", ascending=False), x="class", y=parts,
                 title=f"Images per class ({protocol} split: " +
                       ", ".join(f"{p} {int(dist[p].sum())}" for p in parts) + ")")
    fig.update_layout(height=380, xaxis_tickangle=60, legend_title=None, yaxis_title="images")
    st.plotly_chart(fig, key="rep_dist")
    st.caption(f"{len(dist)} classes, {int(dist['total'].min())}–{int(dist['total'].max())} images each.")
except art.ArtifactMissing as e:
    widgets.missing(str(e), "The class distribution")

# --- model cards ---------------------------------------------------------------------------------
st.header("Model cards")
all_names = [m for m in catalog.NAMES if any(m in common.models(p) for p in PROTOCOLS)]
if not all_names:
    widgets.missing("No model in the manifest.", "Model cards")
else:
    card_name = st.selectbox("Model", all_names, format_func=catalog.title, key="rep_card")
    card = levels.model_card(card_name, protocol)
    st.subheader(card["title"])
    st.write(card["description"])
    st.markdown(f"**Intended use.** {card['intended_use']}\n\n**Limitations.** {card['limitations']}")
    if not card["metrics"].empty:
        st.dataframe(card["metrics"], hide_index=True)
    with st.expander("Architecture, preprocessing and training settings"):
        st.json({"details": card["details"], "preprocess": card["preprocess"],
                 "train_config": card["train_config"], "uncertainty": card["uncertainty"]}, expanded=False)
