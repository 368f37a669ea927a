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
# above the last answer, greyed, once the upload box is emptied (the visitor removed the photo, or is replacing it)
UPLOADING_NOTE = ("Uploading your new photo… its answer will appear here in place of the greyed one below. If you "
                  "removed your photo instead, the greyed answer was for it.")
CRASH_MARKER = "Sorry, something went wrong on this page."
# the headlines of the answers that name no species (``verdict_text``); a species answer names it
NOT_A_FLOWER_HEADLINE = "This doesn't look like a flower"
NOT_SURE_UNFAMILIAR_HEADLINE = "I'm not sure — this photo looks unlike the ones I learned from"
NOT_SURE_UNFAMILIAR_SEVERAL_HEADLINE = "I'm not sure — these photos look unlike the ones I learned from"
NOT_SURE_HEADLINE = "I'm not sure — it may be one of these"
NOT_SURE_NONE_HEADLINE = "I'm not sure — no species I know fits it well"  # no candidate reaches CANDIDATE_MIN_PROB
# several photos sent as one plant whose answers do not all agree (``answer.agreeing_photos``)
DIFFERENT_FLOWERS_HEADLINE = "These photos look like different flowers"
NOT_A_FLOWER_SEVERAL_HEADLINE = "These photos don't look like a flower"
NOT_SURE_START = "I'm not sure"  # every "not sure" headline that names no species starts so
NAMELESS_HEADLINES = (NOT_A_FLOWER_HEADLINE, NOT_A_FLOWER_SEVERAL_HEADLINE, NOT_SURE_START, DIFFERENT_FLOWERS_HEADLINE)
LIME_NOTE_MARK = "patches of similar colour"  # in LIME's note under its map: the browser driver waits for it
ADD_PHOTO_LABEL = "Same plant? Add another photo of it"  # the start of ``picker.add_photo_box``'s label


def add_photo_label(shown: int, most: int) -> str:
    """The 'add another photo' box's label. It promises no surer answer: the answer from all the photos can be
    less sure than one of them (``combined_doubt`` then says why)."""
    return (f"{ADD_PHOTO_LABEL} (another view of its flower) and I'll answer from all of them together — {shown} "
            f"of {most} so far")
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


MOST_OF_THE_PHOTO = 0.6  # a box over this share of the photo's area "covers most of it"


def box_share(box, size: tuple[int, int]) -> float:
    """The share of a photo of ``size`` (width, height) that ``box`` (``localise.Box``, in its pixels) covers,
    the box clipped to the photo: what the "where I looked" caption says of its geometry."""
    w, h = size
    if w <= 0 or h <= 0:
        return 0.0
    bw = max(0, min(box.right, w) - max(box.left, 0))
    bh = max(0, min(box.bottom, h) - max(box.top, 0))
    return bw * bh / (w * h)


def _share_text(share: float) -> str:
    """"about 40%" (never "0%" or "100%" for a part that is neither)."""
    pct = round(share * 100)
    if share < 1 and pct >= 100:
        return "almost all"
    return "under 1%" if pct < 1 else f"about {pct}%"


def where_looked_caption(blooms: int, cropped: bool, share: float | None = None) -> str:
    """The caption of the "where I looked" picture (``widgets.show_where_looked``), true of its geometry:
    ``share`` is the share of the photo the box around the strongest bloom covers (``box_share``; None: not
    measured, then no size is claimed). ``cropped``: that box was classified as a closer view."""
    others = (f" I found {blooms} flowers; the white squares are the others." if blooms > 1 else "")
    if cropped:
        size = f", {_share_text(share)} of your photo," if share is not None else ""
        return ("Where I looked: the yellow square" + size + " is the part I looked at closely, together with "
                "the whole photo." + others + " If it is not on the flower, try a photo closer to it.")
    if share is None:
        return "Where I looked: the whole photo." + others
    if share >= MOST_OF_THE_PHOTO:
        return (f"Where I looked: the whole photo. What looks like a flower to me covers most of it "
                f"({_share_text(share)}), so a closer view would show nothing new." + others)
    return (f"Where I looked: the whole photo. What looks like a flower to me is spread over {_share_text(share)} "
            "of it, too spread out to cut one closer view from." + others
            + " If your flower is small in the photo, try a photo closer to it.")


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


ALMOST_CERTAIN = 0.9  # "almost certainly" from here: a hedged answer never shows a score this high


def confidence_words(prob: float) -> str:
    return "almost certainly" if prob >= ALMOST_CERTAIN else "probably" if prob >= 0.6 else "possibly"


def scores_shown(pred) -> bool:
    """Whether the page may show this answer's percentages (the candidates', the top-5 chart's): a species
    answer's, yes; "not a flower", no; a "not sure" only when they agree with its doubt: not when the novelty
    check finds the photo unlike the training photos (its scores cannot vouch for any species) and not when a
    species reaches ``ALMOST_CERTAIN`` ("I'm not sure" beside "Lotus 96%" contradicts itself); then the species
    are shown as a ranking without scores."""
    if pred.verdict == "species":
        return True
    if pred.verdict == "not_a_flower":
        return False
    return not pred.unfamiliar and pred.prob < ALMOST_CERTAIN


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
        unfamiliar_headline = NOT_SURE_UNFAMILIAR_SEVERAL_HEADLINE if several else NOT_SURE_UNFAMILIAR_HEADLINE
        if pred.unfamiliar and pred.leading:  # one species leads, but the photo is unlike every species' photos:
            # its score cannot vouch for it, so the headline hedges and names no species, and no score is given
            return unfamiliar_headline, (
                f"The closest of the 102 species I know is {with_article(pred.label)}, but {your} unlike the photos "
                "I learned from, so I can't vouch for it: it may be a flower I don't know, or an unusual view of one "
                "I do. Compare with the photos below.")
        candidates = pred.candidates()
        if not candidates:  # every species under CANDIDATE_MIN_PROB: nothing worth naming as a candidate
            return NOT_SURE_NONE_HEADLINE, (
                f"None of the 102 species I know gets more than {CANDIDATE_MIN_PROB:.0%} (the best, "
                f"{with_article(pred.label)}, gets {pred.prob:.0%}): it may be a flower I don't know, or the flower "
                "is hard to see. A closer, sharper photo of a single flower helps.")
        names = _names(candidates, scores=scores_shown(pred))
        if pred.unfamiliar:  # the novelty check: unlike every species, whatever the softmax says (no scores)
            return unfamiliar_headline, (
                f"The closest species I know: {_names(candidates, scores=False)}, but {your} unlike the photos I "
                "learned from: it may be a flower I "
                "don't know, or an unusual view of one I do. A closer, sharper photo of a single flower helps.")
        return NOT_SURE_HEADLINE, (
            f"It could be {names}: {this} {'fit' if several else 'fits'} several species, or the flower is hard "
            "to see. A closer, sharper photo of a single flower helps.")
    return f"This is {with_article(pred.label)}", (
        f"It is {confidence_words(pred.prob)} {with_article(pred.label)} ({pred.prob:.0%} confident).")


def top_guesses_title(several: bool = False) -> str:
    return "Top 5 guesses" + (" (all photos together)" if several else "")


def ranking_text(pred, several: bool = False) -> str:
    """A hedged answer's closest species as a ranking without scores (Markdown), in place of the top-5 chart
    when its scores would contradict its doubt (``scores_shown``)."""
    names = "\n".join(f"{rank}. {plain(display_name(label))}" for rank, (label, _) in enumerate(pred.top5, start=1))
    return (f"**{top_guesses_title(several)}, closest first** (no scores: I'm not sure of any of them, so a score "
            f"would say more than I know)\n\n{names}")


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


# ---------------------------------------------------------------------------------------------
# Several photos of one plant: a combined answer less sure than its surest photo says why
# ---------------------------------------------------------------------------------------------
def _sureness(pred) -> tuple[int, int]:
    """How sure an answer is, to compare a combined answer with its photos': a species answer above a hedge
    above "not a flower", and among species answers the confidence word's rank (``confidence_words``)."""
    if pred.verdict == "species":
        return 2, (2 if pred.prob >= ALMOST_CERTAIN else 1 if pred.prob >= 0.6 else 0)
    return (1, 0) if pred.verdict == "not_sure" else (0, 0)


def surest_photo(preds) -> int | None:
    """The index of the photo whose own answer is surest (the most probable species answer first), None
    when none names a species."""
    named = [i for i, p in enumerate(preds) if p.verdict == "species"]
    return max(named, key=lambda i: preds[i].prob) if named else None


def _they(indices, singular: str, plural: str) -> str:
    """"photo 2 looks" / "photos 1 and 3 look": the photos named, with the verb that agrees with them."""
    return f"{_photo_numbers(indices)} {singular if len(indices) == 1 else plural}"


def combined_doubt(preds, combined) -> str | None:
    """Why the combined answer of photos of one plant is less sure than its surest photo on its own (None when it
    is not): which photo was surest, and what made the answer from all of them less sure (the photos that look
    unlike the training photos, whose typicality the combined answer averages, or the photos torn between
    species), with what the visitor can do. Never a score for a hedged answer."""
    best = surest_photo(preds)
    if best is None or len(preds) < 2 or _sureness(combined) >= _sureness(preds[best]):
        return None
    own = f"On its own, {_photo_numbers([best])} looks like {with_article(preds[best].label)} to me"
    others = [i for i in range(len(preds)) if i != best]
    if combined.verdict == "species":  # still named, with a weaker word
        return (f"{own} ({preds[best].prob:.0%} confident), but {_they(others, 'fits', 'fit')} it less well, so "
                f"from all the photos together I'm less sure: {confidence_words(combined.prob)} "
                f"{with_article(combined.label)} ({combined.prob:.0%}).")
    if combined.verdict == "not_a_flower":
        return (f"{own}, but I judge the photos together, and together they look less like a flower to me (I "
                "average how much each one looks like a flower).")
    tip = (f" If {_photo_numbers([best])} shows the flower best, remove the others and I'll answer from it alone; "
           "or add a clearer photo of the flower in their place.")
    if combined.unfamiliar:
        odd = [i for i in others if preds[i].unfamiliar]
        why = (f"{_they(odd, 'looks', 'look')} unlike the photos I learned from, and my answer from all of them "
               "weighs every photo alike, so together they look unlike them too" if odd else
               "together the photos look unlike the ones I learned from (I average how familiar each one looks)")
        return f"{own}, but I judge the photos together: {why}." + tip
    torn = [i for i in others if preds[i].verdict != "species"]
    why = (f"{_they(torn, 'fits', 'fit')} several species, and my answer from all of them needs a species that "
           "fits every photo" if torn else "together their answers spread over several species")
    return f"{own}, but I judge the photos together: {why}." + tip
