"""The words of an answer, written once for the app, the CLI and the browser driver (``bench.browser``, the e2e
tests): the headlines, the verdict in plain words, species names as a visitor reads them and their scientific
names, and text escaped for Streamlit's Markdown. Plain strings, no Streamlit."""
import csv
import re
from functools import cache

from ..shipped import catalog
from ..shipped.paths import ASSETS, ArtifactMissing
from .answer import CANDIDATE_MIN_PROB

# Each Flowers-102 class's scientific name, rank (species or genus) and family, with the reference it was
# checked against (its own column): shown with an answer and on the Species page.
TAXONOMY_CSV = ASSETS / "species_taxonomy.csv"
TAXONOMY_COLUMNS = ("label", "scientific_name", "rank", "family", "note", "checked_against")
TAXONOMY_RANKS = ("species", "genus", "cultivar", "family")  # several Flowers-102 classes are a genus or more
UPLOAD_LABEL = "Upload a flower photo"
CRASH_MARKER = "Sorry, something went wrong on this page."
# the headlines of the answers that name no species (``verdict_text``); a species answer names it
NOT_A_FLOWER_HEADLINE = "This doesn't look like a flower"
NOT_SURE_UNFAMILIAR_HEADLINE = "I'm not sure — this photo looks unlike the ones I learned from"
NOT_SURE_HEADLINE = "I'm not sure — it may be one of these"
NOT_SURE_NONE_HEADLINE = "I'm not sure — no species I know fits it well"  # no candidate reaches CANDIDATE_MIN_PROB
# several photos sent as one plant whose answers do not all agree (``answer.agreeing_photos``)
DIFFERENT_FLOWERS_HEADLINE = "These photos look like different flowers"
NOT_A_FLOWER_SEVERAL_HEADLINE = "These photos don't look like a flower"
NOT_SURE_START = "I'm not sure"  # every "not sure" headline that names no species starts so
NAMELESS_HEADLINES = (NOT_A_FLOWER_HEADLINE, NOT_A_FLOWER_SEVERAL_HEADLINE, NOT_SURE_START, DIFFERENT_FLOWERS_HEADLINE)
LIME_NOTE_MARK = "patches of similar colour"  # in LIME's note under its map: the browser driver waits for it
ADD_PHOTO_LABEL = "Same plant? Add another photo of it"  # the start of ``picker.add_photo_box``'s label
# proper nouns in species names (people, places and what they give their names to), capitalised mid-sentence too
NAME_WORDS = {w.lower(): w for w in ("Wales", "Llandaff", "William", "Susan", "English", "Peruvian", "Mexican",
                                     "Japanese", "Canterbury", "Californian", "Siam", "Barbeton", "Cape", "Lenten")}
# plural and mass names, which take no article ("This is watercress", not "a watercress")
NO_ARTICLE_LABELS = frozenset({"prince of wales feathers", "canterbury bells", "watercress", "love in the mist"})
# whole labels written as names: garden varieties, and a genus name used as the common name
NAME_LABELS = {"bishop of llandaff": "Bishop of Llandaff", "bolero deep blue": "Bolero Deep Blue",
               "cautleya spicata": "Cautleya spicata", "prince of wales feathers": "Prince of Wales feathers"}


def display_name(label: str, start: bool = True) -> str:
    """A species as a visitor reads it: the personal and place names in it capitalised, the first letter too
    unless it sits mid-sentence (``start=False``: "a sunflower", "a Black-eyed Susan"), and without the
    question mark one Flowers-102 label carries ("pink-yellow dahlia?")."""
    label = label.rstrip("?")
    name = NAME_LABELS.get(label) or " ".join(NAME_WORDS.get(word, word) for word in label.split(" "))
    return name[:1].upper() + name[1:] if start else name


@cache
def taxonomy() -> dict[str, dict]:
    """{Flowers-102 label: its row of ``TAXONOMY_CSV``}; empty when the table is not shipped."""
    if not TAXONOMY_CSV.is_file():
        return {}
    with TAXONOMY_CSV.open(newline="", encoding="utf-8") as f:
        return {row["label"]: row for row in csv.DictReader(f)}


def where_looked_caption(blooms: int, cropped: bool) -> str:
    """The caption of the "where I looked" picture (``widgets.show_where_looked``)."""
    if not cropped:
        return "Where I looked: the flower fills the photo, so I looked at the whole photo."
    several = (f" I found {blooms} flowers and looked at the clearest one; the white squares are the others."
               if blooms > 1 else "")
    return ("Where I looked: the yellow square is the part of your photo I looked at closely, together with the "
            "whole photo." + several + " If it is not on the flower, try a photo closer to it.")


MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")
# what Markdown's autolinker turns into a link even when escaped: a scheme's "://" and "www."
AUTOLINK_STARTS = re.compile(r"(?<=:)(?=//)|(?<=www)(?=\\\.)", re.IGNORECASE)


def plain(text: str) -> str:
    """``text`` escaped so that Streamlit's Markdown shows it literally (a visitor's file name may hold
    ``**bold**``, ``[a](link)`` or a bare ``https://…``, which must not turn into formatting or a live link):
    Markdown's specials are backslash-escaped and an invisible word joiner (U+2060) sits after a scheme's
    colon and after "www", where the autolinker would otherwise start a link."""
    return AUTOLINK_STARTS.sub("\u2060", MARKDOWN_SPECIALS.sub(r"\\\1", text))




def load_error(name: str, e: Exception) -> str:
    if isinstance(e, ArtifactMissing):
        return str(e)
    if isinstance(e, ImportError):
        return f"{catalog.title(name)} needs a module that is not available yet ({e})."
    return f"{catalog.title(name)} could not be loaded ({type(e).__name__}: {e})."



# ---------------------------------------------------------------------------------------------
# The verdict in plain words (Classify, and wherever a visitor sees a prediction)
# ---------------------------------------------------------------------------------------------
NOT_A_FLOWER_HINT = ("I need to see a flower in bloom: a seed head (like a dandelion clock), a bud or leaves alone "
                     "are not enough. Try a photo of one open flower, close up, filling most of the frame, in focus "
                     "and in daylight; the app knows 102 common garden and wild flowers.")


def confidence_words(prob: float) -> str:
    return "almost certainly" if prob >= 0.9 else "probably" if prob >= 0.6 else "possibly"


def with_article(name: str, start: bool = False) -> str:
    """"a sunflower", "an English marigold" (mid-sentence; ``start``: "A sunflower"); a plural or mass name takes
    none ("Prince of Wales feathers", "watercress")."""
    if name in NO_ARTICLE_LABELS:
        return display_name(name, start=start)
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"{article.capitalize() if start else article} {display_name(name, start=False)}"


def _names(labelled: list[tuple[str, float]], scores: bool = True) -> str:
    """"X (40%)", "X (40%) or Y (30%)", "X (40%), Y (30%) or Z (10%)"; without ``scores``, the names alone."""
    parts = [with_article(label) + (f" ({p:.0%})" if scores else "") for label, p in labelled]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def verdict_text(pred, several: bool = False) -> tuple[str, str]:
    """(headline, one line of explanation) of a Prediction's verdict, for a visitor; ``several``: the
    combined answer of several photos ("these photos"). The percentages named are the ones the page shows."""
    this = "these photos" if several else "this photo"
    your = "your photos look" if several else "your photo looks"
    if pred.verdict == "not_a_flower":
        return (NOT_A_FLOWER_SEVERAL_HEADLINE if several else NOT_A_FLOWER_HEADLINE), NOT_A_FLOWER_HINT
    if pred.verdict == "not_sure":
        if pred.unfamiliar and pred.leading:  # one species leads, but the photo is unlike every species' photos:
            # its score cannot vouch for it, so the headline hedges and names no species, and no score is given
            return NOT_SURE_UNFAMILIAR_HEADLINE.replace("this photo", this), (
                f"The closest of the 102 species I know is {with_article(pred.label)}, but {your} unlike the photos "
                "I learned from, so I can't vouch for it: it may be a flower I don't know, or an unusual view of one "
                "I do. Compare with the photos below.")
        candidates = pred.candidates()
        if not candidates:  # every species under CANDIDATE_MIN_PROB: nothing worth naming as a candidate
            return NOT_SURE_NONE_HEADLINE, (
                f"None of the 102 species I know gets more than {CANDIDATE_MIN_PROB:.0%} (the best, "
                f"{with_article(pred.label)}, gets {pred.prob:.0%}): it may be a flower I don't know, or the flower "
                "is hard to see. A closer, sharper photo of a single flower helps.")
        names = _names(candidates)
        if pred.unfamiliar:  # the novelty check: unlike every species, whatever the softmax says (no scores)
            return NOT_SURE_UNFAMILIAR_HEADLINE.replace("this photo", this), (
                f"The closest species I know: {_names(candidates, scores=False)}, but {your} unlike the photos I "
                "learned from: it may be a flower I "
                "don't know, or an unusual view of one I do. A closer, sharper photo of a single flower helps.")
        return NOT_SURE_HEADLINE, (
            f"It could be {names}: {this} {'fit' if several else 'fits'} several species, or the flower is hard "
            "to see. A closer, sharper photo of a single flower helps.")
    return f"This is {with_article(pred.label)}", (
        f"It is {confidence_words(pred.prob)} {with_article(pred.label)} ({pred.prob:.0%} confident).")


def confidence_metric(pred) -> tuple[str, str, str] | None:
    """(label, value, help) of the number beside the verdict, saying what the verdict says: a species answer's
    confidence; nothing for a hedged answer ("not sure": a large score would contradict its words) or "not a
    flower"."""
    if pred.verdict == "species":
        return "Confidence", f"{pred.prob:.0%}", "How sure the model is among the 102 species it knows."
    return None  # a hedged answer shows no large score: its words say why it is hedged


def agreement(student, teacher) -> tuple[str, str]:
    """("agree" | "disagree" | "unnamed", a sentence) comparing two models' answers to one photo: the same best
    guess is an agreement only when both would name it."""
    guess = display_name(student.label)
    if student.class_id != teacher.class_id:
        return "disagree", f"The student and the ensemble disagree: **{guess}** vs **{display_name(teacher.label)}**."
    named = [p.verdict == "species" for p in (student, teacher)]
    if all(named):
        return "agree", f"The student and the ensemble agree: both say **{guess}**."
    return "unnamed", (f"Both models' best guess is **{guess}**, but {'only one' if any(named) else 'neither'} of them "
                       "would name it (each model's answer is under its name above).")




def taxonomy_text(row: dict) -> str:
    """"*Helianthus annuus* · family Asteraceae"; a class that is a genus, a garden variety or a whole family
    says so (the app cannot tell their species apart)."""
    name, rank = row["scientific_name"], row["rank"]
    if rank == "cultivar":
        base, _, variety = name.partition(" '")
        text = f"*{base}* '{variety} (a garden variety)"
    elif rank == "genus":
        text = f"*{name}*, a genus (its species are not told apart)"
    elif rank == "family":
        text = "several genera"
    else:
        text = f"*{name}*"
    return f"{text} · family {row['family']}"


def own_answer_short(pred) -> str:
    """A photo's own answer in a few words, for the lists of photos that disagree."""
    if pred.verdict == "not_a_flower":
        return "not a flower"
    if pred.verdict == "species":
        return with_article(pred.label)
    return f"maybe {with_article(pred.label)} (not sure)"


def own_answer_line(pred) -> str | None:
    """The line under a photo's own headline in the multi-photo view: a species answer's confidence; a hedged
    answer's closest species without a score (its headline hedges); nothing for "not a flower"."""
    if pred.verdict == "species":
        return f"{pred.prob:.0%} confident"
    if pred.verdict == "not_sure":
        return f"Closest: {display_name(pred.label)} (not sure)"
    return None


def _photo_numbers(indices) -> str:
    numbers = [str(i + 1) for i in indices]
    return ("photo " if len(numbers) == 1 else "photos ") + (", ".join(numbers[:-1]) + " and " + numbers[-1]
                                                           if len(numbers) > 1 else numbers[0])


def several_caption(agreement, n: int) -> str:
    """The caption under a multi-photo answer, saying what the answer is made of (never contradicting it)."""
    if agreement.apart:
        return f"Your {n} photos: each photo's own answer is below."
    return f"Your {n} photos of one plant: one answer from all of them; each photo's own answer is below."
