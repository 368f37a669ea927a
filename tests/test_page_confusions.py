"""The Confusions page: its controls, and each mistake's "why A and not B" maps."""
from __future__ import annotations

from _app import assert_clean, open_page
from flowers_core.results import common
from flowers_core.shipped.splits import PROTOCOLS


def test_confusions_controls(artifacts_root, use):
    use(artifacts_root)
    at = open_page("app_pages/confusions.py")
    assert_clean(at)
    from flowers_core.app.resources import CLASSIFIER_PREFERENCE

    names = common.models("stratified", artifacts_root)
    assert at.selectbox(key="conf_model").value == next(n for n in CLASSIFIER_PREFERENCE if n in names), \
        "opens on the model the app answers with"
    at.selectbox(key="conf_order").set_value("name").run()
    at.toggle(key="conf_only_err").set_value(False).run()
    at.toggle(key="conf_norm").set_value(True).run()
    assert_clean(at)
    if "official" in [p for p in PROTOCOLS if common.models(p, artifacts_root)]:
        at.radio(key="conf_protocol").set_value("official").run()
        assert_clean(at)


def test_confusions_show_why_a_and_not_b(artifacts_root, use):
    """Each mistake of the app's model: two maps with both species' probabilities, or how to build them."""
    from flowers_core.serve.mistakes import MistakeMaps
    from flowers_core.shipped.paths import MISTAKE_MAPS_COMMAND

    use(artifacts_root)
    at = open_page("app_pages/confusions.py")
    assert_clean(at)
    pack = MistakeMaps(artifacts_root)
    if not pack.available:
        assert any(MISTAKE_MAPS_COMMAND in c.value for c in at.caption)
        return
    shown = [m.value for m in at.markdown if " taken for " in m.value]
    assert len(shown) == len(pack.mistakes) and len(shown) >= min(5, len(pack.mistakes))
    first = pack.mistakes[0]
    assert f"test photo #{first.image_id}" in shown[0]
    # another model: the section names the one it is for instead of showing another model's mistakes
    other = next(n for n in common.models("stratified", artifacts_root) if n != pack.summary["app_model"])
    at.selectbox(key="conf_model").set_value(other).run()
    assert_clean(at)
    assert not [m for m in at.markdown if " taken for " in m.value]
    assert any("pick it above" in c.value for c in at.caption)
