"""Texts of the app that a browser driver looks for (``bench.browser``, the e2e test), species names as a
visitor reads them and their scientific names: kept apart from ``ui`` so that the driver knows them without
importing Streamlit."""
import csv
from functools import cache

from ..gallery import ASSETS

# Each Flowers-102 class's scientific name, rank (species or genus) and family, with the reference it was
# checked against (its own column): shown with an answer and on the Species page.
TAXONOMY_CSV = ASSETS / "species_taxonomy.csv"
TAXONOMY_COLUMNS = ("label", "scientific_name", "rank", "family", "note", "checked_against")
TAXONOMY_RANKS = ("species", "genus", "cultivar", "family")  # several Flowers-102 classes are a genus or more
UPLOAD_LABEL = "Upload a flower photo"
CRASH_MARKER = "Sorry, something went wrong on this page."
# the headlines of the answers that name no species (``ui.verdict_text``); a species answer names it
NOT_A_FLOWER_HEADLINE = "This doesn't look like a flower"
NOT_SURE_UNFAMILIAR_HEADLINE = "I'm not sure — this photo looks unlike the ones I learned from"
NOT_SURE_HEADLINE = "I'm not sure — it may be one of these"
NOT_SURE_NONE_HEADLINE = "I'm not sure — no species I know fits it well"  # no candidate reaches CANDIDATE_MIN_PROB
# several photos sent as one plant whose own answers name different species (``inference.photos_disagree``)
DIFFERENT_FLOWERS_HEADLINE = "These photos look like different flowers"
NOT_A_FLOWER_SEVERAL_HEADLINE = "These photos don't look like a flower"
NOT_SURE_START = "I'm not sure"  # every "not sure" headline that names no species starts so
NAMELESS_HEADLINES = (NOT_A_FLOWER_HEADLINE, NOT_A_FLOWER_SEVERAL_HEADLINE, NOT_SURE_START, DIFFERENT_FLOWERS_HEADLINE)
ADD_PHOTO_LABEL = "Same plant? Add another photo of it"  # the start of ``ui.add_photo_box``'s label
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
    """The caption of the "where I looked" picture (``ui.show_where_looked``)."""
    if not cropped:
        return "Where I looked: the flower fills the photo, so I looked at the whole photo."
    several = (f" I found {blooms} flowers and looked at the clearest one; the white squares are the others."
               if blooms > 1 else "")
    return ("Where I looked: the yellow square is the part of your photo I looked at closely, together with the "
            "whole photo." + several + " If it is not on the flower, try a photo closer to it.")
