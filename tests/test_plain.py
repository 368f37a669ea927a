"""Sentences that state a change read its direction from the numbers they cite."""
from flowers_core.results import explanations as explanation_report
from flowers_core.results import wording as plain


def test_a_rise_in_an_error_is_called_worse():
    assert plain.change_words(0.006, 0.008) == "rose from 0.006 to 0.008 (worse)"
    assert plain.change_words(0.008, 0.006) == "fell from 0.008 to 0.006 (better)"
    assert plain.change_words(0.90, 0.95, "{:.0%}", lower_is_better=False) == "rose from 90% to 95% (better)"
    assert plain.change_words(0.0061, 0.0064) == "stayed at 0.006"  # equal as shown: no direction claimed


def test_glossary_explains_the_report_terms():
    text = plain.glossary("ECE", "NLL", "macro-F1", "Mahalanobis distance", "softmax")
    assert text.count("\n- ") == 4 and "calibration" in text


def test_faithfulness_sentence_says_the_direction_it_measured():
    s = explanation_report.faithfulness_sentence("Sunflower", 0.97, 0.2, 0.31, 0.90, 0.99)
    assert "Hiding the 20% of the photo this map marks most lowers it to 31%" in s
    assert "hiding a random 20% lowers it to 90%" in s and "marks least raises it to 99%" in s
    assert "leaves it at 97%" in explanation_report.faithfulness_sentence("Rose", 0.97, 0.2, 0.971, 0.5, 0.97)


def test_first_choice_uses_validation_and_skips_failed_maps():
    def entry(gain, overall):
        return {"card": {"overall": overall}, "vs_random": {"mean": gain}, "n_images": 10}

    val = {"models": {"student": {"summary": {"Grad-CAM": entry(0.05, "inconclusive"), "EigenCAM": entry(0.2, "fail"),
                                              "LIME": entry(0.5, "pass")}},
                      "level3": {"summary": {"Attention": entry(0.07, "pass")}}}}
    assert explanation_report.first_choice(val)[:2] == ("level3", "Attention")  # a pass beats an inconclusive
    val["models"]["student"]["summary"]["Grad-CAM"] = entry(0.05, "pass")
    assert explanation_report.first_choice(val)[:2] == ("student", "Grad-CAM")  # a tie goes to the app's model
    val["models"]["level3"]["summary"]["Attention"] = entry(0.2, "pass")
    assert explanation_report.first_choice(val)[:2] == ("level3", "Attention")  # a clear gain does not
    assert explanation_report.first_choice(None)[:2] == explanation_report.FALLBACK_FIRST
