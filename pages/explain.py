"""Explain: where each model looks (Grad-CAM family, Level-3 attention, LIME), and how far each map can be trusted."""
from flowers_core.app.handover import hand_over_to_app

hand_over_to_app()  # a deep link opened first on a cold server: to app.py before this page's imports

import streamlit as st

from flowers_core.app import explanations, picker, resources, widgets
from flowers_core.explain import faithfulness
from flowers_core.explain import maps as explain
from flowers_core.results import common
from flowers_core.results import explanations as explanation_report
from flowers_core.serve import words
from flowers_core.shipped import catalog, paths
from flowers_core.shipped import manifest as art

st.title("🔍 Where does the model look?")
st.write("A heatmap colours the parts of the photo the model relied on for its answer: red = most, blue = least. "
         "Each map is then checked on your photo: we hide the part it marks and ask the model again. If its "
         "confidence falls much more than when a random part is hidden, the map explains the answer; if not, "
         "it does not, however convincing it looks.")
st.caption(f"The app answers with **{catalog.title(catalog.PRODUCTION)}**, a compressed copy of "
           f"{catalog.title(catalog.fp32_twin(catalog.PRODUCTION))} that runs without the heavy maths library; "
           "heatmaps need the full model, so this page explains the full one (same training, nearly always the "
           "same answer).")
try:
    FIRST_MODEL, FIRST_METHOD, FIRST_WHY = explanation_report.first_choice(paths.EXPLANATIONS_VAL.read_or_none())
    TEST_CARDS = (paths.EXPLANATIONS.read_or_none() or {}).get("models", {})
except ValueError:  # a report being rewritten by an older writer: the page opens all the same
    FIRST_MODEL, FIRST_METHOD, FIRST_WHY = (*explanation_report.FALLBACK_FIRST, "its report could not be read")
    TEST_CARDS = {}

CANDIDATES = catalog.names(runtimes=("torch",), highest_first=True)  # one network each: the student and L3-L1
available = [m for m in CANDIDATES if common.has_weights(m)]
for m in CANDIDATES:
    if m not in available:
        st.caption(f"ℹ️ {catalog.title(m)} is not available (`{catalog.produced_by(m)}`).")
if not available:
    widgets.missing("Explanations need the fp32 student or a Level 1–3 model.", "This page")
    st.stop()

# the controls are in the page, not the sidebar (a phone keeps the sidebar closed)
c_model, c_method = st.columns(2)
name = c_model.selectbox("Model", available, format_func=catalog.title, key="explain_model",
                         index=available.index(FIRST_MODEL) if FIRST_MODEL in available else 0)
method = c_method.selectbox("Method", explain.CAM_METHODS, key="explain_method",
                            index=explain.CAM_METHODS.index(FIRST_METHOD) if FIRST_METHOD in explain.CAM_METHODS else 0,
                            help=" ".join(explanation_report.PLAIN_METHOD[m] + "." for m in explain.CAM_METHODS))
st.caption(f"Opens on {catalog.title(FIRST_MODEL)} with {FIRST_METHOD}: {FIRST_WHY} (the test photos were not "
           "used to choose; their report is on the Report page).")

clf, err = resources.try_predictor(name)
if clf is None:
    widgets.missing(err, catalog.title(name))
    st.stop()

photo = picker.photo_picker("explain", gallery="select", camera=False)
img, notes = picker.photo_image(photo, "Choose a photo to explain.")
picker.show_notes(notes)

pred = clf.predict(img)
target_choice = st.radio("Explain which class?", ["The predicted class", "Another class"], horizontal=True,
                         key="explain_target_mode")
target = pred.class_id
if target_choice == "Another class":
    target = st.selectbox("Class", range(len(clf.classes)), index=pred.class_id,
                          format_func=lambda i: f"{words.display_name(clf.classes[i])} ({pred.probs[i]:.1%})",
                          key="explain_target")
st.markdown(f"**{catalog.title(name)}** predicts **{words.display_name(pred.label)}** ({pred.prob:.0%}); "
            f"explaining **{words.display_name(clf.classes[target])}**.")
if pred.verdict != "species":
    st.info(f"With this model the app would answer *{words.verdict_text(pred)[0]}* for your photo, not name a "
            "species; the heatmaps explain the model's best guess all the same.")
if widgets.show_where_looked(img, pred) and pred.localisation.used and pred.whole_photo is not None:
    whole = pred.whole_photo
    st.caption(f"The answer weighs the whole photo and a closer look at the yellow square; on the whole photo alone "
               f"it says **{words.display_name(whole.label)}** ({whole.prob:.0%}). The heatmaps below explain the whole "
               "photo's view.")
opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05, key="explain_opacity")

def test_card_note(method: str) -> None:
    """What the test photos' report says of this method on this model, when it is not a plain pass."""
    summary = TEST_CARDS.get(name, {}).get("summary", {}).get(method)
    if not summary or summary["card"]["overall"] == "pass":
        return
    gain = summary["vs_random"]["mean"]
    text = (f"On {summary['n_images']} test photos, {method} on {catalog.title(name)} beat a random map by "
            f"{100 * gain:+.1f} points of confidence on average; verdict: "
            f"{explanation_report.CARD_WORDS[summary['card']['overall']]} (Report page, “Can the heatmaps be trusted?”).")
    if method in ("Grad-CAM", "Grad-CAM++") and getattr(clf.model, "attention_available", False):
        text += (" Why: Grad-CAM assumes the model averages every part of the photo equally; this model weighs each "
                 "part by its attention (the map below), so Grad-CAM also marks parts the model barely reads, "
                 "such as sky or corners. Its attention map shows where it looks.")
    st.warning(text, icon="⚠️")

def show_trust(exp, key, samples: int = 0, explained: int | None = None) -> None:
    """The map's faithfulness on this photo for the class it explains, in a sentence and a verdict."""
    explained = target if explained is None else explained
    try:
        found = explanations.faithfulness_cached(photo.data, name, exp, explained, samples)
    except Exception as e:  # a check that fails must not take the heatmap with it
        st.caption(f"The check of this map could not run ({type(e).__name__}).")
        return
    share = faithfulness.SENTENCE_SHARE
    most, least = found.curve.at(share)
    random_most, _ = found.random.at(share)
    st.markdown(explanation_report.faithfulness_sentence(words.display_name(clf.classes[explained]), found.confidence,
                                                         share, most, random_most, least))
    st.markdown(explanation_report.verdict_words(found.verdict))
    with st.expander("How this check works"):
        st.caption(f"Hidden parts are filled in from their surroundings, so the hole itself gives no clue (the ROAD "
                   f"test). Measured at {', '.join(f'{s:.0%}' for s in found.curve.shares)} of the photo; the score "
                   f"(higher = the map explains more) is {100 * found.curve.combined:+.1f} points for this map and "
                   f"{100 * found.random.combined:+.1f} for {faithfulness.RANDOM_DRAWS} random maps; a map must beat "
                   f"them by {100 * faithfulness.MARGIN:.0f} points to count as explaining the answer.")

def show(exp, key, samples: int = 0, explained: int | None = None):
    over = exp.overlay(opacity)
    c1, c2, c3 = st.columns(3)
    c1.image(exp.view, caption="What the model sees", width="stretch")
    c2.image(exp.colored(), caption=f"{exp.method}: the heatmap alone", width="stretch")
    c3.image(over, caption=f"Heatmap over the photo (opacity {opacity:.2f})", width="stretch")
    if exp.note:
        st.caption(exp.note)
    show_trust(exp, key, samples, explained)
    st.download_button("Download overlay (PNG)", explain.to_png(over, scale=2), file_name=f"{key}.png",
                       mime="image/png", key=f"dl_{key}", on_click="ignore")

def show_method() -> None:
    st.subheader(method)
    st.caption(explanation_report.PLAIN_METHOD[method] + ".")
    test_card_note(method)
    show(explanations.explain_cached(photo.data, name, method, target), f"{name}_{method}_{target}")

def show_attention() -> None:
    st.subheader("Level-3 attention map")
    st.caption("This model's own attention: it reads the photo mostly where this map is high, whatever the "
               "species. Unlike the other maps it is part of how the model answers, not computed afterwards.")
    test_card_note("Attention")
    show(explanations.explain_cached(photo.data, name, "Attention", None), f"{name}_attention")

has_attention = clf.model is not None and getattr(clf.model, "attention_available", False)
# the map chosen to come first on validation images (explanation_report.first_choice) comes first
for part in ((show_attention, show_method) if has_attention and FIRST_METHOD == "Attention" else
             (show_method, show_attention) if has_attention else (show_method,)):
    part()
if not has_attention:
    with_attention = [m for m in available if art.model_entry(m).head == "attention"]
    if with_attention:
        st.caption(f"Pick **{catalog.title(with_attention[0])}** as the model to see its built-in attention map too.")

with st.expander("Why this species and not another?"):
    st.write("Grad-CAM of the difference between two species' scores: red where the photo makes the model prefer "
             "the first species to the second.")
    ranked = [int(i) for i in pred.probs.argsort()[::-1]]
    c_a, c_b = st.columns(2)
    species_a = c_a.selectbox("Species it prefers", ranked, index=0, key="contrast_a",
                              format_func=lambda i: f"{words.display_name(clf.classes[i])} ({pred.probs[i]:.1%})")
    species_b = c_b.selectbox("…to this one", ranked, index=1, key="contrast_b",
                              format_func=lambda i: f"{words.display_name(clf.classes[i])} ({pred.probs[i]:.1%})")
    if species_a == species_b:
        st.info("Choose two different species.")
    elif st.toggle("Show the comparison", key="contrast_on"):  # an expander's contents run even when it is closed
        with resources.one_heavy_job():
            contrast = explain.gradcam(clf.model, img, "Grad-CAM", species_a, versus=species_b)
        contrast.method = f"{words.display_name(clf.classes[species_a])} rather than {words.display_name(clf.classes[species_b])}"
        show(contrast, f"{name}_contrast_{species_a}_{species_b}", explained=species_a)

# The expander's open state is the visitor's (a key and on_change): when a spinner shows in one run and not the next
# (another visitor's job holding the lock), the elements above it shift and Streamlit draws a new expander, closed
# unless it has a state; LIME's result then arrived hidden inside it and the click looked lost (crowd run, DECISIONS P8).
with st.expander("LIME (slower, optional)", key="lime_open", on_change="rerun"):
    st.write("LIME hides random patches of similar colour and watches how the answer changes, then marks the "
             "patches that kept the answer up. It takes a few seconds to a minute.")
    samples = st.select_slider("Photos LIME tries (more: steadier map, slower)", [50, 100, 150, 300, 500], value=100,
                               key="lime_samples")
    # recorded by a callback, which Streamlit runs before the page script of the run the click starts: nothing the
    # page does in that run can drop the request, as it could a True that st.button returns to that run only
    st.button("Run LIME", key="lime_run", on_click=explanations.remember,
              kwargs={"lime_for": (photo.digest, name, target, samples), "lime_open": True})
    if st.session_state.get("lime_for") == (photo.digest, name, target, samples):
        test_card_note("LIME")
        show(explanations.explain_cached(photo.data, name, "LIME", target, samples), f"{name}_lime", samples)
