"""Classify (home): one photo of a flower in, the species out, in plain words. One question at a time: a new
photo is a new question; up to three photos are combined only when the visitor adds them as the same plant."""
import streamlit as st

from flowers_core.app import picker, resources, widgets
from flowers_core.serve import words
from flowers_core.shipped import catalog

st.title("🌼 Which flower is this?")
st.write("Upload or take a photo of one flower and I'll tell you which of the 102 species I know it is.")

clf, skipped = resources.default_classifier()
if clf is None:
    widgets.missing("No trained model was found in this copy of the app. " + " ".join(skipped[-1:]),
               "The flower identifier")
    st.stop()

left, right = st.columns([2, 3], gap="large")
with left:
    picker.photo_picker("classify", gallery=None)
photos = picker.current_photos()
if not photos:  # before a question: the examples here; after one, below the answer (a phone shows it first)
    with left:
        st.caption("…or try one of these example photos:")
        picker.example_gallery("classify", "compact")  # small and side by side: a phone's landing page stays short
    with right:  # a photo being replaced: the last answer, greyed, till the new one's arrives
        if not picker.show_previous_answer("classify"):
            st.info("Your answer will appear here.")
    st.stop()

with right:
    loaded = picker.photo_images(photos, None, remove_key="classify")
    preds = picker.answers_once(clf, loaded)  # the same photos are answered (and timed) once
    several = len(loaded) > 1
    # photos are combined only when all their answers agree; a different flower is named, never outvoted
    pred, agreement = clf.answer(preds)
    disagree = bool(agreement.apart)
    latency_ms = sum(p.latency_ms for p in preds)
    refs = resources.reference_photos()

    headline, detail = (words.DIFFERENT_FLOWERS_HEADLINE, "") if disagree else words.verdict_text(pred, several)
    picker.remember_answer("classify", headline, detail, loaded[0][1])  # kept, greyed, while a new photo uploads
    if disagree:
        widgets.show_disagreement(preds, agreement, loaded)
    else:
        widgets.show_verdict(pred, several)
        if several and (why := words.combined_doubt(preds, pred)):  # less sure than its surest photo: why
            st.info(why, icon="ℹ️")
    picker.scroll_to_answer()
    st.page_link("app_pages/species.py", label=f"I know {len(clf.classes)} species: see them all", icon="🌸")
    if several:
        st.caption(words.several_caption(agreement, len(loaded)))
    else:
        first, img, notes = loaded[0]
        name = words.plain(first.name) if first.source != "example" else None
        if not widgets.show_where_looked(img, pred, width=360, caption=name):  # the photo, with where it looked
            st.image(img, caption=name, width=360)
        picker.show_notes(notes)
    truth = picker.example_truth(photos[0]) if not several else None
    metric = words.confidence_metric(pred) if not disagree else None
    c1, c2 = st.columns(2)
    if metric:
        label, value, help_text = metric
        c1.metric(label, value, help=help_text)
    (c2 if metric else c1).metric("Time taken", f"{latency_ms:.0f} ms")
    if truth is not None:
        ok = truth == pred.label and pred.verdict == "species"
        st.caption(f"{'✅' if ok else 'ℹ️'} This example photo is {words.with_article(truth)}.")
    if not disagree:
        widgets.show_candidates(pred, clf.classes, refs)

    if several:
        st.markdown("**Each photo on its own**")
        for col, (one, img, notes), own in zip(st.columns(len(loaded)), loaded, preds):
            with col:
                st.image(img, width="stretch")
                st.caption(words.plain(one.name))
                st.markdown(f"**{words.verdict_text(own)[0]}**")
                if line := words.own_answer_line(own):
                    st.caption(line)
                picker.show_notes(notes)
                picker.remove_button(photos.index(one), "classify")  # its place among all the photos
    picker.add_photo_box("classify")
    if not disagree:  # a chart for a species answer; a hedged one's species ranked without scores
        widgets.show_top_guesses(pred, several)

    with st.expander("Technical details"):
        img = loaded[0][1]
        rows = [("Model", f"{catalog.title(clf.name)} ({clf.entry.description})")]
        if several:
            rows.append(("Photos", f"{len(loaded)}, " + ("not combined: their answers do not all overlap enough "
                                                         "(serve.answer.agreeing_photos)" if disagree else "combined: "
                                                         "the mean of their log-probabilities, renormalised; the mean "
                                                         "flower score and typicality; the verdict recomputed from "
                                                         "those")))
        rows += [
            ("Verdict", pred.verdict + (" (first photo)" if disagree else "")),
            ("Prediction entropy", f"{pred.entropy:.3f} nats (0 = certain, 4.62 = uniform over 102 classes)"),
            ("Uncertainty threshold", f"{clf.threshold:.3f} (above it the answer is 'not sure')"
             if clf.threshold is not None else "none recorded for this model"),
            ("Temperature", f"{clf.temperature:.3f}"),
            ("Flower score", f"{pred.flower_score:.3f} (below {clf.flower_threshold:.3f}: not a flower)"
             if pred.flower_score is not None else "no flower gate in this copy (python -m train.gate)"),
        ]
        if pred.typicality is not None:
            rows.append(("Typicality", f"{pred.typicality:,.1f} (below {clf.typicality_threshold:,.1f}: unlike the "
                                       "training photos, 'not sure')"))
        rows += [
            ("Input", f"{clf.preprocess.input_size}×{clf.preprocess.input_size} centre crop of a "
                      f"{clf.preprocess.resize_size} px square; decoded {img.width}×{img.height}"
                      + (" (first photo)" if several else "")),
            ("Latency", f"{latency_ms:.1f} ms for {'these photos' if several else 'this photo'} "
                        "(preprocessing + model, CPU)"),
        ]
        st.table({"": [r[0] for r in rows], "value": [r[1] for r in rows]})
        for s in skipped:
            st.caption(f"Skipped {s}")

with st.expander("Try an example photo"):
    picker.example_gallery("classify", "grid")
