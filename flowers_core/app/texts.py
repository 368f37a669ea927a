"""Texts of the app that a browser driver looks for (``bench.browser``, the e2e test): kept apart from
``ui`` so that the driver knows them without importing Streamlit."""
UPLOAD_LABEL = "Upload a flower photo"
CRASH_MARKER = "Sorry, something went wrong on this page."
