"""Flowers-102 demo: `streamlit run app.py`. Navigation only; each page lives in app_pages/ (not pages/: a folder
of that name puts Streamlit in its older multipage mode until this script runs, so a deep link opened first on a
cold server showed the raw file list; DECISIONS.md H1)."""
import streamlit as st

from flowers_core.app.memory import limit_arenas
from flowers_core.app.warm_up import warm_up

limit_arenas()  # glibc keeps freed memory in up to 8 arenas per core: 2 in all, before the visitors' threads start

st.set_page_config(page_title="Flower identifier", page_icon="🌼", layout="wide")

PAGES = {  # two audiences: a visitor identifying a flower, and whoever wants to see how it works
    "Identify": [
        st.Page("app_pages/classify.py", title="Classify", icon="🌼", default=True),
        st.Page("app_pages/species.py", title="Species", icon="🌸"),
    ],
    "How it works": [
        st.Page("app_pages/compare.py", title="Compare models", icon="⚖️"),
        st.Page("app_pages/explain.py", title="Explain", icon="🔍"),
        st.Page("app_pages/confusions.py", title="Confusions", icon="🔀"),
        st.Page("app_pages/latency.py", title="Latency", icon="⏱️"),
        st.Page("app_pages/report.py", title="Report", icon="📊"),
    ],
}

page = st.navigation(PAGES)  # first: a cold server shows the app's navigation at once
warm_up(page)  # a cold server: the page's heading and a spinner while the app's modules load
from flowers_core.app import widgets  # noqa: E402  (loaded by warm_up, under its spinner)

widgets.run_guarded(page)
