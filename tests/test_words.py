"""The app's words: species names read as names, each verdict reads true, and the taxonomy covers every class
once."""
from __future__ import annotations

import numpy as np

from _app import REPO, real_artifacts_ready
from flowers_core.serve import words
from flowers_core.shipped import manifest as art


def test_species_names_read_as_names():
    from flowers_core.serve.words import display_name

    assert display_name("prince of wales feathers") == "Prince of Wales feathers"
    assert display_name("black-eyed susan") == "Black-eyed Susan"
    assert display_name("pink-yellow dahlia?") == "Pink-yellow dahlia"
    assert display_name("rose") == "Rose" and display_name("") == ""
    assert display_name("sunflower", start=False) == "sunflower"
    assert display_name("black-eyed susan", start=False) == "black-eyed Susan"
    assert display_name("bolero deep blue", start=False) == "Bolero Deep Blue"


def _prediction(probs: dict[str, float], verdict: str, unfamiliar: bool | None = None):
    from flowers_core.serve.answer import Prediction

    labels = list(probs) + [f"other {i}" for i in range(102 - len(probs))]
    rest = (1 - sum(probs.values())) / (102 - len(probs))
    p = np.array(list(probs.values()) + [rest] * (102 - len(probs)), dtype=np.float32)
    order = np.argsort(-p)
    return Prediction(int(order[0]), labels[order[0]], float(p[order[0]]), 1.0,
                      [(labels[i], float(p[i])) for i in order[:5]], verdict=verdict, unfamiliar=unfamiliar, probs=p)


def test_each_verdict_reads_true():
    """Each verdict's words agree with its numbers: the names and percentages it gives are the ones shown,
    a 'not sure' never sits beside an unexplained high score, names read mid-sentence as a person writes them."""
    pass
    from flowers_core.serve.words import NOT_SURE_HEADLINE, NOT_SURE_NONE_HEADLINE, NOT_SURE_UNFAMILIAR_HEADLINE

    head, line = words.verdict_text(_prediction({"sunflower": 0.97}, "species"))
    assert (head, line) == ("This is a sunflower", "It is almost certainly a sunflower (97% confident).")
    assert words.confidence_metric(_prediction({"sunflower": 0.97}, "species"))[:2] == ("Confidence", "97%")

    unusual = _prediction({"black-eyed susan": 0.99}, "not_sure", unfamiliar=True)
    head, line = words.verdict_text(unusual)
    assert head == NOT_SURE_UNFAMILIAR_HEADLINE, "a hedged answer leads with its doubt, not a species"
    assert "closest of the 102 species I know is a black-eyed Susan" in line and "%" not in line
    assert words.confidence_metric(unusual) is None, "no large score beside a hedged answer"
    assert words.verdict_text(unusual, several=True)[0] == words.NOT_SURE_UNFAMILIAR_SEVERAL_HEADLINE

    head, line = words.verdict_text(_prediction({"english marigold": 0.4, "rose": 0.3, "daisy": 0.02}, "not_sure"))
    assert head == NOT_SURE_HEADLINE
    assert line.startswith("It could be an English marigold (40%) or a rose (30%): this photo fits"), line
    assert "daisy" not in line, "a species under CANDIDATE_MIN_PROB is not named"

    head, line = words.verdict_text(_prediction({"rose": 0.3, "tiger lily": 0.2}, "not_sure", unfamiliar=True))
    assert head == NOT_SURE_UNFAMILIAR_HEADLINE and "a rose or a tiger lily" in line and "%" not in line
    assert words.verdict_text(_prediction({"rose": 0.3}, "not_sure", unfamiliar=True), several=True)[0] == \
        words.NOT_SURE_UNFAMILIAR_SEVERAL_HEADLINE == "I'm not sure — these photos look unlike the ones I learned from"

    head, line = words.verdict_text(_prediction({"rose": 0.04}, "not_sure"))
    assert head == NOT_SURE_NONE_HEADLINE and "a rose, gets 4%" in line

    assert words.verdict_text(_prediction({"rose": 0.5}, "not_a_flower"))[0] == words.NOT_A_FLOWER_HEADLINE
    assert words.confidence_metric(_prediction({"rose": 0.5}, "not_a_flower")) is None
    assert words.with_article("english marigold", start=True) == "An English marigold"
    assert words.with_article("bishop of llandaff") == "a Bishop of Llandaff"
    assert words.with_article("prince of wales feathers") == "Prince of Wales feathers", "a plural name takes no article"
    assert words.with_article("watercress", start=True) == "Watercress"


def test_species_taxonomy_covers_every_class_once():
    """assets/species_taxonomy.csv: one row per Flowers-102 class, a scientific name, a rank, a family and what
    each row was checked against."""
    import csv

    from flowers_core.serve.words import TAXONOMY_COLUMNS, TAXONOMY_CSV, TAXONOMY_RANKS

    with TAXONOMY_CSV.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == TAXONOMY_COLUMNS
    labels = [r["label"] for r in rows]
    assert len(labels) == len(set(labels)) == 102
    assert sorted(labels) == sorted(art.class_names(REPO / "artifacts")) if real_artifacts_ready() else True
    for r in rows:
        assert r["rank"] in TAXONOMY_RANKS and r["scientific_name"] and r["family"].endswith("aceae"), r
        assert r["checked_against"], r
    assert sum(r["rank"] == "genus" for r in rows) > 20, "many Flowers-102 classes are genera"
