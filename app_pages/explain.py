"""Explain: where the model that answered looked (its own map, at once, without torch), how far each map can be
trusted on this photo, and on demand the other methods and models (Grad-CAM family, L3 attention: torch)."""
import streamlit as st

from flowers_core.app import explanations, picker, resources, widgets
from flowers_core.results import common
from flowers_core.results import explanations as explanation_report
from flowers_core.serve import heatmap, road, words
from flowers_core.shipped import catalog, paths
from flowers_core.shipped import manifest as art

st.title("🔍 Where does the model look?")
st.write("A heatmap colours the parts of the photo the model relied on for its answer: red = most, blue = least. "
         "Each map is then checked on your photo: we hide the part it marks and ask the model again. If its "
         "confidence falls much more than when a random part is hidden, the map explains the answer; if not, "
         "it does not, however convincing it looks.")
try:
    FIRST_MODEL, FIRST_METHOD, FIRST_WHY = explanation_report.first_choice(paths.EXPLANATIONS_VAL.read_or_none())
    TEST_CARDS = (paths.EXPLANATIONS.read_or_none() or {}).get("models", {})
    FIRST_MAP_CHECK = paths.FIRST_MAP.read_or_none()  # the first map against pytorch-grad-cam (bench.first_map)
except ValueError:  # a report being rewritten by an older writer: the page opens all the same
    FIRST_MODEL, FIRST_METHOD, FIRST_WHY = (*explanation_report.FALLBACK_FIRST, "its report could not be read")
    TEST_CARDS, FIRST_MAP_CHECK = {}, None

answering, skipped = resources.default_classifier()
if answering is None:
    widgets.missing(" ".join(skipped) or "No model can be loaded.", "This page")
    st.stop()

photo = picker.photo_picker("explain", gallery="select", camera=False)
img, notes = picker.photo_image(photo, "Choose a photo to explain.")
picker.show_notes(notes)

pred = answering.predict(img)  # the answer the visitor gets on Classify: the same model, photo and views
classes = answering.classes
target_choice = st.radio("Explain which class?", ["The app's answer", "Another class"], horizontal=True,
                         key="explain_target_mode")
target = pred.class_id
if target_choice == "Another class":
    target = st.selectbox("Class", range(len(classes)), index=pred.class_id,
                          format_func=lambda i: words.display_name(classes[i]), key="explain_target")
title = catalog.title(answering.name)
if pred.verdict == "species":
    st.markdown(f"The app answers **{words.display_name(pred.label)}** ({pred.prob:.0%}) with **{title}**; "
                f"explaining **{words.display_name(classes[target])}**.")
else:  # a hedged answer shows no species' score (Classify shows none either)
    st.info(f"For this photo the app answers *{words.verdict_text(pred)[0]}* and names no species; the maps below "
            f"explain its best guess, **{words.display_name(pred.label)}**, all the same.")
opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05, key="explain_opacity")


def show_check(clf, exp, explained: int, view: str) -> None:
    """The map's check on this view, run on the model that gave it: a sentence of the measured numbers and the
    verdict decided on exactly those numbers."""
    try:
        found = explanations.check_cached(photo.data, clf, exp, explained, view)
    except Exception as e:  # a check that fails must not take the heatmap with it
        st.caption(f"The check of this map could not run ({type(e).__name__}).")
        return
    st.markdown(explanation_report.check_sentence(words.display_name(clf.classes[explained]), found))
    st.markdown(explanation_report.check_verdict_words(found))
    with st.expander("How this check works"):
        st.caption(f"Hidden parts are filled in from their surroundings, so the hole itself gives no clue (the ROAD "
                   f"test). The same {found.share:.0%} is hidden where this map marks most and at "
                   f"{len(found.after_random)} random places (blobs the size of the model's own grid cells); their "
                   f"results vary by ±{100 * found.random_spread:.0f} points (standard deviation). A map counts as "
                   f"explaining the answer when hiding what it marks lowers the confidence, and lowers it at least "
                   f"{100 * found.needed:.0f} points more than the random places do on average. The centre-only "
                   "figure shows how much a map gets for free when the flower is in the middle of the photo.")


def show(exp, key: str, clf, explained: int, view: str = "", caption: str = "What the model sees") -> None:
    over = exp.overlay(opacity)
    c1, c2, c3 = st.columns(3)
    c1.image(exp.view, caption=caption, width="stretch")
    c2.image(exp.colored(), caption=f"{exp.method}: the heatmap alone", width="stretch")
    c3.image(over, caption=f"Heatmap over the photo (opacity {opacity:.2f})", width="stretch")
    if exp.note:
        st.caption(exp.note)
    show_check(clf, exp, explained, view)
    st.download_button("Download overlay (PNG)", heatmap.to_png(over, scale=2), file_name=f"{key}.png",
                       mime="image/png", key=f"dl_{key}", on_click="ignore")


# ---------------------------------------------------------------------------------------------
# The answer's own map: the INT8 student's class activation map on the views it answered from (no torch)
# ---------------------------------------------------------------------------------------------
st.subheader(f"Where {title} looked")
st.caption(f"{heatmap.FIRST_MAP}: where the features that raise the score of "
           f"{words.display_name(classes[target])} lie, read from the model that answered, without the heavy maths "
           "library. For this model it is its last layer's Grad-CAM"
           + (f" (on {FIRST_MAP_CHECK['n_images']} test photos its rank correlation with the full-precision model's "
              f"Grad-CAM averaged {FIRST_MAP_CHECK['int8']['mean']:.3f}, lowest {FIRST_MAP_CHECK['int8']['min']:.2f})."
              if FIRST_MAP_CHECK else ".")
           + (f" Grad-CAM of the student was chosen to come first on validation photos ({FIRST_WHY})."
              if (FIRST_MODEL, FIRST_METHOD) == (catalog.fp32_twin(answering.name), "Grad-CAM") else ""))
maps = explanations.answer_maps(photo.data, answering, img, pred, target)
VIEW_CAPTIONS = {"whole": "The whole photo, as the model sees it", "closer": "The closer look it also took"}
if len(maps) > 1:
    st.caption("The answer weighs two views: the whole photo and a closer look around the flower. Each has its map "
               "and its check.")
for label, exp in maps:
    show(exp, f"{answering.name}_{label}_{target}", answering, target, label, VIEW_CAPTIONS.get(label, label))

# ---------------------------------------------------------------------------------------------
# LIME on the model that answered (no torch)
# ---------------------------------------------------------------------------------------------
# The expander's open state is the visitor's (a key and on_change): when a spinner shows in one run and not the next
# (another visitor's job holding the lock), the elements above it shift and Streamlit draws a new expander, closed
# unless it has a state; LIME's result then arrived hidden inside it and the click looked lost (crowd run, DECISIONS P8).
with st.expander("LIME (slower, optional)", key="lime_open", on_change="rerun"):
    st.write(f"LIME hides random patches of similar colour and watches how {title}'s answer changes, then marks the "
             "patches that kept the answer up. It takes a few seconds to a minute.")
    samples = st.select_slider("Photos LIME tries (more: steadier map, slower)", [50, 100, 150, 300, 500], value=100,
                               key="lime_samples")
    # recorded by a callback, which Streamlit runs before the page script of the run the click starts: nothing the
    # page does in that run can drop the request, as it could a True that st.button returns to that run only
    st.button("Run LIME", key="lime_run", on_click=explanations.remember,
              kwargs={"lime_for": (photo.digest, answering.name, target, samples), "lime_open": True})
    if st.session_state.get("lime_for") == (photo.digest, answering.name, target, samples):
        lime = explanations.explain_cached(photo.data, answering.name, "LIME", target, samples, runtime="onnx")
        show(lime, f"{answering.name}_lime", answering, target, "whole")


# ---------------------------------------------------------------------------------------------
# Other methods and models: torch, loaded when the visitor asks
# ---------------------------------------------------------------------------------------------
def test_card_note(name: str, clf, method: str) -> None:
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


CANDIDATES = catalog.names(runtimes=("torch",), highest_first=True)  # one network each: the student and L3-L1
available = [m for m in CANDIDATES if common.has_weights(m)]
st.subheader("Other methods and models")
st.caption("Grad-CAM++, EigenCAM, the full-precision student's and the L1–L3 models' maps, and L3's attention need "
           "the full models and their maths library (torch): they load when you ask, about 5–10 s the first time. "
           "Their checks run on the model they explain, on the whole photo's view.")
if not available:
    st.caption("ℹ️ No full model is available in this copy of the artifacts.")
elif st.toggle("Show other methods and models", key="explain_more"):
    c_model, c_method = st.columns(2)
    name = c_model.selectbox("Model", available, format_func=catalog.title, key="explain_model",
                             index=available.index(FIRST_MODEL) if FIRST_MODEL in available else 0)
    method = c_method.selectbox("Method", heatmap.CAM_METHODS, key="explain_method",
                                help=" ".join(explanation_report.PLAIN_METHOD[m] + "." for m in heatmap.CAM_METHODS))
    clf, err = resources.try_predictor(name, runtime="torch")
    if clf is None:
        widgets.missing(err, catalog.title(name))
        st.stop()
    own = clf.predict(img)
    st.markdown(f"**{catalog.title(name)}** on its own, on the whole photo, says **{words.display_name(own.label)}**"
                + (f" ({own.prob:.0%})" if own.verdict == "species" else f" (it would answer *{words.verdict_text(own)[0]}*)")
                + f"; explaining **{words.display_name(classes[target])}**.")
    st.caption(explanation_report.PLAIN_METHOD[method] + ".")
    test_card_note(name, clf, method)
    explained = None if method == "EigenCAM" else target
    exp = explanations.explain_cached(photo.data, name, method, explained)
    show(exp, f"{name}_{method}_{target}", clf, target, "whole")
    if getattr(clf.model, "attention_available", False):
        st.markdown("**Level-3 attention map**")
        st.caption("This model's own attention: it reads the photo mostly where this map is high, whatever the "
                   "species. Unlike the other maps it is part of how the model answers, not computed afterwards.")
        test_card_note(name, clf, "Attention")
        show(explanations.explain_cached(photo.data, name, "Attention", None), f"{name}_attention", clf, target,
             "whole")
    else:
        with_attention = [m for m in available if art.model_entry(m).head == "attention"]
        if with_attention:
            st.caption(f"Pick **{catalog.title(with_attention[0])}** as the model to see its built-in attention map.")
    if st.toggle("Why this species and not another?", key="contrast_on"):
        st.write("Grad-CAM of the difference between two species' scores: red where the photo makes the model prefer "
                 "the first species to the second.")
        ranked = [int(i) for i in own.probs.argsort()[::-1]]
        c_a, c_b = st.columns(2)
        species_a = c_a.selectbox("Species it prefers", ranked, index=0, key="contrast_a",
                                  format_func=lambda i: words.display_name(classes[i]))
        species_b = c_b.selectbox("…to this one", ranked, index=1, key="contrast_b",
                                  format_func=lambda i: words.display_name(classes[i]))
        if species_a == species_b:
            st.info("Choose two different species.")
        else:
            from flowers_core.explain import maps as explain  # torch: loaded with the model above

            with resources.one_heavy_job():
                contrast = explain.gradcam(clf.model, img, "Grad-CAM", species_a, versus=species_b)
            contrast.method = (f"{words.display_name(classes[species_a])} rather than "
                               f"{words.display_name(classes[species_b])}")
            show(contrast, f"{name}_contrast_{species_a}_{species_b}", clf, species_a, "whole")
st.caption(f"Maps checked on {road.CHECK_DRAWS} random places per view; the explanations report on the Report page "
           "measures every method over many test photos.")
