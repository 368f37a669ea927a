"""A page opened on a cold server: its heading and a spinner while the app's modules load, so a shared link
(``/explain``) shows where it leads within a moment, not a blank page. Imports only Streamlit and the standard
library, so that it runs before anything heavy: ``app.py`` calls ``warm_up`` right after its navigation.

No page loads torch to open: every page's common path runs on onnxruntime (torch loads when a visitor asks Explain
for a method that needs gradients, under its own spinner)."""
from __future__ import annotations

import importlib
import sys

import streamlit as st

# What every page needs loaded before it can draw: the Streamlit glue (it brings numpy, onnxruntime, PIL, pandas).
APP_MODULES = ("flowers_core.app.widgets", "flowers_core.app.explanations", "flowers_core.app.picker")


def warm_up(page) -> None:
    """On a cold server (the modules not yet loaded), show ``page``'s heading and a spinner while they load, then
    clear them before the page draws its own."""
    needed = [m for m in APP_MODULES if m not in sys.modules]
    if not needed:
        return
    placeholder = st.empty()
    with placeholder.container():
        st.title(f"{page.icon} {page.title}")
        with st.spinner("Opening the page: the first visit after the app wakes up takes a few seconds…"):
            for name in needed:
                importlib.import_module(name)
    placeholder.empty()
