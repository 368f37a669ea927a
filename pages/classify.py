"""Classify (home): up to three photos of one plant in, the species out, in plain words."""
import streamlit as st

from flowers_core.app import reports, ui

st.title("🌼 Which flower is this?")
st.write("Upload a photo of a flower and the app will tell you which of 102 common species it is. "
         f"Several photos of the same plant (up to {ui.MAX_PHOTOS}: the flower, a side view, the leaves) "
         "give a surer answer.")

clf, skipped = ui.default_classifier()
if clf is None:
    ui.missing("No trained model was found in this copy of the app. " + " ".join(skipped[-1:]),
               "The flower identifier")
    st.stop()

left, right = st.columns([1, 1], gap="large")
with left:
    photo = ui.photo_picker("classify", gallery="grid", multiple=True)

with right:
    photos = ui.current_photos() if photo is not None else []
    loaded = ui.photo_images(photos, "Your result will appear here.")
    preds = clf.predict_many([img for _, img, _ in loaded])
    pred = clf.combine(preds)
    refs = ui.reference_photos()
    several = len(loaded) > 1

    if not several:
        first, img, notes = loaded[0]
        st.image(img, caption=ui.plain(first.name) if first.source != "example" else None, width="stretch")
    ui.show_verdict(pred)
    if several:
        st.caption(f"One answer from your {len(loaded)} photos of the same plant (each photo's own answer is below).")
    truth = ui.example_truth(photo)
    c1, c2 = st.columns(2)
    c1.metric("Confidence", f"{pred.prob:.0%}" if pred.verdict == "species" else "—")
    c2.metric("Time taken", f"{pred.latency_ms:.0f} ms")
    if truth is not None:
        ok = truth == pred.label
        st.caption(f"{'✅' if ok else '❌'} This example photo is a **{ui.display_name(truth)}**.")
    if not several:
        ui.show_notes(loaded[0][2])
        ui.show_where_looked(img, pred)
    ui.show_candidates(pred, clf.classes, refs)

    if several:
        st.markdown("**Each photo on its own**")
        for col, (one, img, notes), own in zip(st.columns(len(loaded)), loaded, preds):
            with col:
                st.image(img, width="stretch")
                st.caption(ui.plain(one.name))
                st.markdown(f"**{ui.verdict_text(own)[0]}**")
                st.caption(f"{ui.display_name(own.label)} · {own.prob:.0%}")
                ui.show_notes(notes)
    if pred.verdict != "not_a_flower":
        st.plotly_chart(ui.top5_chart(pred.top5, "Top 5 guesses" + (" (combined)" if several else "")), key="top5")

    with st.expander("Technical details"):
        img = loaded[0][1]
        st.markdown(
            f"- Model: **{reports.pretty(clf.name)}** ({clf.entry.description})\n"
            + (f"- Photos combined: **{len(loaded)}** (mean of their log-probabilities, renormalised; mean "
               "flower score and typicality; the verdict recomputed from those)\n" if several else "")
            + f"- Prediction entropy: **{pred.entropy:.3f}** nats (0 = certain, 4.62 = uniform over 102 classes)\n"
            f"- Uncertainty threshold: "
            + (f"**{clf.threshold:.3f}** (above it the answer is flagged)" if clf.threshold is not None
               else "none recorded for this model")
            + f"\n- Temperature: {clf.temperature:.3f}\n"
            + (f"- Flower score: **{pred.flower_score:.3f}** (ImageNet mass on flower-like classes; below "
               f"**{clf.flower_threshold:.3f}** the photo is called not a flower)\n" if pred.flower_score is not None
               else "- Flower gate: not available in this copy (`python -m train.gate`)\n")
            + (f"- Typicality: **{pred.typicality:,.1f}** (closeness of the photo's features to the 102 species; "
               f"below **{clf.typicality_threshold:,.1f}** the answer is 'not sure')\n" if pred.typicality is not None
               else "")
            + f"- Verdict: `{pred.verdict}`\n"
            f"- Input: {clf.preprocess.input_size}×{clf.preprocess.input_size} centre crop of a "
            f"{clf.preprocess.resize_size} px square; decoded image {img.width}×{img.height}"
            + (" (first photo)" if several else "") + "\n"
            f"- Latency: {pred.latency_ms:.1f} ms for {'these photos' if several else 'this photo'} "
            "(preprocessing + model, CPU)"
        )
        for s in skipped:
            st.caption(f"Skipped {s}")
