"""Deep links (``/explain``) opened first on a cold server: a page run on its own (Streamlit's older multipage mode)
is handed to ``app.py``'s navigation at once, and ``app.py`` shows the page's heading with a spinner while the app's
modules load. Imports only Streamlit and the standard library, so that it runs before anything heavy: every page
calls ``hand_over_to_app()`` before its own imports, ``app.py`` calls ``warm_up`` right after its navigation."""
from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

import streamlit as st

log = logging.getLogger("flowers_app")

# ---------------------------------------------------------------------------------------------
# Deep links on a cold server
# ---------------------------------------------------------------------------------------------
def _ran_without_app() -> bool:
    """True when this script run is a page file run on its own, not through ``app.py``'s navigation.

    Streamlit keeps its older multipage mode (every file in ``pages/`` is a page, ``app.py`` one of them) until
    some run calls ``st.navigation``: it decides per process from ``PagesManager.uses_pages_directory``, set
    when ``pages/`` exists beside the main script. So when a fresh server's first request is a deep link
    (``/explain``), Streamlit runs ``pages/explain.py`` alone: file names in the sidebar, no wide layout, no
    ``run_guarded``, and for every later visitor until someone opens ``/``. That mode lists ``app.py`` itself
    as a page, which ``app.py``'s own navigation never does. (Two first visitors within the same instant: the
    second may see the older mode once; its next click runs through ``app.py``.)
    """
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None or not PagesManager.uses_pages_directory:  # outside a script run (tests, tools), or app.py's
        return False
    main = str(Path(ctx.main_script_path).resolve())
    pages = ctx.pages_manager.get_pages()
    scripts = {str(Path(p["script_path"]).resolve()) for p in pages.values() if p.get("script_path")}
    current = pages.get(ctx.page_script_hash, {}).get("script_path")
    return main in scripts and current is not None and str(Path(current).resolve()) != main


_LOOKED = False  # whether this process has looked (the first page run does)


def hand_over_to_app() -> None:
    """Leave Streamlit's older multipage mode for good and run the requested page again through ``app.py``.

    Called first by every page (before it draws anything); it looks once per server process, at the first page
    run, as Streamlit decides the mode once per process: a later run never reruns (a rerun there would drop the
    click that started it). The rerun keeps the page's URL, and ``app.py``'s ``st.navigation`` resolves it to the
    same page (both derive it from the file name).
    """
    global _LOOKED
    if _LOOKED:
        return
    _LOOKED = True
    if not _ran_without_app():
        return
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False  # what st.navigation sets; read by Streamlit at every run
    log.info("a page was requested before app.py ran: handing it to app.py's navigation")
    st.rerun()  # raises: the page stops here and runs again through app.py


# What each page needs loaded before it can draw (by its URL path; "" is Classify): the Streamlit glue for every
# page, and torch with the explanation code for the pages that run torch models. Loaded under ``warm_up``'s spinner.
APP_MODULES = ("flowers_core.app.widgets", "flowers_core.app.explanations", "flowers_core.app.picker")
PAGE_MODULES = {"explain": ("torch", "flowers_core.explain.maps", "flowers_core.explain.faithfulness"),
                "compare": ("torch",), "latency": ("torch",)}


def warm_up(page) -> None:
    """On a cold server (the modules ``page`` needs not yet loaded), show the page's heading and a spinner while
    they load, then clear them before the page draws its own: a shared link shows where it leads within a
    moment, not a blank page."""
    needed = [m for m in (*APP_MODULES, *PAGE_MODULES.get(page.url_path, ())) if m not in sys.modules]
    if not needed:
        return
    placeholder = st.empty()
    with placeholder.container():
        st.title(f"{page.icon} {page.title}")
        with st.spinner("Opening the page: the first visit after the app wakes up takes a few seconds…"):
            for name in needed:
                importlib.import_module(name)
    placeholder.empty()
