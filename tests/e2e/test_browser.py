"""End to end in a real browser: ``streamlit run app.py`` + headless Debian Chromium (Playwright).

Uploads a shipped example photo on Classify, checks a species name appears as the answer, visits
every page from the sidebar and checks none shows an exception; screenshots go to ``screenshots/``.

Which models: ``$FLOWERS_ARTIFACTS`` if set, else ``artifacts/`` when it holds trained models, else
tiny models trained on synthetic data by the ``trained_artifacts`` fixture (so a fresh CI checkout
still exercises the real code path). Run: ``python -m pytest -q tests/e2e -m e2e``.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from flowers_core import artifacts as art
from flowers_core.browser import CHROMIUM, AppDriver, StreamlitServer, chromium_available, chromium_page
from flowers_core.data import REPO_ROOT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not chromium_available(),
                       reason=f"{CHROMIUM} is absent (apt-get install chromium, or bash .ci/install_browser.sh)"),
]

SCREENSHOTS = REPO_ROOT / "screenshots"
EXAMPLES = REPO_ROOT / "assets" / "examples"
PAGE_FILES = sorted((REPO_ROOT / "pages").glob("*.py"))


@pytest.fixture(scope="module")
def artifacts_root(request) -> Path:
    if os.environ.get("FLOWERS_ARTIFACTS"):
        return Path(os.environ["FLOWERS_ARTIFACTS"])
    if art.read_manifest(art.artifacts_dir()).get("models"):
        return art.artifacts_dir()
    return request.getfixturevalue("trained_artifacts")


@pytest.fixture(scope="module")
def class_names(artifacts_root) -> list[str]:
    names = art.read_manifest(artifacts_root).get("classes") or []
    assert names, f"no class names in {art.manifest_path(artifacts_root)}"
    return list(names)


@pytest.fixture(scope="module")
def example() -> dict:
    """The first shipped example photo and its true label (any dataset photo before they exist)."""
    index = EXAMPLES / "examples.json"
    if index.is_file():
        item = json.loads(index.read_text())[0]
        return {"path": EXAMPLES / item["file"], "label": item["label"]}
    from flowers_core.data import default_data_root

    jpg = next((default_data_root() / "flowers-102" / "jpg").glob("*.jpg"), None)
    if jpg is None:
        pytest.skip("no example photo: assets/examples/examples.json and the dataset are both missing")
    return {"path": jpg, "label": None}


@pytest.fixture(scope="module")
def server(artifacts_root, tmp_path_factory):
    srv = StreamlitServer("app.py", artifacts=artifacts_root,
                          log_path=tmp_path_factory.mktemp("streamlit") / "server.log")
    srv.start()
    try:
        srv.wait_healthy(timeout=90)
        yield srv
    finally:
        srv.stop()  # always, whatever happened above


@pytest.fixture(scope="module")
def app(server):
    with chromium_page() as page:
        driver = AppDriver(page, server.url)
        driver.open()
        yield driver


def _shot(app: AppDriver, name: str) -> None:
    app.screenshot(SCREENSHOTS / f"{name}.png")


def test_upload_shows_species(app, server, class_names, example):
    app.wait_uploader()
    _shot(app, "00_classify_empty")
    headings, seconds = app.classify(example["path"], class_names)
    app.wait_idle()  # the rest of the answer (confidence, chart) before the screenshot
    _shot(app, "01_classify_result")
    assert headings, "no species heading after the upload"
    assert app.error_texts() == [], f"error shown on Classify:\n{app.error_texts()}\n{server.log_tail()}"
    predicted = headings[0]
    print(f"\npredicted {predicted!r} for {example['path'].name} (true: {example['label']}) in {seconds:.2f} s")


def test_every_page_renders_without_errors(app, server):
    links = app.nav_links()
    titles = [title for title, _ in links]
    assert len(links) == len(PAGE_FILES), f"sidebar shows {titles}, pages/ has {[p.name for p in PAGE_FILES]}"
    failures = {}
    for i, (title, href) in enumerate(links):
        app.goto_page(href)
        slug = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_") or "page"
        _shot(app, f"{i + 2:02d}_{slug}")
        if errors := app.error_texts():
            failures[title] = errors
    assert not failures, f"pages showing errors: {failures}\n--- server log ---\n{server.log_tail()}"
    assert "Traceback" not in server.log_text(), f"server logged a traceback:\n{server.log_tail(80)}"
