"""Compare: the same photo through the student, the ensemble and each ensemble member."""
import streamlit as st

from flowers_core import catalog, tables
from flowers_core.app import ui

st.title("⚖️ Compare models")
st.write("The same photo through the small, fast **student** model and the large **ensemble** "
         "(and each of its three members): do they agree, and how long does each take?")

# in the page, not the sidebar: a phone keeps the sidebar closed
use_int8 = st.toggle("Student in INT8 (the model the app uses)", value=True, key="cmp_int8")
student = catalog.PRODUCTION if use_int8 else catalog.fp32_twin(catalog.PRODUCTION)
names = [student, catalog.TEACHER, *catalog.names(levels=(1, 2, 3))]
loaded, problems = {}, []
with st.spinner(f"Loading the {len(names)} models (a few seconds on the first visit)…"):
    for name in names:
        if not tables.has_weights(name):
            problems.append(f"**{tables.pretty(name)}**: not available — produce it with "
                            f"`{catalog.produced_by(name)}`.")
            continue
        p, err = ui.try_predictor(name)
        if p is None:
            problems.append(f"**{tables.pretty(name)}**: {err}")
        else:
            loaded[name] = p
for msg in problems:
    st.info(msg, icon="ℹ️")
if not loaded:
    ui.missing("No model can be loaded from this copy of the artifacts.", "The comparison")
    st.stop()

photo = ui.photo_picker("compare", gallery="select", camera=False)
img, notes = ui.photo_image(photo, "Choose a photo to compare the models on it.")
ui.show_notes(notes)

preds = {name: p.predict(img) for name, p in loaded.items()}
classes = next(iter(loaded.values())).classes
st.image(img, width=220)

cols = st.columns(len(preds))
for col, (name, pred) in zip(cols, preds.items()):
    with col:
        st.markdown(f"**{tables.pretty(name)}**")
        st.markdown(f"{ui.display_name(pred.label)} · {pred.prob:.0%}")
        if pred.verdict != "species":
            st.caption(ui.verdict_text(pred)[0])
        st.caption(f"{pred.latency_ms:.0f} ms")
        st.plotly_chart(ui.top5_chart(pred.top5, height=220, narrow=True), key=f"top5_{name}")

s = student if student in preds else None
r = catalog.TEACHER if catalog.TEACHER in preds else None
table = tables.comparison_table(preds, [ui.display_name(c) for c in classes], s, r)
table["answer"] = table["answer"].map(ui.display_name)
if s and r:
    kind, text = ui.agreement(preds[s], preds[r])
    {"agree": st.success, "disagree": st.warning, "unnamed": st.info}[kind](text)
shares = [c for c in table.columns if c.startswith("P(") or c == "confidence"]
table[shares] = table[shares] * 100  # whole percents, like the rest of the page
ui.scroll_sideways_on_phone("compare_table", 720)  # every column readable, the strip scrolled sideways
st.dataframe(table, hide_index=True, key="compare_table", column_config={
    **{c: st.column_config.NumberColumn(format="%.0f%%") for c in shares},
    "entropy": st.column_config.NumberColumn(format="%.2f"),
    "time (ms)": st.column_config.NumberColumn(format="%.0f")})
st.caption("Times are single-photo CPU latencies measured just now (preprocessing + model); the ensemble "
           "runs its three members one after another.")
