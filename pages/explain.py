import streamlit as st

from flowers_core.app import explanations, picker, resources, widgets
from flowers_core.app.handover import hand_over_to_app
from flowers_core.explain import maps as explain
from flowers_core.results import common
from flowers_core.serve import words
from flowers_core.shipped import catalog
from flowers_core.shipped import manifest as art

hand_over_to_app()

st.title("🔍 Where does the model look?")
st.write("Heatmaps show which parts of the photo drove the model's answer: red = most important.")

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
name = c_model.selectbox("Model", available, format_func=catalog.title, key="explain_model")
method = c_method.selectbox("Method", explain.CAM_METHODS, key="explain_method",
                            help="Grad-CAM: gradient-weighted feature maps. Grad-CAM++: sharper for several "
                                 "instances. EigenCAM: first principal component, class-agnostic.")

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


def show(exp, key):
    over = exp.overlay(opacity)
    c1, c2, c3 = st.columns(3)
    c1.image(exp.view, caption="What the model sees", width="stretch")
    c2.image(exp.colored(), caption=f"{exp.method}: raw heatmap", width="stretch")
    c3.image(over, caption=f"Overlay (opacity {opacity:.2f})", width="stretch")
    if exp.note:
        st.caption(exp.note)
    st.download_button("Download overlay (PNG)", explain.to_png(over, scale=2), file_name=f"{key}.png",
                       mime="image/png", key=f"dl_{key}", on_click="ignore")


st.subheader(method)
show(explanations.explain_cached(photo.data, name, method, target), f"{name}_{method}_{target}")

if clf.model is not None and getattr(clf.model, "attention_available", False):
    st.subheader("Level-3 attention map")
    st.caption("The attention head's own weights: the pooling averages features where this map is high. "
               "It does not depend on the class.")
    show(explanations.explain_cached(photo.data, name, "Attention", None), f"{name}_attention")
else:
    with_attention = [m for m in available if art.model_entry(m).head == "attention"]
    if with_attention:
        st.caption(f"Pick **{catalog.title(with_attention[0])}** as the model to see its built-in attention map too.")

# The expander's open state is the visitor's (a key and on_change): when a spinner shows in one run and not the next
# (another visitor's job holding the lock), the elements above it shift and Streamlit draws a new expander, closed
# unless it has a state; LIME's result then arrived hidden inside it and the click looked lost (crowd run, DECISIONS P8).
with st.expander("LIME (slower, optional)", key="lime_open", on_change="rerun"):
    st.write("LIME hides random groups of similar pixels (superpixels) and watches how the answer changes. "
             "It takes a few seconds to a minute.")
    samples = st.select_slider("Perturbed samples", [50, 100, 150, 300, 500], value=100, key="lime_samples")
    # recorded by a callback, which Streamlit runs before the page script of the run the click starts: nothing the
    # page does in that run can drop the request, as it could a True that st.button returns to that run only
    st.button("Run LIME", key="lime_run", on_click=explanations.remember,
              kwargs={"lime_for": (photo.digest, name, target, samples), "lime_open": True})
    if st.session_state.get("lime_for") == (photo.digest, name, target, samples):
        show(explanations.explain_cached(photo.data, name, "LIME", target, samples), f"{name}_lime")
