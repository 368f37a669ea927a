"""The Species page: search by common or scientific name, and each species' test accuracy."""
from __future__ import annotations

from _app import answers_copy, assert_clean, open_page
from flowers_core.results import common
from flowers_core.shipped import manifest as art


def test_species_page_search_and_accuracy(artifacts_root, tmp_path, use):
    use(answers_copy(artifacts_root, tmp_path / "f"))
    at = open_page("app_pages/species.py")
    assert_clean(at)
    assert any("of 102 species" in c.value for c in at.caption)
    name = art.class_names(artifacts_root)[0]
    at.text_input(key="species_query").set_value(name.split()[0].upper()).run()
    assert_clean(at)
    cards = [m.value for m in at.markdown if m.value.startswith("**") and "no." in m.value]
    assert cards and any(name.capitalize() in c for c in cards)
    if common.has_weights("student_int8", artifacts_root):
        assert any(c.value.startswith("Test photos: my first guess was right on") for c in at.caption)
    from flowers_core.serve.words import taxonomy

    if name in taxonomy():  # the scientific name finds it too
        at.text_input(key="species_query").set_value(taxonomy()[name]["scientific_name"].lower()).run()
        assert any(name.capitalize() in m.value for m in at.markdown if m.value.startswith("**"))
    at.text_input(key="species_query").set_value("no such flower zzz").run()
    assert_clean(at)
    assert at.warning
