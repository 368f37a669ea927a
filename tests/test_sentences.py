"""Every sentence agrees with the numbers beside it (issue #39): each is tested against its numbers over generated
cases, not for its presence. Hedged answers show no score of 90% or more; a combined answer of several photos less
sure than its surest photo says why, in plural-correct words; species cards give counts and 95% intervals; latency is
set against a stored run only on a like machine and a gap is put down only to the load both runs measured; the
"where I looked" caption says what its box covers."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowers_core.results import wording
from flowers_core.serve import stages, words
from flowers_core.serve.answer import Prediction
from flowers_core.serve.localise import Box

REPO = Path(__file__).resolve().parent.parent
CLASSES = [f"flower {i}" for i in range(97)] + ["lotus", "sunflower", "rose", "pink primrose", "watercress"]
PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")


def percentages(text: str) -> list[float]:
    return [float(m) for m in PERCENT.findall(text)]


def prediction(probs: np.ndarray, verdict: str, unfamiliar: bool | None = None) -> Prediction:
    order = np.argsort(-probs)
    return Prediction(int(order[0]), CLASSES[order[0]], float(probs[order[0]]), 1.0,
                      [(CLASSES[i], float(probs[i])) for i in order[:5]], verdict=verdict, unfamiliar=unfamiliar,
                      probs=probs.astype(np.float32))


def peaked(rng, top: float) -> np.ndarray:
    """102 probabilities, one of them ``top``, the rest spread at random."""
    rest = rng.dirichlet(np.full(101, rng.uniform(0.05, 2.0))) * (1 - top)
    probs = np.insert(rest, rng.integers(102), top)
    return probs / probs.sum()


def hedged_cases(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        verdict = rng.choice(["not_sure", "not_a_flower"])
        yield prediction(peaked(rng, rng.uniform(0.9, 0.9999)), verdict, [True, False, None][rng.integers(3)])


# ---------------------------------------------------------------------------------------------
# 1. A hedged or "not a flower" answer never shows a species at 90% or more
# ---------------------------------------------------------------------------------------------
def test_a_hedged_answer_never_shows_a_score_of_90_percent():
    from flowers_core.app import widgets

    for pred in hedged_cases():
        texts = [*words.verdict_text(pred), *words.verdict_text(pred, several=True), words.own_answer_short(pred),
                 words.own_answer_line(pred) or "", words.ranking_text(pred), words.ranking_text(pred, True)]
        assert not [p for t in texts for p in percentages(t) if p >= 90], (pred.verdict, pred.prob, texts)
        assert words.confidence_metric(pred) is None
        assert not words.scores_shown(pred)
        assert widgets.top_guesses_figure(pred) is None, "the top-5 chart's percentages would contradict the hedge"
        ranked = words.ranking_text(pred)
        assert ranked.split("\n\n", 1)[1].splitlines() == [
            f"{rank}. {words.plain(words.display_name(label))}" for rank, (label, _) in enumerate(pred.top5, start=1)
        ], "every guess ranked, in order"


def test_a_species_answer_keeps_its_chart_and_a_spread_hedge_its_scores():
    from flowers_core.app import widgets

    rng = np.random.default_rng(1)
    sure = prediction(peaked(rng, 0.97), "species")
    assert widgets.top_guesses_figure(sure) is not None and words.scores_shown(sure)
    spread = prediction(np.array([0.4, 0.3] + [0.3 / 100] * 100), "not_sure", unfamiliar=False)
    assert words.scores_shown(spread) and "(40%)" in words.verdict_text(spread)[1]


def test_the_classify_page_shows_no_high_score_beside_a_hedge(monkeypatch):
    """The reported case through the page itself: a pinwheel hedged as "closest is a lotus", the lotus at 96%;
    nothing on Classify (headline, text, captions, metrics, the chart) shows a percentage of 90 or more."""
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from flowers_core.app import picker
    from flowers_core.results import common

    if not common.has_weights("student_int8", REPO / "artifacts"):
        pytest.skip("no shipped INT8 student")
    probs = np.full(102, 0.04 / 101)
    probs[CLASSES.index("lotus")] = 0.96
    hedge = prediction(probs / probs.sum(), "not_sure", unfamiliar=True)
    monkeypatch.setattr(picker, "answers_once", lambda clf, loaded: [hedge for _ in loaded])
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300).run()
    at.file_uploader[0].set_value(("pinwheel.png", png(Image.new("RGB", (120, 90), (200, 40, 40))), "image/png")).run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.subheader[0].value.startswith(words.NOT_SURE_START)
    shown = [e.value for kind in ("subheader", "markdown", "caption", "info", "success", "warning")
             for e in getattr(at, kind)]
    shown += [str(m.value) for m in at.metric]
    shown += [str(e.proto) for e in at.get("plotly_chart")]
    high = [t for t in shown if any(p >= 90 for p in percentages(t))]
    assert not high, high
    assert any("closest first" in t and "Lotus" in t for t in shown), "the guesses are ranked, without scores"


def png(img: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# 2. Several photos: less sure than the surest photo only with a reason; plural-correct words
# ---------------------------------------------------------------------------------------------
def toy_predictor():
    """A Predictor without a model: ``describe`` and ``combine`` with an entropy and a novelty threshold."""
    from flowers_core.serve.predictor import Predictor

    clf = object.__new__(Predictor)
    clf.classes, clf.threshold, clf.typicality_threshold, clf.gate = CLASSES, 1.2, 0.0, None
    return clf


SINGULAR_AFTER_PLURAL = re.compile(r"(these photos|photos \d+(?:, \d+)* and \d+|they) (looks|fits|is|was)\b")
PLURAL_AFTER_SINGULAR = re.compile(r"(this photo|photo \d+) (look|fit|are|were)\b")


def test_a_combined_answer_less_sure_than_its_surest_photo_says_why():
    clf = toy_predictor()
    rng = np.random.default_rng(2)
    explained = 0
    for _ in range(400):
        n = int(rng.integers(2, 4))
        preds = [clf.describe(peaked(rng, rng.uniform(0.2, 0.9999)).astype(np.float32), 1.0, None,
                              float(rng.normal(0.5, 1.0))) for _ in range(n)]
        combined = clf.combine(preds)
        why = words.combined_doubt(preds, combined)
        best = words.surest_photo(preds)
        less_sure = best is not None and words._sureness(combined) < words._sureness(preds[best])
        assert (why is not None) == less_sure, (why, [p.verdict for p in preds], combined.verdict)
        texts = [*words.verdict_text(combined, several=True), why or ""]
        for text in texts:
            assert not SINGULAR_AFTER_PLURAL.search(text) and not PLURAL_AFTER_SINGULAR.search(text), text
        if why:
            explained += 1
            assert f"photo {best + 1} looks like {words.with_article(preds[best].label)}" in why, why
            if combined.verdict != "species":  # a hedge names no score, and says what made it
                assert not percentages(why), why
                assert ("unlike the photos I learned from" in why or "unlike the ones I learned from" in why
                        if combined.unfamiliar else "several species" in why), why
                odd = [i for i, p in enumerate(preds) if p.unfamiliar and i != best]
                if combined.unfamiliar and odd:
                    assert words._photo_numbers(odd) in why
    assert explained > 20, "the generated cases include combined answers less sure than a photo"


def test_the_reported_sunflower_photos_read_right():
    """Three photos of one sunflower: photo 2 alone is a sunflower at 100%, photos 1 and 3 look unusual."""
    clf = toy_predictor()
    sun = np.full(102, 1e-4)
    sun[CLASSES.index("sunflower")] = 1.0
    sun = (sun / sun.sum()).astype(np.float32)
    preds = [clf.describe(sun, 1.0, None, t) for t in (-3.0, 2.0, -2.5)]
    combined = clf.combine(preds)
    assert combined.verdict == "not_sure" and preds[1].verdict == "species"
    head, _ = words.verdict_text(combined, several=True)
    assert head == "I'm not sure — these photos look unlike the ones I learned from"
    why = words.combined_doubt(preds, combined)
    assert why.startswith("On its own, photo 2 looks like a sunflower to me")
    assert "photos 1 and 3 look unlike the photos I learned from" in why and "remove the others" in why


def test_the_add_photo_box_promises_no_surer_answer():
    label = words.add_photo_label(1, 3)
    assert label.startswith(words.ADD_PHOTO_LABEL) and "surer" not in label and "1 of 3" in label


# ---------------------------------------------------------------------------------------------
# 3. Species cards: a share with its count and its 95% interval, people's photos where measured
# ---------------------------------------------------------------------------------------------
def test_a_share_is_never_a_bare_percentage():
    from flowers_core.metrics import wilson_interval

    for n in range(1, 61):
        for right in range(n + 1):
            text = wording.share_with_interval(right, n)
            lo, hi = wilson_interval(right, n)
            assert text.startswith(f"{right} of {n} (") and "95% interval" in text
            assert lo <= right / n <= hi
            assert f"{lo * 100:.0f}–{hi * 100:.0f}%" in text
            assert not re.match(r"^\d+ of \d+ \(100%", text), "no bare 100%"
    assert wording.share_with_interval(9, 9) == "9 of 9 (95% interval 70–100%)"


def test_species_cards_give_test_and_peoples_photos_with_counts():
    from flowers_core.results import explore
    from flowers_core.results.common import has_weights

    if not has_weights("student_int8", REPO / "artifacts"):
        pytest.skip("no shipped INT8 student")
    table = explore.species_table(root=REPO / "artifacts")
    run, _ = explore.people_photos_run(root=REPO / "artifacts")
    measured = run["per_species"]
    for _, row in table.iterrows():
        lines = " ".join(wording.species_accuracy_lines(row))
        assert f"{int(row['correct'])} of {int(row['test images'])}" in lines and "95% interval" in lines
        assert not re.search(r"(?<!–)\b100%", lines.replace("–100%", "")), lines
        if row["class"] in measured:
            m = measured[row["class"]]
            assert f"{round(m['top1'] * m['n'])} of {m['n']}" in lines, lines
        else:
            assert "Not measured on people's own photos" in lines
    dandelion = " ".join(wording.species_accuracy_lines(table[table["class"] == "common dandelion"].iloc[0]))
    assert "28 of 150 (19%" in dandelion, dandelion
    shown = explore.species_accuracy_table(table)
    assert not shown.map(lambda v: bool(re.fullmatch(r"\d+%", str(v)))).any().any()


# ---------------------------------------------------------------------------------------------
# 4. Latency: a like machine only; a gap put down only to the load both runs measured
# ---------------------------------------------------------------------------------------------
def test_a_live_run_is_set_against_a_like_machine_only():
    rng = np.random.default_rng(3)
    cpus, isas = ["AMD EPYC", "Intel Xeon", None], ["avx512_vnni", "avx2", "avx_vnni", None]
    for _ in range(500):
        def env():
            return {"cpu": cpus[rng.integers(3)], "int8_isa": isas[rng.integers(4)], "threads": int(rng.integers(1, 3))}
        runs = [{"environment": env(), "models": [{"model": "m", "p50_ms": float(rng.uniform(1, 30))}]}
                for _ in range(int(rng.integers(1, 4)))]
        report = {**runs[0], "other_cpus": runs[1:]}
        live = env()
        ms, stored = stages.stored_median(report, "m", live)
        alike = [r for r in runs if all(r["environment"][k] == live[k] and live[k] is not None
                                        for k in stages.MATCHED_ON)]
        if alike:
            assert ms == alike[0]["models"][0]["p50_ms"] and stored == alike[0]["environment"]
        else:
            assert ms is None and stored == {}
            text = wording.no_stored_match_words(live, [r["environment"] for r in runs])
            assert text.startswith("No stored figure was measured on a machine like this one")
            assert wording.machine_words(live) in text


def test_a_gap_is_put_down_only_to_the_load_measured():
    rng = np.random.default_rng(4)
    for _ in range(500):
        live_ms, stored_ms = rng.uniform(1, 40, size=2)
        live = {"load_average": [float(rng.uniform(0, 8))] * 3, "cores": 2} if rng.random() > 0.1 else {}
        stored = {"load_average": [float(rng.uniform(0, 8))] * 3, "cores": 2}
        ratio, text = wording.latency_gap_words(live_ms, stored_ms, live, stored)
        assert ratio == pytest.approx(live_ms / stored_ms)
        assert "quieter" not in text and "shared with other visitors" not in text
        if 1 / wording.SAME_TIME <= ratio <= wording.SAME_TIME:
            assert text == "about the same as the stored figure"
            continue
        assert text.startswith(f"{ratio:.1f}× slower" if ratio > 1 else f"{1 / ratio:.1f}× faster")
        if not live:
            assert "cannot say why" in text
            continue
        gap = (live["load_average"][0] - stored["load_average"][0]) / 2
        assert ("busier now" in text) == (ratio > 1 and gap >= wording.LOAD_GAP_PER_CORE)
        assert ("less busy now" in text) == (ratio < 1 and gap <= -wording.LOAD_GAP_PER_CORE)
        if "busier now" not in text and "less busy now" not in text:
            assert "nothing this page measures explains" in text
        assert f"load {live['load_average'][0]:.1f}" in text


# ---------------------------------------------------------------------------------------------
# 5. "Where I looked": the caption says what the box covers
# ---------------------------------------------------------------------------------------------
def test_the_where_i_looked_caption_is_true_of_its_box():
    rng = np.random.default_rng(5)
    for _ in range(500):
        w, h = int(rng.integers(50, 4000)), int(rng.integers(50, 4000))
        side = int(rng.integers(1, min(w, h) + 1))
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        box = Box(left, top, left + side, top + side)
        share = words.box_share(box, (w, h))
        assert share == pytest.approx(side * side / (w * h))
        for cropped in (True, False):
            text = words.where_looked_caption(int(rng.integers(1, 4)), cropped, share)
            assert "fills" not in text
            stated = percentages(text)
            if "under 1%" in text:
                assert round(share * 100) < 1
            elif "almost all" in text:
                assert round(share * 100) == 100 and share < 1
            elif stated:
                assert stated[0] == round(share * 100), (text, share)
            if "covers most of it" in text:
                assert share >= words.MOST_OF_THE_PHOTO and not cropped
            if not cropped and share < words.MOST_OF_THE_PHOTO:
                assert "spread over" in text and "closer to it" in text


def test_a_small_sunflower_in_a_garden_is_not_said_to_fill_the_photo(monkeypatch):
    """The reported case: the whole photo answered (no closer view), its bloom's box a small part of a wide photo."""
    from flowers_core.app import widgets
    from flowers_core.serve.localise import Localisation

    shown = []
    monkeypatch.setattr(widgets.st, "image", lambda img, caption=None, width=None: shown.append(caption))
    garden = Image.new("RGB", (4000, 2000), (30, 90, 30))
    pred = prediction(np.array([0.9] + [0.1 / 101] * 101), "species")
    pred.localisation = Localisation(Box(1500, 300, 2900, 1700), [Box(1500, 300, 2900, 1700)], used=False)
    assert widgets.show_where_looked(garden, pred)
    assert "fills" not in shown[0] and "spread over about 24% of it" in shown[0], shown[0]


# ---------------------------------------------------------------------------------------------
# 6. A photo being replaced: the last answer stays, greyed, until the new one's arrives
# ---------------------------------------------------------------------------------------------
def test_the_last_answer_stays_greyed_while_a_new_photo_uploads():
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from flowers_core.results import common

    if not common.has_weights("student_int8", REPO / "artifacts"):
        pytest.skip("no shipped INT8 student")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300).run()
    at.file_uploader[0].set_value(("first.png", png(Image.new("RGB", (120, 90), (200, 180, 40))), "image/png")).run()
    headline = at.subheader[0].value
    at.file_uploader[0].set_value(None).run()  # what the uploader sends while a replacing photo uploads
    assert not at.exception
    assert any(i.value == words.UPLOADING_NOTE for i in at.info)
    assert any(m.value == f"**{words.plain(headline)}**" for m in at.markdown), "the last answer, greyed"
    at.file_uploader[0].set_value(("second.png", png(Image.new("RGB", (120, 90), (40, 60, 200))), "image/png")).run()
    assert at.subheader and not any(i.value == words.UPLOADING_NOTE for i in at.info), "the new answer replaces it"
    at.file_uploader[0].set_value(None).run()
    at.button(key="classify_forget_answer").click().run()
    assert any(i.value == "Your answer will appear here." for i in at.info)


def test_the_latency_page_sets_a_1_thread_run_against_no_2_thread_record():
    """The reported case: a 1-thread live run beside a 2-thread record. No stored record has 1 thread, so the page
    says that plainly and shows no stored column or ratio."""
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from flowers_core.results import common
    from flowers_core.shipped import paths

    if not common.has_weights("student_int8", REPO / "artifacts"):
        pytest.skip("no shipped INT8 student")
    report = paths.LATENCY.read_or_none(REPO / "artifacts")
    if report is None or any(r.get("environment", {}).get("threads") == 1 for r in stages.stored_runs(report)):
        pytest.skip("a stored 1-thread record exists")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300).run()
    at.switch_page("app_pages/latency.py").run()
    at.multiselect(key="lat_models").set_value(["student"]).run()
    at.multiselect(key="lat_prec").set_value(["INT8"]).run()
    at.slider(key="lat_threads").set_value(1).run()
    at.slider(key="lat_iters").set_value(5).run()
    at.button(key="lat_run").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any(c.value.startswith("No stored figure was measured on a machine like this one") and "1 thread)" in c.value
               for c in at.caption), [c.value for c in at.caption]
    live = at.table[0].value
    assert "stored median (ms)" not in live.columns and "live ÷ stored" not in live.columns
    assert not any("quieter" in m.value for m in at.markdown)


def test_the_gate_trade_off_is_worded_from_its_numbers():
    from flowers_core.results.answer_rules import trade_off_words

    def c(t, told, refused):
        return {"threshold": t, "non_flower_not_a_flower": told, "flowering_not_a_flower": refused,
                "non_flower_named": 0.0}

    apart = [c(0.04, 0.97, 0.037), c(0.02, 0.91, 0.013), c(0.01, 0.83, 0.007)]
    words = trade_off_words(apart, apart[2])
    assert words.startswith("No threshold measured reaches both targets")
    assert "the most everyday photos told is 83.00% (threshold 0.0100)" in words
    assert "costs 3.70% of flowering photos (threshold 0.0400)" in words
    both = [*apart, c(0.03, 0.96, 0.009)]
    assert trade_off_words(both, both[3]).startswith("Threshold 0.0300 reaches both targets")
