"""Compare: the same photo through the student, the ensemble and each ensemble member."""
import streamlit as st

from flowers_core.app import picker, resources, widgets
from flowers_core.results import common, explore
from flowers_core.serve import words
from flowers_core.shipped import catalog

st.title("⚖️ Compare models")
st.write("The same photo through the small, fast **student** model and the large **ensemble** "
         "(and each of its three members): do they agree, and how long does each take?")
st.caption("The **ensemble** is three models that vote; the **student** is one small model trained to give the "
           "ensemble's answers. **INT8** is the student with its numbers stored in 8 bits instead of 32 (fp32): "
           "faster on a processor (the Latency page measures how much), and the model the app answers with.")

# in the page, not the sidebar: a phone keeps the sidebar closed
use_int8 = st.toggle("Student in INT8 (the model the app uses)", value=True, key="cmp_int8")
student = catalog.PRODUCTION if use_int8 else catalog.fp32_twin(catalog.PRODUCTION)
names = [student, catalog.TEACHER, *catalog.names(levels=(1, 2, 3))]
loaded, problems = {}, []
with resources.one_heavy_job("The comparison starts in a moment: another visitor's request is running."), \
        st.spinner(f"Loading the {len(names)} models (a few seconds on the first visit)…"):
    for name in names:
        if not common.has_weights(name):
            problems.append(f"**{catalog.title(name)}**: not available — produce it with "
                            f"`{catalog.produced_by(name)}`.")
            continue
        p, err = resources.try_predictor(name)
        if p is None:
            problems.append(f"**{catalog.title(name)}**: {err}")
        else:
            loaded[name] = p
for msg in problems:
    st.info(msg, icon="ℹ️")
if not loaded:
    widgets.missing("No model can be loaded from this copy of the artifacts.", "The comparison")
    st.stop()

photo = picker.photo_picker("compare", gallery="select", camera=False)
img, notes = picker.photo_image(photo, "Choose a photo to compare the models on it.")
picker.show_notes(notes)

with resources.one_heavy_job("The comparison starts in a moment: another visitor's request is running."):
    preds = {name: p.predict(img) for name, p in loaded.items()}  # every model on onnxruntime (their ONNX twins)
classes = next(iter(loaded.values())).classes
st.image(img, width=220)

cols = st.columns(len(preds))
for col, (name, pred) in zip(cols, preds.items()):
    with col:
        st.markdown(f"**{catalog.title(name)}**")
        st.markdown(f"{words.display_name(pred.label)} · {pred.prob:.0%}")
        if pred.verdict != "species":
            st.caption(words.verdict_text(pred)[0])
        st.caption(f"{pred.latency_ms:.0f} ms")
        st.plotly_chart(widgets.top5_chart(pred.top5, height=220, narrow=True), key=f"top5_{name}")

s = student if student in preds else None
r = catalog.TEACHER if catalog.TEACHER in preds else None
table = explore.comparison_table(preds, [words.display_name(c) for c in classes], s, r)
table["answer"] = table["answer"].map(words.display_name)
if s and r:
    kind, text = words.agreement(preds[s], preds[r])
    {"agree": st.success, "disagree": st.warning, "unnamed": st.info}[kind](text)
shares = [c for c in table.columns if c.startswith("P(") or c == "confidence"]
table[shares] = table[shares] * 100  # whole percents, like the rest of the page

def share_label(column: str) -> str:
    """"P(student's answer: Rose)" -> "how sure of Rose (the student's answer)"."""
    whose, _, species = column[2:-1].partition(": ")
    return f"how sure of {species} (the {whose})"

widgets.scroll_sideways_on_phone("compare_table", 720)  # every column readable, the strip scrolled sideways
st.dataframe(table, hide_index=True, key="compare_table", column_config={
    **{c: st.column_config.NumberColumn(share_label(c), format="%.0f%%",
                                        help="The share of the model's belief that goes to this species.")
       for c in shares if c.startswith("P(")},
    "confidence": st.column_config.NumberColumn("how sure", format="%.0f%%",
                                                help="The share of the model's belief that goes to its answer."),
    "entropy": st.column_config.NumberColumn(
        "doubt", format="%.2f", help="How spread the model's belief is over the 102 species: 0 when it is certain "
                                     "of one, higher when several species share it. Above a level set on "
                                     "validation photos the app answers \"not sure\"."),
    "time (ms)": st.column_config.NumberColumn("time (ms)", format="%.0f",
                                               help="Milliseconds: thousandths of a second.")})
st.caption("Times are measured just now for this one photo (resizing it and running the model), in milliseconds "
           "(thousandths of a second); the ensemble runs its three members one after another.")
