"""Texts of the app that a browser driver looks for (``bench.browser``, the e2e test): kept apart from
``ui`` so that the driver knows them without importing Streamlit."""
UPLOAD_LABEL = "Upload a flower photo"
CRASH_MARKER = "Sorry, something went wrong on this page."
# the headlines of the answers that name no species (``ui.verdict_text``); a species answer names it
NOT_A_FLOWER_HEADLINE = "This doesn't look like a flower"
NOT_SURE_UNFAMILIAR_HEADLINE = "I'm not sure — this photo looks unlike the ones I learned from"
NOT_SURE_HEADLINE = "I'm not sure — it may be one of these"
NAMELESS_HEADLINES = (NOT_A_FLOWER_HEADLINE, NOT_SURE_UNFAMILIAR_HEADLINE, NOT_SURE_HEADLINE)
NAME_WORDS = {"wales": "Wales", "llandaff": "Llandaff", "william": "William", "susan": "Susan"}  # names in species names


def display_name(label: str) -> str:
    """A species as a visitor reads it: the first letter and the personal and place names in it capitalised,
    and without the question mark one Flowers-102 label carries ("pink-yellow dahlia?")."""
    name = " ".join(NAME_WORDS.get(word, word) for word in label.rstrip("?").split(" "))
    return name[:1].upper() + name[1:]


def where_looked_caption(blooms: int, cropped: bool) -> str:
    """The caption of the "where I looked" picture (``ui.show_where_looked``)."""
    if not cropped:
        return "Where I looked: the flower fills the photo, so I looked at the whole photo."
    several = (f" I found {blooms} flowers and looked at the clearest one; the white squares are the others."
               if blooms > 1 else "")
    return ("Where I looked: the yellow square is the part of your photo I looked at closely, together with the "
            "whole photo." + several + " If it is not on the flower, try a photo closer to it.")
