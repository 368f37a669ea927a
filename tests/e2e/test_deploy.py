"""What a hosted demo meets that a developer's warm server does not: deep links on a cold server.

A shared link to a page (``/explain``) can be the very first request a freshly woken server gets. With a
``pages/`` folder beside ``app.py`` Streamlit would choose its older multipage mode until ``st.navigation`` runs
and show the page file on its own (file names in the sidebar, no wide layout, no ``app.py`` error handling); the
pages live in ``app_pages/`` so ``app.py`` always runs first (DECISIONS.md H1). This test starts a fresh server per
link and opens the link first. Run:
``python -m pytest -q tests/e2e/test_deploy.py -m e2e``.
"""
from __future__ import annotations

import contextlib
import re

import pytest

from flowers_core.bench.browser import CHROMIUM, AppDriver, StreamlitServer, chromium_available, chromium_page
from flowers_core.shipped.paths import REPO_ROOT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(not chromium_available(),
                       reason=f"{CHROMIUM} is absent (apt-get install chromium, or bash .ci/install_browser.sh)"),
]


def app_titles() -> list[str]:
    """The page titles app.py gives its navigation, read from app.py itself (one place)."""
    return re.findall(r'st\.Page\("app_pages/\w+\.py", title="([^"]+)"', (REPO_ROOT / "app.py").read_text())


@pytest.mark.parametrize("path, heading", [("explain", "Where does the model look"), ("species", "species")])
def test_deep_link_first_on_a_fresh_server(app_artifacts, path, heading):
    titles = app_titles()
    assert len(titles) >= 7, "app.py's st.Page list was not found"
    with StreamlitServer(artifacts=app_artifacts) as server, chromium_page() as page:
        app = AppDriver(page, server.url)
        app.open(path)  # the first request this server gets
        # wait (bounded) for app.py's navigation instead of a moment between runs
        with contextlib.suppress(Exception):
            page.wait_for_function("t => [...document.querySelectorAll('[data-testid=\"stSidebarNav\"] a')]"
                                   ".some(a => a.innerText.includes(t))", arg=titles[-1], timeout=30_000)
        app.wait_idle()
        shown = [title for title, _ in app.nav_links()]
        assert shown == titles, f"/{path} first: the sidebar shows {shown}, not app.py's navigation"
        assert page.url.rstrip("/").endswith("/" + path), f"/{path} first ended on {page.url}"
        main = page.locator('[data-testid="stMain"]').inner_text()
        assert heading in main, f"/{path} first does not show its page: {main[:300]}"
        assert not app.error_texts(), f"/{path} first: {app.error_texts()}"
        # app.py's wide layout (a page run alone gets Streamlit's centred 736 px column)
        width = page.locator('[data-testid="stMainBlockContainer"]').bounding_box()["width"]
        assert width > 900, f"/{path} first: the main column is {width:.0f} px wide, not app.py's wide layout"
        # the next visitor (a fresh browser session on the same server) gets app.py's navigation too
        app.open("species" if path != "species" else "explain")
        assert [title for title, _ in app.nav_links()] == titles
