"""Classify's three answers with their reference photos, and several photos of one plant: combined only when they
agree, each listed with its own answer."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from _app import AppTest, _rgb, add_photo, answers_copy, assert_clean, classify, open_page, png
from flowers_core.results import common
from flowers_core.serve import words
from flowers_core.serve.gallery import examples
from flowers_core.shipped import manifest as art


def shown_prediction(root: Path, data: bytes):
    """What the library answers for ``data`` with the model Classify uses (the first of its preference)."""
    from flowers_core.app.resources import CLASSIFIER_PREFERENCE
    from flowers_core.open_model import open_predictor
    from flowers_core.serve.decode import load_image

    name = next(n for n in CLASSIFIER_PREFERENCE if common.has_weights(n, root))
    return open_predictor(name, root=root).predict(load_image(data))


@pytest.mark.parametrize("entropy_threshold, unfamiliar, photo", [
    (-1.0, False, "noise"),  # the softmax cannot choose
    (99.0, True, "noise"),  # the novelty check: unlike every species
    (-1.0, False, "example"),  # one clear candidate
    (99.0, True, "example"),  # one species leads, but the photo is called unusual
])
def test_not_sure_shows_the_candidates_the_library_names(artifacts_root, tmp_path, use, entropy_threshold, unfamiliar,
                                                         photo):
    """The page's headline, candidates and reference photos are the library's verdict and ``candidates()``: up
    to three, none under CANDIDATE_MIN_PROB, each with three reference photos."""
    pass
    from flowers_core.serve.answer import CANDIDATE_MIN_PROB

    if unfamiliar and not art.model_entry("student_int8", root=artifacts_root).novelty:
        pytest.skip("these artifacts have no novelty check")
    if photo == "example" and not examples():
        pytest.skip("no example photos shipped")
    root = use(answers_copy(artifacts_root, tmp_path / "a", entropy_threshold=entropy_threshold, gate_threshold=0.0,
                            unfamiliar=unfamiliar))
    data = png(_rgb(200, 200)) if photo == "noise" else Path(examples()[0]["file"]).read_bytes()
    pred = shown_prediction(root, data)
    assert pred.verdict == "not_sure"
    at = classify(open_page(), ("leaf.png", data))
    assert at.subheader[0].value == words.verdict_text(pred)[0]
    candidates = [m.value for m in at.markdown if m.value[:3] in ("1. ", "2. ", "3. ")]
    assert len(candidates) == len(pred.candidates()) <= 3, [m.value for m in at.markdown]
    assert all(p >= CANDIDATE_MIN_PROB for _, p in pred.candidates())
    assert sum(len(i.value) == 3 for i in at.image) == len(candidates), "three reference photos of each candidate"
    assert [m.label for m in at.metric] == ["Time taken"], "a hedged answer shows no large score"
    assert at.subheader[0].value.startswith(words.NOT_SURE_START), "a hedged headline names no species"
    if unfamiliar:  # the novelty check: no candidate's score either
        assert all("%" not in c for c in candidates), candidates


def test_species_answer_shows_its_reference_photos(artifacts_root, tmp_path, use):
    use(answers_copy(artifacts_root, tmp_path / "b", entropy_threshold=99.0, gate_threshold=0.0))
    at = classify(open_page(), ("plant.png", png(_rgb(200, 200))))
    assert at.subheader[0].value.startswith("This is a")
    assert any(m.value.startswith("**What a") and "looks like" in m.value for m in at.markdown)
    assert sum(len(i.value) == 3 for i in at.image) == 1


def test_not_a_flower_shows_no_candidates(artifacts_root, tmp_path, use):
    if "gate" not in art.read_manifest(artifacts_root):
        pytest.skip("these artifacts have no flower gate")
    use(answers_copy(artifacts_root, tmp_path / "c", gate_threshold=2.0))
    at = classify(open_page(), ("car.png", png(_rgb(200, 200))))
    assert at.subheader[0].value == words.NOT_A_FLOWER_HEADLINE
    assert not any("candidates" in m.value or "looks like" in m.value for m in at.markdown)


def test_answers_without_reference_photos_say_so(artifacts_root, tmp_path, use):
    use(answers_copy(artifacts_root, tmp_path / "d", entropy_threshold=-1.0, gate_threshold=0.0, reference=False))
    at = classify(open_page(), ("leaf.png", png(_rgb(200, 200))))
    assert at.subheader[0].value.startswith(words.NOT_SURE_START)
    assert any("Reference photos of the species are not shipped" in c.value for c in at.caption)
    at.switch_page("app_pages/species.py").run()
    assert_clean(at)
    assert any("not shipped" in i.value for i in at.info)
    assert sum(m.value.startswith("**") and "· no." in m.value for m in at.markdown) == 24, "a page of species cards"


def own_answers(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown
            if m.value.strip("*").startswith(("This is", words.NOT_SURE_START, "This doesn't", "Most likely"))]


def test_the_same_photo_is_answered_and_timed_once(artifacts_root, tmp_path, use):
    """A rerun of the page (any click) shows the same answer and the same time: the photo is not classified again."""
    use(answers_copy(artifacts_root, tmp_path / "t", gate_threshold=0.0))
    at = classify(open_page(), ("plant.png", png(_rgb(200, 200))))
    timed = [m.value for m in at.metric if m.label == "Time taken"]
    for _ in range(2):
        at.run()
        assert_clean(at)
        assert [m.value for m in at.metric if m.label == "Time taken"] == timed


def test_a_new_photo_is_a_new_question(artifacts_root, tmp_path, use):
    """Photos chosen one after another are never combined: each upload is answered on its own."""
    use(answers_copy(artifacts_root, tmp_path / "e", gate_threshold=0.0))
    at = classify(open_page(), ("plant_0.png", png(_rgb(200, 200))))
    at = classify(at, ("plant_1.png", png(_rgb(220, 200))))
    assert len(at.session_state["photos"]) == 1 and at.session_state["photo"].name == "plant_1.png"
    assert not any("photos of one plant" in c.value for c in at.caption) and not own_answers(at)


def test_several_photos_of_one_plant_give_one_combined_answer(artifacts_root, tmp_path, use):
    """Photos join only through the 'add another photo' box, at most 3, each listed with its own answer and a
    Remove button; removing the upload ends the question (no answer left on screen)."""
    use(answers_copy(artifacts_root, tmp_path / "e", entropy_threshold=-1.0, gate_threshold=0.0))  # all 'not sure'
    photos = [(f"plant_{i}.png", png(_rgb(200 + 10 * i, 200))) for i in range(3)]
    at = classify(open_page(), photos[0])
    at = add_photo(at, *photos[1])
    assert at.subheader[0].value.startswith(words.NOT_SURE_START)
    assert any("Your 2 photos of one plant: one answer from all of them" in c.value for c in at.caption)
    assert any(m.value == "**Each photo on its own**" for m in at.markdown)
    assert len(own_answers(at)) == 2, "each photo's own answer is shown under it"
    at = add_photo(at, *photos[2])
    assert any("Your 3 photos" in c.value for c in at.caption)
    assert [c.value for c in at.caption if c.value.startswith("plant")] == ["plant\\_0\\.png", "plant\\_1\\.png",
                                                                            "plant\\_2\\.png"], "every file listed"
    assert not any(u.label.startswith("Same plant?") for u in at.file_uploader), "no 4th photo"
    assert any("the most I combine" in c.value for c in at.caption)
    at.button(key="classify_remove_1").click().run()
    assert_clean(at)
    assert [p.name for p in at.session_state["photos"]] == ["plant_0.png", "plant_2.png"]
    at.file_uploader[0].set_value(None).run()  # the visitor removes the upload: no question, no answer
    assert_clean(at)
    assert not at.subheader and any("answer will appear here" in i.value for i in at.info)
    if examples():  # an example photo is one photo again
        at.button(key="classify_ex_0").click().run()
        assert_clean(at)
        assert at.subheader and not own_answers(at) and len(at.session_state["photos"]) == 1


def test_photos_whose_answers_do_not_agree_are_not_combined(artifacts_root, tmp_path, use, monkeypatch):
    """Photos sent as one plant whose answers do not overlap enough (``answer.agreeing_photos``; the bound
    raised so that only identical photos agree): two such photos give no combined answer; with a third equal to
    the first, the two agreeing ones are combined and the other is named, left out, with what to do."""
    from flowers_core.serve import answer
    from flowers_core.serve.words import DIFFERENT_FLOWERS_HEADLINE

    monkeypatch.setattr(answer, "AGREEMENT_MIN_OVERLAP", 0.9999)
    use(answers_copy(artifacts_root, tmp_path / "e", entropy_threshold=99.0, gate_threshold=0.0))  # all 'species'
    first = ("first.png", png(_rgb(200, 200)))
    other = ("other.png", png(Image.new("RGB", (200, 200), (37, 91, 143))))
    at = classify(open_page(), first)
    at = add_photo(at, *other)
    assert at.subheader[0].value == DIFFERENT_FLOWERS_HEADLINE
    assert len(own_answers(at)) == 2 and not any(m.value.startswith("**What a") for m in at.markdown)
    assert not any(c.value.startswith("Top 5") for c in at.caption)
    assert not any("of one plant" in c.value for c in at.caption), "the caption never contradicts the headline"
    assert not at.metric or [m.label for m in at.metric] == ["Time taken"]
    at = add_photo(at, "again.png", first[1])
    assert at.subheader[0].value == DIFFERENT_FLOWERS_HEADLINE, "photos 1 and 3 agree, photo 2 is not outvoted"
    assert any(w.value.startswith("Photos 1 and 3 agree") and "photo 2 (other\\.png) says" in w.value
               and "remove it" in w.value for w in at.warning), [w.value for w in at.warning]
    assert any(c.value.startswith("Your 3 photos: each photo's own answer") for c in at.caption)
    at.button(key="classify_remove_1").click().run()  # the visitor removes the odd one out
    assert_clean(at)
    assert at.subheader[0].value.startswith("This is")
    assert any(c.value.startswith("Your 2 photos of one plant: one answer from all of them") for c in at.caption)


def test_an_unreadable_photo_among_several_is_left_out(artifacts_root, tmp_path, use):
    """A file added as the same plant that cannot be read gets a plain message naming it literally, and is neither
    kept nor counted among the plant's photos."""
    from flowers_core.serve.words import ADD_PHOTO_LABEL

    use(answers_copy(artifacts_root, tmp_path / "g", gate_threshold=0.0))
    at = classify(open_page(), ("good.png", png(_rgb(200, 200))))
    at = add_photo(at, "**bad**.jpg", b"not an image at all")
    assert at.error and "couldn't use this file" in at.error[0].value and "so it was not added" in at.error[0].value
    assert r"\*\*bad\*\*" in at.error[0].value, "the bad file is named, literally"
    assert at.subheader and not any("Your 2 photos" in c.value for c in at.caption)
    assert len(at.session_state["photos"]) == 1
    box = next(u for u in at.file_uploader if u.label.startswith(ADD_PHOTO_LABEL))
    assert "1 of 3 so far" in box.label, "the unreadable file is not counted"
