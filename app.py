"""Flowers-102 demo: `streamlit run app.py`. Navigation only; each page lives in pages/."""
import streamlit as st

from flowers_core.app.handover import warm_up

st.set_page_config(page_title="Flower identifier", page_icon="🌼", layout="wide")

PAGES = {  # two audiences: a visitor identifying a flower, and whoever wants to see how it works
    "Identify": [
        st.Page("pages/classify.py", title="Classify", icon="🌼", default=True),
        st.Page("pages/species.py", title="Species", icon="🌸"),
    ],
    "How it works": [
        st.Page("pages/compare.py", title="Compare models", icon="⚖️"),
        st.Page("pages/explain.py", title="Explain", icon="🔍"),
        st.Page("pages/confusions.py", title="Confusions", icon="🔀"),
        st.Page("pages/latency.py", title="Latency", icon="⏱️"),
        st.Page("pages/report.py", title="Report", icon="📊"),
    ],
}

page = st.navigation(PAGES)  # first: a cold server shows the app's navigation at once
warm_up(page)  # a cold server: the page's heading and a spinner while the app's modules load
from flowers_core.app import explanations, widgets  # noqa: E402  (loaded by warm_up, under its spinner)

try:
    widgets.run_guarded(page)
finally:  # after the page (st.stop included): the first visitor's page is never slowed by it
    explanations.warm_in_background()
