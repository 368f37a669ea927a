"""Texts of the app that a browser driver looks for (``bench.browser``, the e2e test): kept apart from
``ui`` so that the driver knows them without importing Streamlit."""
UPLOAD_LABEL = "Upload a flower photo"
CRASH_MARKER = "Sorry, something went wrong on this page."
# the headlines of the answers that name no species (``ui.verdict_text``); a species answer names it
NOT_A_FLOWER_HEADLINE = "This doesn't look like a flower"
NOT_SURE_UNFAMILIAR_HEADLINE = "I'm not sure — this photo looks unlike the ones I learned from"
NOT_SURE_HEADLINE = "I'm not sure — it may be one of these"
NAMELESS_HEADLINES = (NOT_A_FLOWER_HEADLINE, NOT_SURE_UNFAMILIAR_HEADLINE, NOT_SURE_HEADLINE)
