"""Confusions: which species each model mixes up, from the saved test results (no dataset needed)."""
import plotly.express as px
import streamlit as st

from flowers_core.app import resources, widgets
from flowers_core.results import common, explore
from flowers_core.serve import words
from flowers_core.serve.mistakes import Mistake, map_overlay
from flowers_core.shipped import catalog
from flowers_core.shipped import manifest as art
from flowers_core.shipped.paths import MISTAKE_MAPS_COMMAND
from flowers_core.shipped.splits import PROTOCOLS, SHIPPED_PROTOCOL

st.title("🔀 Confusions")
st.write("Which flowers does a model mix up? Everything here comes from the saved test-set results.")

# the controls are in the page, not the sidebar (a phone keeps the sidebar closed)
c_model, c_protocol = st.columns([2, 1])
protocol = c_protocol.radio("Split protocol", PROTOCOLS, key="conf_protocol", horizontal=True,
                            help="How the photos were divided into those the model learned from and those it is "
                                 "tested on. stratified: 80% to learn from, 10% to choose settings, 10% to test, "
                                 "each species alike (the app's models); official: the dataset's own division, "
                                 "only 10 photos per species to learn from.")
names = common.models(protocol)
if not names:
    widgets.missing(f"No model has results for the {protocol} protocol; run `python -m train.all --protocol {protocol}`.",
               "This page")
    st.stop()
# opens on the model the app answers with (Classify's preference), when it has results here
app_model = next((n for n in resources.CLASSIFIER_PREFERENCE if n in names), names[0])
name = c_model.selectbox("Model", names, index=names.index(app_model), key="conf_model",
                         format_func=lambda n: catalog.title(n) + (" — the model the app uses" if n == app_model else ""))

try:
    classes = art.class_names()
    metrics = explore.full_metrics(name, protocol)
except art.ArtifactMissing as e:
    widgets.missing(str(e), "The confusion matrix")
    st.stop()
cm = metrics["confusion"]
st.markdown(f"**{catalog.title(name)}**, {protocol} test set: its first answer is right on **{metrics['top1']:.1%}** "
            f"of {metrics['n']} photos (top-1), "
            f"{sum(cm[i][j] for i in range(len(cm)) for j in range(len(cm)) if i != j)} mistakes. The test photos "
            "were kept apart while the model was built: it never learned from them.")

st.subheader("Confusion matrix")
st.caption("Each row is the species a photo shows, each column the species the model named: the diagonal holds the "
           "right answers, every other coloured square a mix-up.")
c1, c2, c3, c4 = st.columns(4)
order = c1.selectbox("Order classes by", ["accuracy", "class id", "name"], key="conf_order",
                     format_func=lambda o: {"accuracy": "accuracy (worst first)"}.get(o, o))
only_errors = c2.toggle("Only classes with mistakes", value=True, key="conf_only_err")
limit = c3.slider("Classes shown", 5, len(cm), min(30, len(cm)), key="conf_limit")
normalise = c4.toggle("Row-normalised", value=False, key="conf_norm",
                      help="Show each row as shares of that species' photos instead of photo counts.")
view = explore.confusion_view(cm, classes, order, only_errors, limit, normalise)
view = view.rename(index=words.display_name, columns=words.display_name)
if view.empty:
    st.success("No mistakes to show.")
else:
    fig = px.imshow(view, color_continuous_scale="Magma_r", aspect="auto",
                    labels=dict(x="named by the model", y="shown in the photo", color="share" if normalise else "photos"))
    fig.update_layout(height=max(420, 16 * len(view)), margin=dict(l=10, r=10, t=10, b=10))
    fig.update_xaxes(tickangle=60)
    widgets.scroll_sideways_on_phone("cm", 640)  # the species names alone would fill a phone's width
    st.plotly_chart(fig, key="cm")

st.subheader("Per-class accuracy")
table = explore.per_class_table(metrics, classes)
table = table.assign(**{c: table[c].map(words.display_name, na_action="ignore")
                        for c in ("class", "most often mistaken for") if c in table.columns})
st.dataframe(table, hide_index=True, height=300, column_config={
    "accuracy": st.column_config.ProgressColumn(min_value=0, max_value=1, format="percent",
                                                help="The share of this species' test photos the model named right."),
    "precision": st.column_config.NumberColumn(format="percent",
                                               help="When the model names this species, how often it is right.")})

thumbs = resources.thumbnails(SHIPPED_PROTOCOL)
st.subheader("Most confused pairs")
pairs = explore.confused_pairs(cm, [words.display_name(c) for c in classes], k=10)
if pairs.empty:
    st.success("This model made no mistakes on this test set.")
else:
    st.dataframe(pairs.drop(columns=["true id", "predicted id"]), hide_index=True,
                 column_config={"true class": st.column_config.TextColumn("species in the photo"),
                                "predicted as": st.column_config.TextColumn("named as"),
                                "count": st.column_config.NumberColumn("photos"),
                                "share of true class": st.column_config.NumberColumn(
                                    "share of that species' photos", format="percent")})
    if not thumbs.pack:
        st.caption("Example thumbnails are not shipped (`python -m train.gallery --build`).")
    else:
        for _, row in pairs.head(5).iterrows():
            st.markdown(f"**{row['true class']}** → mistaken for **{row['predicted as']}** ({row['count']}×)")
            a, b = st.columns(2)
            for col, cid, label in ((a, row["true id"], row["true class"]), (b, row["predicted id"], row["predicted as"])):
                imgs = thumbs.of_class(int(cid), 4)
                if imgs:  # the name once, above the photos (a caption under each 64 px photo broke names mid-word)
                    col.caption(label)
                    col.image(imgs, width=72)

def show_mistake(m: Mistake, classes: list[str], refs) -> None:
    """One wrong test photo: where the model looked for the species it shows and for the one it chose, side by
    side, each with both probabilities' words and reference photos of that species (from the training set)."""
    true, chose = words.display_name(classes[m.true_id]), words.display_name(classes[m.predicted_id])
    st.markdown(f"**{true}** taken for **{chose}** · test photo #{m.image_id}")
    thumb = thumbs.get(m.image_id)
    left, right = st.columns(2)
    for col, heat, name, class_id, p, role in (
            (left, m.map_true, true, m.true_id, m.p_true, "the species it shows"),
            (right, m.map_predicted, chose, m.predicted_id, m.p_predicted, "the species it chose")):
        sure = f"{p:.0%}" if p >= 0.01 else "under 1%"  # "0%" read as "impossible"
        col.image(map_overlay(thumb, heat, size=160), width=160,
                  caption=f"Where it looked for {name} ({role}) · how sure it was of {name}: {sure}")
        if refs.available and (photos := refs.of_class(class_id)):
            col.caption(f"What {name} looks like (training photos):")
            col.image(photos, width=64)

st.subheader("Why this species and not that one?")
mistakes = resources.mistake_maps()
app_name = mistakes.summary.get("app_model")
if not mistakes.available:
    st.caption(mistakes.missing_message)
elif name != app_name or protocol != mistakes.summary.get("protocol"):
    st.caption(f"Shown for the model the app uses, **{catalog.title(app_name)}** on the {mistakes.summary.get('protocol')} "
               "split: pick it above to see where it looked on each photo it got wrong.")
else:
    refs = resources.reference_photos()
    pairs = mistakes.pairs()
    counts = sorted({len(ms) for _, _, ms in pairs}, reverse=True)
    st.write(f"Each test photo the app's model got wrong, twice: where the model looked for the species the photo "
             f"shows, and where it looked for the species it chose instead. Red marks the parts that "
             f"pushed it most towards that species, blue the parts that did not. The percentages are how sure it was "
             f"of each. {len(mistakes.mistakes)} photos, {len(pairs)} pairs of species"
             + (", each pair mixed up once." if counts == [1] else ", the pairs mixed up most often first."))
    shown_pairs = 5
    for true_id, predicted_id, ms in pairs[:shown_pairs]:
        for m in ms:
            show_mistake(m, classes, refs)
            st.divider()
    if len(pairs) > shown_pairs:
        with st.expander(f"The other {len(pairs) - shown_pairs} pairs"):
            for true_id, predicted_id, ms in pairs[shown_pairs:]:
                for m in ms:
                    show_mistake(m, classes, refs)
    st.caption(f"The maps are the Explain page's {mistakes.summary.get('method', 'Grad-CAM')} of "
               f"{catalog.title(mistakes.summary.get('explained_model', ''))}, the full-precision twin of the app's "
               "model (the app's own file cannot be traced back this way); the percentages are the app's model's. "
               f"They are stored as small maps ({mistakes.bytes / 1024:.0f} KB for all of them), drawn over the small "
               "test thumbnails this page already has: no test photo is added to the app "
               f"(`{MISTAKE_MAPS_COMMAND}`).")

st.subheader("Test images this model got wrong")
try:
    wrong = explore.wrong_predictions(name, protocol)
except art.ArtifactMissing as e:
    widgets.missing(str(e), "The list of mistakes")
    st.stop()
if wrong.empty:
    st.success("No wrong test images.")
    st.stop()
f1, f2 = st.columns(2)
true_filter = f1.selectbox("Species in the photo", ["all"] + sorted(wrong["true class"].unique()), key="wrong_true",
                           format_func=lambda c: c if c == "all" else words.display_name(c))
shown = f2.slider("Images shown", 4, min(96, max(4, len(wrong))), min(24, max(4, len(wrong))), 4, key="wrong_n")
sel = wrong if true_filter == "all" else wrong[wrong["true class"] == true_filter]
sel = sel.assign(**{c: sel[c].map(words.display_name) for c in ("true class", "predicted")})
st.caption(f"{len(wrong)} wrong test images, most confident mistakes first.")
if protocol == "official" and not thumbs.has_dataset:
    st.caption("Pictures for the official protocol are read from the dataset folder, which is not present: "
               "only the table is shown.")
if thumbs.available:  # photos that flow and wrap at their own size (columns stacked into one blurry column on a phone)
    rows = [(r, photo) for _, r in sel.head(shown).iterrows() if (photo := thumbs.get(int(r["image id"]))) is not None]
    if rows:
        st.image([photo for _, photo in rows], width=110,
                 caption=[f"#{int(r['image id'])} {r['true class']} → {r['predicted']} ({r['confidence']:.0%})"
                          for r, _ in rows])
with st.expander("All wrong test images (table)"):
    st.dataframe(sel.drop(columns=["true id", "predicted id"]), hide_index=True,
                 column_config={"true class": st.column_config.TextColumn("species in the photo"),
                                "predicted": st.column_config.TextColumn("named as"),
                                "confidence": st.column_config.NumberColumn("how sure of its answer", format="percent"),
                                "prob. of true class": st.column_config.NumberColumn("how sure of the right species",
                                                                                     format="percent"),
                                "entropy": st.column_config.NumberColumn(
                                    "doubt", format="%.2f",
                                    help="How spread the model's belief is over the 102 species: 0 when it is "
                                         "certain of one, higher when several share it.")})
