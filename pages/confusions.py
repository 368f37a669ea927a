"""Confusions: which species each model mixes up, from the saved test results (no dataset needed)."""
import plotly.express as px
import streamlit as st

from flowers_core import artifacts as art
from flowers_core import tables
from flowers_core.app import ui
from flowers_core.data import SHIPPED_PROTOCOL

st.title("🔀 Confusions")
st.write("Which flowers does a model mix up? Everything here comes from the saved test-set results.")

# the controls are in the page, not the sidebar (a phone keeps the sidebar closed)
c_model, c_protocol = st.columns([2, 1])
protocol = c_protocol.radio("Split protocol", tables.PROTOCOLS, key="conf_protocol", horizontal=True,
                            help="stratified: 80/10/10 of all images; official: the dataset's 10-per-class "
                                 "train/val split.")
names = tables.models(protocol)
if not names:
    ui.missing(f"No model has results for the {protocol} protocol; run `python -m train.all --protocol {protocol}`.",
               "This page")
    st.stop()
# opens on the model the app answers with (Classify's preference), when it has results here
app_model = next((n for n in ui.CLASSIFIER_PREFERENCE if n in names), names[0])
name = c_model.selectbox("Model", names, index=names.index(app_model), key="conf_model",
                         format_func=lambda n: tables.pretty(n) + (" — the model the app uses" if n == app_model else ""))

try:
    classes = art.class_names()
    metrics = tables.full_metrics(name, protocol)
except art.ArtifactMissing as e:
    ui.missing(str(e), "The confusion matrix")
    st.stop()
cm = metrics["confusion"]
st.markdown(f"**{tables.pretty(name)}**, {protocol} test set: top-1 **{metrics['top1']:.1%}** on "
            f"{metrics['n']} images, {sum(cm[i][j] for i in range(len(cm)) for j in range(len(cm)) if i != j)} mistakes.")

st.subheader("Confusion matrix")
c1, c2, c3, c4 = st.columns(4)
order = c1.selectbox("Order classes by", ["accuracy", "class id", "name"], key="conf_order",
                     format_func=lambda o: {"accuracy": "accuracy (worst first)"}.get(o, o))
only_errors = c2.toggle("Only classes with mistakes", value=True, key="conf_only_err")
limit = c3.slider("Classes shown", 5, len(cm), min(30, len(cm)), key="conf_limit")
normalise = c4.toggle("Row-normalised", value=False, key="conf_norm")
view = tables.confusion_view(cm, classes, order, only_errors, limit, normalise)
view = view.rename(index=ui.display_name, columns=ui.display_name)
if view.empty:
    st.success("No mistakes to show.")
else:
    fig = px.imshow(view, color_continuous_scale="Magma_r", aspect="auto",
                    labels=dict(x="predicted", y="true", color="share" if normalise else "images"))
    fig.update_layout(height=max(420, 16 * len(view)), margin=dict(l=10, r=10, t=10, b=10))
    fig.update_xaxes(tickangle=60)
    ui.scroll_sideways_on_phone("cm", 640)  # the species names alone would fill a phone's width
    st.plotly_chart(fig, key="cm")

st.subheader("Per-class accuracy")
table = tables.per_class_table(metrics, classes)
table = table.assign(**{c: table[c].map(ui.display_name, na_action="ignore")
                        for c in ("class", "most often mistaken for") if c in table.columns})
st.dataframe(table, hide_index=True, height=300, column_config={
    "accuracy": st.column_config.ProgressColumn(min_value=0, max_value=1, format="percent"),
    "precision": st.column_config.NumberColumn(format="percent")})

thumbs = ui.thumbnails(SHIPPED_PROTOCOL)
st.subheader("Most confused pairs")
pairs = tables.confused_pairs(cm, [ui.display_name(c) for c in classes], k=10)
if pairs.empty:
    st.success("This model made no mistakes on this test set.")
else:
    st.dataframe(pairs.drop(columns=["true id", "predicted id"]), hide_index=True,
                 column_config={"share of true class": st.column_config.NumberColumn(format="percent")})
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

st.subheader("Test images this model got wrong")
try:
    wrong = tables.wrong_predictions(name, protocol)
except art.ArtifactMissing as e:
    ui.missing(str(e), "The list of mistakes")
    st.stop()
if wrong.empty:
    st.success("No wrong test images.")
    st.stop()
f1, f2 = st.columns(2)
true_filter = f1.selectbox("True class", ["all"] + sorted(wrong["true class"].unique()), key="wrong_true",
                           format_func=lambda c: c if c == "all" else ui.display_name(c))
shown = f2.slider("Images shown", 4, min(96, max(4, len(wrong))), min(24, max(4, len(wrong))), 4, key="wrong_n")
sel = wrong if true_filter == "all" else wrong[wrong["true class"] == true_filter]
sel = sel.assign(**{c: sel[c].map(ui.display_name) for c in ("true class", "predicted")})
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
                 column_config={"confidence": st.column_config.NumberColumn(format="percent"),
                                "prob. of true class": st.column_config.NumberColumn(format="percent")})
