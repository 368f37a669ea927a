"""The Explain page: its first map and check, the other methods and models, LIME, the image notes and a 'not sure'
said above the map."""
from __future__ import annotations

from _app import _rgb, answers_copy, assert_clean, open_page, pick_example, png
from flowers_core.results import common
from flowers_core.serve.heatmap import FIRST_MAP
from flowers_core.serve.words import LIME_NOTE_MARK


def test_explain_methods(artifacts_root, use):
    use(artifacts_root)
    at = pick_example(open_page("app_pages/explain.py"))
    assert_clean(at)
    # first, the answering model's own map on each view its answer used, each with its check
    assert any(FIRST_MAP in c.value for c in at.caption)
    assert any("Hiding the 20% of the photo this map marks most" in m.value and "hiding a random 20%" in m.value
               and "random draws" in m.value and "hiding the central 20%" in m.value for m in at.markdown)
    assert any(v in m.value for m in at.markdown for v in ("explains this answer", "misleads here", "too sure here",
                                                            "does not explain"))
    at.toggle(key="explain_more").set_value(True).run()
    assert_clean(at)
    for method in ("Grad-CAM++", "EigenCAM"):
        at.selectbox(key="explain_method").set_value(method).run()
        assert_clean(at)
        assert any(c.value.startswith(method) for c in at.caption)
    if common.has_weights("level3", artifacts_root):
        at.selectbox(key="explain_model").set_value("level3").run()
        assert_clean(at)
        assert any("attention" in m.value.lower() for m in at.markdown)
    at.radio(key="explain_target_mode").set_value("Another class").run()
    at.selectbox(key="explain_target").set_value(3).run()
    assert_clean(at)
    at.select_slider(key="lime_samples").set_value(50).run()
    at.button(key="lime_run").click().run()
    assert_clean(at)
    assert any(LIME_NOTE_MARK in c.value for c in at.caption)
    assert at.session_state["lime_open"], "the request opens the expander, wherever a rerun draws it"


def test_explain_shows_the_image_notes(artifacts_root, use):
    use(artifacts_root)
    at = open_page()
    at.file_uploader[0].set_value(("alpha.png", png(_rgb().convert("RGBA")), "image/png")).run()
    at.switch_page("app_pages/explain.py").run()
    assert_clean(at)
    assert any("Transparent areas were filled" in c.value for c in at.caption), [c.value for c in at.caption]


def test_explain_says_when_the_app_would_not_name_the_species(artifacts_root, tmp_path, use):
    """Explain shows the best guess's heatmap whatever the verdict, so a "not sure" says so above it."""
    use(answers_copy(artifacts_root, tmp_path / "a", entropy_threshold=-1.0, gate_threshold=0.0))
    at = open_page()
    at.file_uploader[0].set_value(("leaf.png", png(_rgb(200, 200)), "image/png")).run()
    at.switch_page("app_pages/explain.py").run()
    assert_clean(at)
    assert any("the app answers *I'm not sure" in i.value and "names no species" in i.value for i in at.info), \
        [i.value for i in at.info]
