"""The Compare page: every model on an example, and when two answers are called an agreement."""
from __future__ import annotations

from _app import assert_clean, open_page, pick_example
from flowers_core.serve import words


def test_compare_on_an_example(artifacts_root, use):
    use(artifacts_root)
    at = pick_example(open_page("app_pages/compare.py"))
    assert_clean(at)
    assert at.dataframe, "the comparison table is shown"
    table = at.dataframe[0].value
    assert "time (ms)" in table.columns and len(table) >= 1


def test_compare_calls_the_same_guess_an_agreement_only_when_both_name_it():
    pass
    from flowers_core.serve.answer import Prediction

    def pred(class_id, verdict):
        return Prediction(class_id, f"flower {class_id}", 0.5, 1.0, [(f"flower {class_id}", 0.5)], verdict=verdict)

    assert words.agreement(pred(1, "species"), pred(1, "species"))[0] == "agree"
    assert words.agreement(pred(1, "species"), pred(2, "species"))[0] == "disagree"
    kind, text = words.agreement(pred(1, "not_sure"), pred(1, "not_a_flower"))
    assert kind == "unnamed" and "neither of them would name it" in text and "both say" not in text
    assert "only one of them" in words.agreement(pred(1, "species"), pred(1, "not_sure"))[1]
