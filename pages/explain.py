"""Explain: where each model looks (Grad-CAM family, Level-3 attention, LIME)."""
import streamlit as st

from flowers_core import artifacts as art
from flowers_core import catalog, explain, tables
from flowers_core.app import ui

st.title("🔍 Where does the model look?")
st.write("Heatmaps show which parts of the photo drove the model's answer: red = most important.")

CANDIDATES = catalog.names(runtimes=("torch",), highest_first=True)  # one network each: the student and L3-L1
available = [m for m in CANDIDATES if tables.has_weights(m)]
for m in CANDIDATES:
    if m not in available:
        st.caption(f"ℹ️ {tables.pretty(m)} is not available (`{catalog.produced_by(m)}`).")
if not available:
    ui.missing("Explanations need the fp32 student or a Level 1–3 model.", "This page")
    st.stop()

# the controls are in the page, not the sidebar (a phone keeps the sidebar closed)
c_model, c_method = st.columns(2)
name = c_model.selectbox("Model", available, format_func=tables.pretty, key="explain_model")
method = c_method.selectbox("Method", explain.CAM_METHODS, key="explain_method",
                            help="Grad-CAM: gradient-weighted feature maps. Grad-CAM++: sharper for several "
                                 "instances. EigenCAM: first principal component, class-agnostic.")

clf, err = ui.try_predictor(name)
if clf is None:
    ui.missing(err, tables.pretty(name))
    st.stop()

photo = ui.photo_picker("explain", gallery="select", camera=False)
img, notes = ui.photo_image(photo, "Choose a photo to explain.")
ui.show_notes(notes)

pred = clf.predict(img)
target_choice = st.radio("Explain which class?", ["The predicted class", "Another class"], horizontal=True,
                         key="explain_target_mode")
target = pred.class_id
if target_choice == "Another class":
    target = st.selectbox("Class", range(len(clf.classes)), index=pred.class_id,
                          format_func=lambda i: f"{ui.display_name(clf.classes[i])} ({pred.probs[i]:.1%})",
                          key="explain_target")
st.markdown(f"**{tables.pretty(name)}** predicts **{ui.display_name(pred.label)}** ({pred.prob:.0%}); "
            f"explaining **{ui.display_name(clf.classes[target])}**.")
if pred.verdict != "species":
    st.info(f"With this model the app would answer *{ui.verdict_text(pred)[0]}* for your photo, not name a "
            "species; the heatmaps explain the model's best guess all the same.")
if ui.show_where_looked(img, pred) and pred.localisation.used and pred.whole_photo is not None:
    whole = pred.whole_photo
    st.caption(f"The answer weighs the whole photo and a closer look at the yellow square; on the whole photo alone "
               f"it says **{ui.display_name(whole.label)}** ({whole.prob:.0%}). The heatmaps below explain the whole "
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
show(ui.explain_cached(photo.data, name, method, target), f"{name}_{method}_{target}")

if clf.model is not None and getattr(clf.model, "attention_available", False):
    st.subheader("Level-3 attention map")
    st.caption("The attention head's own weights: the pooling averages features where this map is high. "
               "It does not depend on the class.")
    show(ui.explain_cached(photo.data, name, "Attention", None), f"{name}_attention")
else:
    with_attention = [m for m in available if art.model_entry(m).head == "attention"]
    if with_attention:
        st.caption(f"Pick **{tables.pretty(with_attention[0])}** as the model to see its built-in attention map too.")

# The expander's open state is the visitor's (a key and on_change): when a spinner shows in one run and not the next
# (another visitor's job holding the lock), the elements above it shift and Streamlit draws a new expander, closed
# unless it has a state; LIME's result then arrived hidden inside it and the click looked lost (crowd run, DECISIONS P8).
with st.expander("LIME (slower, optional)", key="lime_open", on_change="rerun"):
    st.write("LIME hides random groups of similar pixels (superpixels) and watches how the answer changes. "
             "It takes a few seconds to a minute.")
    samples = st.select_slider("Perturbed samples", [50, 100, 150, 300, 500], value=100, key="lime_samples")
    # recorded by a callback, which Streamlit runs before the page script of the run the click starts: nothing the
    # page does in that run can drop the request, as it could a True that st.button returns to that run only
    st.button("Run LIME", key="lime_run", on_click=ui.remember,
              kwargs={"lime_for": (photo.digest, name, target, samples), "lime_open": True})
    if st.session_state.get("lime_for") == (photo.digest, name, target, samples):
        show(ui.explain_cached(photo.data, name, "LIME", target, samples), f"{name}_lime")
