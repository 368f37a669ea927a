"""Classify (home): a photo in, the species out, in plain words."""
import streamlit as st

from flowers_core import reports, ui

st.title("🌼 Which flower is this?")
st.write("Upload a photo of a flower and the app will tell you which of 102 common species it is.")

clf, skipped = ui.default_classifier()
if clf is None:
    ui.missing("No trained model was found in this copy of the app. " + " ".join(skipped[-1:]),
               "The flower identifier")
    st.stop()

left, right = st.columns([1, 1], gap="large")
with left:
    photo = ui.photo_picker("classify", gallery="grid")

with right:
    img, notes = ui.photo_image(photo, "Your result will appear here.")
    st.image(img, caption=ui.plain(photo.name) if photo.source != "example" else None, width="stretch")
    pred = clf.predict(img)

    ui.show_verdict(pred)
    truth = ui.example_truth(photo)
    c1, c2 = st.columns(2)
    c1.metric("Confidence", f"{pred.prob:.0%}" if pred.verdict == "species" else "—")
    c2.metric("Time taken", f"{pred.latency_ms:.0f} ms")
    if truth is not None:
        ok = truth == pred.label
        st.caption(f"{'✅' if ok else '❌'} This example photo is a **{ui.capitalized(truth)}**.")
    for note in notes:
        st.caption(f"ℹ️ {note}")
    if pred.verdict != "not_a_flower":
        st.plotly_chart(ui.top5_chart(pred.top5, "Top 5 guesses"), key="top5")

    with st.expander("Technical details"):
        st.markdown(
            f"- Model: **{reports.pretty(clf.name)}** ({clf.entry.get('description', '')})\n"
            f"- Prediction entropy: **{pred.entropy:.3f}** nats (0 = certain, 4.62 = uniform over 102 classes)\n"
            f"- Uncertainty threshold: "
            + (f"**{clf.threshold:.3f}** (above it the answer is flagged)" if clf.threshold is not None
               else "none recorded for this model")
            + f"\n- Temperature: {clf.temperature:.3f}\n"
            + (f"- Flower score: **{pred.flower_score:.3f}** (ImageNet mass on flower-like classes; below "
               f"**{clf.flower_threshold:.3f}** the photo is called not a flower)\n" if pred.flower_score is not None
               else "- Flower gate: not available in this copy (`python -m train.gate`)\n")
            + f"- Verdict: `{pred.verdict}`\n"
            f"- Input: {clf.preprocess.input_size}×{clf.preprocess.input_size} centre crop of a "
            f"{clf.preprocess.resize_size} px square; decoded image {img.width}×{img.height}\n"
            f"- Latency: {pred.latency_ms:.1f} ms for this photo (preprocessing + model, CPU)"
        )
        for s in skipped:
            st.caption(f"Skipped {s}")
