"""Report: the five levels, their training, the ablation, calibration, the data and model cards."""
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from flowers_core import artifacts as art
from flowers_core import catalog, plain, reports, tables
from flowers_core.app import ui

st.title("📊 Report")
with st.expander("Words on this page"):
    st.markdown(plain.glossary())

# --- levels --------------------------------------------------------------------------------------
st.header("The five levels")
levels = tables.levels_table()
if levels.empty:
    ui.missing("No model is recorded in the manifest; run `python -m train.all`.", "The levels table")
else:
    pct = {c: st.column_config.NumberColumn(format="percent") for c in levels.columns
           if c.startswith(("top-", "macro", "ECE"))}
    # each term explained where it appears too: a column's help is its glossary line
    helps = {c: st.column_config.NumberColumn(format="percent", help=plain.GLOSSARY[t]) for c in pct
             for t in ("top-1", "macro-F1", "ECE") if c.startswith(t)}
    st.dataframe(levels.drop(columns=["key"]), hide_index=True, column_config={
        **pct, **helps, "params (M)": st.column_config.NumberColumn(format="%.2f"),
        "size (MB)": st.column_config.NumberColumn(format="%.2f"),
        "CPU p50 (ms)": st.column_config.NumberColumn(format="%.1f")})
    missing = [m for m in catalog.NAMES if m not in set(levels["key"])]
    if missing:
        st.caption("Not produced yet: " + ", ".join(f"{tables.pretty(m)} (`{catalog.produced_by(m)}`)" for m in missing)
                   + ".")
    if levels["CPU p50 (ms)"].isna().all():
        st.caption(f"No stored latency yet (`{reports.LATENCY.command}`).")
    st.caption("Size: shipped weight files (fp16 late stages; the ImageNet trunk comes from the registry's package).")

protocol = st.radio("Protocol for the sections below", tables.PROTOCOLS, horizontal=True, key="rep_protocol")
names = tables.models(protocol)

# --- training curves -----------------------------------------------------------------------------
st.header("Training curves")
trained = [m for m in names if m in catalog.names(runtimes=("torch",))]  # the ones with a training log
if not trained:
    ui.missing(f"No trained model for the {protocol} protocol.", "Training curves")
else:
    pick = st.multiselect("Models", trained, default=trained, format_func=tables.pretty, key="rep_curves")
    frames, notes = [], []
    for m in pick:
        try:
            frames.append(tables.training_curve(m, protocol))
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

# --- ablation ------------------------------------------------------------------------------------
st.header("Ablation: Level 1 vs Level 2")
st.write("Level 2 keeps Level 1's network and changes only the training recipe (augmentation and regularisation).")
try:
    abl = tables.ablation()
    st.dataframe(abl, hide_index=True, column_config={"change": st.column_config.NumberColumn(format="%+.4f")})
    st.dataframe(tables.recipe_diff(), hide_index=True)
except art.ArtifactMissing as e:
    ui.missing(str(e), "The ablation")

# --- robustness ----------------------------------------------------------------------------------
st.header("Photos unlike the test set")
st.write("Your own photos are harder than the dataset's centred close-ups. The same test images, shifted the way "
         "real photos differ: accuracy drops, and the student says **not sure** more often instead of guessing.")
try:
    rob, info = tables.robustness_table()
    st.dataframe(rob, hide_index=True, column_config={c: st.column_config.NumberColumn(format="percent")
                                                      for c in rob.columns[1:]})
    localised = any(c.endswith(tables.WHOLE_PHOTO_ONLY) for c in rob.columns)
    st.caption(f"{info['n_images']} {info['protocol']} test images, measured {info['date']} "
               f"by `{reports.ROBUSTNESS.command}`."
               + (" The models with a “whole photo only” column find the flower first, as the app does, and look "
                  "closely at it; that column is their answer without the closer look." if localised else ""))
except art.ArtifactMissing as e:
    ui.missing(str(e), "The robustness table")

# --- real-world photos ---------------------------------------------------------------------------
st.header("People's own photos")
st.write("Web photos of 8 of the 102 species, of 3 flowers the app does not know, and everyday photos of no "
         "flower. A good answer names the right species, says **not sure** for the unknown flowers, and "
         "**not a flower** for the rest. A *not sure* answer shows its most probable species with reference "
         "photos; the two columns before the time say how often the right one is among them.")
try:
    rw, rw_species, rw_info = tables.realworld_table()
    st.dataframe(rw, hide_index=True, column_config={c: st.column_config.NumberColumn(format="percent")
                                                     for c in rw.columns[1:] if c != "time (s)"})
    st.dataframe(rw_species, hide_index=True, column_config={c: st.column_config.NumberColumn(format="percent")
                                                             for c in rw_species.columns[1:]})
    mistakes = tables.realworld_confusions((catalog.PRODUCTION, catalog.TEACHER), per_model=6)
    if not mistakes.empty:
        st.write("**Most frequent mistakes** on the known species' photos (*of which answered*: given that wrong "
                 "name instead of *not sure*):")
        st.dataframe(mistakes, hide_index=True)
    points = tables.realworld_operating_points((catalog.PRODUCTION, catalog.TEACHER))
    if not points.empty:
        st.write("**The same photos at every recorded threshold of the novelty check** (measured after the shipped one was "
                 "chosen on held-out species, below; not used to choose it): a laxer check answers more photos, less "
                 "accurately, and names more unknown flowers.")
        st.dataframe(points, hide_index=True, column_config={c: st.column_config.NumberColumn(format="percent")
                                                             for c in tables.OPERATING_POINT_SHARES})
    n = rw_info["n_images"]
    st.caption(f"{n['known']} photos of known species, {n['unknown']} of unknown flowers, {n['not_flower']} "
               f"non-flowers; measured {rw_info['date']} by `{reports.REALWORLD.command}`.")
    if rw_info["stale"]:
        st.warning(f"Stale: {', '.join(rw_info['stale'])} changed since; re-run `{reports.REALWORLD.command}`.")
except art.ArtifactMissing as e:
    ui.missing(str(e), "The real-world table")
try:
    novelty = tables.novelty_table()
    st.write("**Novelty checks.** A flower whose features lie far from every species seen in training is "
             "answered *not sure*, however confident the model's probabilities (its *softmax*, see *Words on this "
             "page*): below each model's threshold, set so "
             "that the share of the validation flowers *aimed at* pass (a share chosen on species held out of "
             "training, below).")
    st.dataframe(novelty, hide_index=True,
                 column_config={c: st.column_config.NumberColumn(format="percent")
                                for c in ("validation flowers aimed at", "validation flowers passing",
                                          "test images passing")})
except art.ArtifactMissing as e:
    ui.missing(str(e), "The novelty checks")
try:
    unseen, unseen_info = tables.unseen_species_table()
    st.write("**Species never seen in training.** Measured inside Flowers-102: a fifth of the species is held out "
             "of a model's training, and each 'not sure' signal, then the app's rule (either signal), is asked whether "
             "their photos look like the species it knows (lower passing = better; the last row's passing is the "
             "share of unknown species' photos given a species name).")
    st.dataframe(unseen, hide_index=True, column_config={c: st.column_config.NumberColumn(format="percent")
                                                         for c in unseen.columns[1:-1]})
    st.caption(f"{len(unseen_info['folds'])} folds, measured {unseen_info['date']} by `{unseen_info['command']}`.")
    points, _, _, limit = tables.unseen_operating_points(unseen_info)
    if not points.empty:
        st.write("**Where to draw the line.** The same held-out species, with the novelty check's threshold set "
                 "so that other shares of the validation flowers pass: a stricter check gives fewer unknown species "
                 "a name and answers fewer known ones. *chosen*: the largest share that gives at most "
                 f"{limit:.0%} of the unknown species' photos a "
                 "name; *shipped*: the share the app's checks use.")
        st.dataframe(points, hide_index=True, column_config={c: st.column_config.NumberColumn(format="percent")
                                                             for c in points.columns[:4]})
except art.ArtifactMissing as e:
    ui.missing(str(e), "The held-out species table")

# --- explanation methods -------------------------------------------------------------------------
def explanations_section() -> None:
    """Can the heatmaps be trusted: a card per model and method, from the test images' report."""
    from flowers_core import explanation_report

    st.header("Can the heatmaps be trusted?")
    try:
        data = reports.EXPLANATIONS.read_or_none()
    except ValueError:  # being rewritten by an older writer
        data = None
    if data is None:
        ui.missing(f"Not measured yet: run `{reports.EXPLANATIONS.command}`.", "The explanation methods' report")
        return
    st.write("Each heatmap method was checked on test photos in two ways. **Faithful**: hiding the parts a map marks "
             "most should lower the model's confidence in its answer much more than hiding the parts a *random* map "
             "marks (the *ROAD score*, in points of confidence: higher = more faithful). **Sanity check**: erasing "
             "what the model learnt (its trained layers reset to random numbers) should change the map; a map that "
             "stays the same shows the photo, not the model. The three *reference* maps know nothing of the model "
             "(random, a blob in the centre, the photo's edges): they show what a map scores without explaining "
             "anything, and fail the sanity check by design.")
    table = explanation_report.cards_table(data)
    st.dataframe(table, hide_index=True, column_config={
        "vs a random map (points, 95%)": st.column_config.TextColumn(
            help="The mean gain over a random map of the same photo, and the range it lies in with 95% confidence: "
                 "wholly above 0 = pass, wholly below = fail, across 0 = inconclusive."),
        "learning erased: same map? (rank corr.)": st.column_config.TextColumn(
            help="1 = the same ranking of the pixels, 0 = unrelated. Wholly below "
                 f"{data.get('sanity_line')} = pass, wholly above = fail.")})
    st.caption(explanation_report.sample_line(data) + " " + explanation_report.cost_line(data)
               + f" Command: `{reports.EXPLANATIONS.command}`.")
    model, method, why = explanation_report.first_choice(reports.EXPLANATIONS_VAL.read_or_none())
    st.caption(f"Explain opens on {tables.pretty(model)} with {method}: {why} (`{reports.EXPLANATIONS_VAL.command}`).")


explanations_section()

# --- calibration ---------------------------------------------------------------------------------
st.header("Calibration and selective prediction")
if not names:
    ui.missing(f"No model for the {protocol} protocol.", "Calibration")
else:
    production = (catalog.PRODUCTION, catalog.fp32_twin(catalog.PRODUCTION))
    default = next((i for i, m in enumerate(names) if m in production), 0)
    cal_model = st.selectbox("Model", names, index=default, format_func=tables.pretty, key="rep_cal_model")
    try:
        probs, _, labels = tables.test_probs(cal_model, protocol)
        rel = tables.reliability(probs, labels)
        curve, threshold, source = tables.coverage(cal_model, protocol)
    except art.ArtifactMissing as e:
        ui.missing(str(e), "Calibration")
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
        c1.caption(f"ECE (test): {ece:.3f} ({plain.GLOSSARY['ECE']})." if ece is not None else "ECE not recorded")
        before, after = unc.get("ece_before") or {}, unc.get("ece_after") or {}
        if "test" in before and "test" in after:
            # the direction is read from the numbers: scaling can raise the error on a split it was not fitted on
            on_val = (f"on the validation photos it was fitted on, the ECE {plain.change_words(before['val'], after['val'])}; "
                      if "val" in before and "val" in after else "")
            c1.caption(f"Temperature scaling (T = {unc.get('temperature', 1):.2f}; {plain.GLOSSARY['temperature scaling']}): "
                       f"{on_val}on the test photos it {plain.change_words(before['test'], after['test'])}. "
                       "The app uses the scaled probabilities.")
        fig = px.line(curve, x="coverage", y="accuracy", markers=True, title="Coverage – accuracy (test)",
                      hover_data=[c for c in ("threshold",) if c in curve.columns])
        if threshold is not None and "threshold" in curve.columns:
            kept = curve[curve["threshold"] <= threshold]
            if len(kept):
                fig.add_vline(x=float(kept["coverage"].max()), line_dash="dash",
                              annotation_text=f"entropy ≤ {threshold:.2f}")
        c2.plotly_chart(fig.update_layout(height=340), key="rep_cov")
        c2.caption(f"Answers are kept only when the entropy ({plain.GLOSSARY['entropy']}) is below a threshold; "
                   "fewer answers, higher accuracy. "
                   f"Source: `{source}`." + ("" if threshold is not None else " No threshold stored for this model."))

# --- data ----------------------------------------------------------------------------------------
st.header("The dataset")
try:
    dist = tables.class_distribution(protocol)
    parts = [p for p in ("train", "val", "test") if p in dist.columns]
    fig = px.bar(dist.sort_values("total", ascending=False), x="class", y=parts,
                 title=f"Images per class ({protocol} split: " +
                       ", ".join(f"{p} {int(dist[p].sum())}" for p in parts) + ")")
    fig.update_layout(height=380, xaxis_tickangle=60, legend_title=None, yaxis_title="images")
    st.plotly_chart(fig, key="rep_dist")
    st.caption(f"{len(dist)} classes, {int(dist['total'].min())}–{int(dist['total'].max())} images each.")
except art.ArtifactMissing as e:
    ui.missing(str(e), "The class distribution")

# --- model cards ---------------------------------------------------------------------------------
st.header("Model cards")
all_names = [m for m in catalog.NAMES if any(m in tables.models(p) for p in tables.PROTOCOLS)]
if not all_names:
    ui.missing("No model in the manifest.", "Model cards")
else:
    card_name = st.selectbox("Model", all_names, format_func=tables.pretty, key="rep_card")
    card = tables.model_card(card_name, protocol)
    st.subheader(card["title"])
    st.write(card["description"])
    st.markdown(f"**Intended use.** {card['intended_use']}\n\n**Limitations.** {card['limitations']}")
    if not card["metrics"].empty:
        st.dataframe(card["metrics"], hide_index=True)
    with st.expander("Architecture, preprocessing and training settings"):
        st.json({"details": card["details"], "preprocess": card["preprocess"],
                 "train_config": card["train_config"], "uncertainty": card["uncertainty"]}, expanded=False)
