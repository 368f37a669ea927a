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
from PIL import Image

from flowers_core import artifacts as art
from flowers_core.app.texts import NOT_A_FLOWER_HEADLINE, UPLOAD_LABEL
from flowers_core.bench.browser import CHROMIUM, AppDriver, StreamlitServer, chromium_available, chromium_page
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
    assert headings, "no answer heading after the upload"
    assert app.error_texts() == [], f"error shown on Classify:\n{app.error_texts()}\n{server.log_tail()}"
    predicted = headings[0]
    print(f"\npredicted {predicted!r} for {example['path'].name} (true: {example['label']}) in {seconds:.2f} s")


def test_an_answer_without_a_species_is_waited_for_too(app, server, class_names, artifacts_root, tmp_path):
    """A plain grey square is "not a flower", a headline that names no species; the driver (and so the app
    benchmark) must still see the answer arrive."""
    if not art.read_manifest(artifacts_root).get("gate"):
        pytest.skip("no flower gate in these artifacts: nothing is called 'not a flower'")
    photo = tmp_path / "grey.png"
    Image.new("RGB", (320, 320), (128, 128, 128)).save(photo)
    app.open()  # a fresh session
    app.wait_uploader()
    headings, _ = app.classify(photo, class_names)
    app.wait_idle()
    assert app.error_texts() == [], f"{app.error_texts()}\n{server.log_tail()}"
    assert headings[0] == NOT_A_FLOWER_HEADLINE


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


# ---------------------------------------------------------------------------------------------
# Issue 13: several photos, a Markdown file name, the size limit, reference photos, the Species page
# ---------------------------------------------------------------------------------------------
MARKDOWN_NAME = "**b** [x](https:evil.example).png"


def _main_text(app: AppDriver) -> str:
    return app.page.locator('[data-testid="stMain"]').first.inner_text()


def _upload_buffers(app: AppDriver, files: list[dict]) -> None:
    file_input = app.uploader().locator('input[type="file"]')
    app.run_and_wait(lambda: file_input.set_input_files(files))


def _images_loaded(app: AppDriver) -> None:
    """Every <img> decoded (a screenshot taken earlier shows the previous run's images in their place)."""
    app.page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)",
                               timeout=30_000, polling=100)


def test_two_photos_one_named_like_markdown(app, server, example):
    app.open()  # a fresh session
    app.wait_uploader()
    files = [{"name": MARKDOWN_NAME, "mimeType": "image/png", "buffer": Path(example["path"]).read_bytes()},
             {"name": "second.jpg", "mimeType": "image/jpeg", "buffer": Path(example["path"]).read_bytes()}]
    _upload_buffers(app, files)
    app.wait_idle()
    _images_loaded(app)
    _shot(app, "20_classify_two_photos")
    text = _main_text(app)
    assert app.error_texts() == [], f"{app.error_texts()}\n{server.log_tail()}"
    assert "One answer from your 2 photos" in text and "Each photo on its own" in text, text[:2000]
    assert MARKDOWN_NAME in text, "the file name is shown literally"
    assert app.page.locator('[data-testid="stMain"] a[href*="evil.example"]').count() == 0, "no live link"
    if example["label"]:  # a shipped example: the species answer shows that species' reference photos
        assert "looks like" in text or "not shipped" in text


def test_classify_on_a_phone(app, server, class_names, example):
    """A 390 px wide viewport from the first load (the sidebar starts collapsed, as on a phone)."""
    page = app.page.context.new_page()
    try:
        page.set_viewport_size({"width": 390, "height": 844})
        phone = AppDriver(page, server.url)
        phone.open()
        phone.wait_uploader()
        headings, _ = phone.classify(example["path"], class_names)
        phone.wait_idle()
        _images_loaded(phone)
        _shot(phone, "21_classify_phone")
        assert headings and phone.error_texts() == []
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone ({width} px wide)"
        assert page.get_by_text(UPLOAD_LABEL).first.is_visible()
    finally:
        page.close()


def test_a_file_just_over_the_limit_gets_the_apps_message(app, server):
    from flowers_core.inference import MAX_BYTES, MAX_MB

    app.open()
    app.wait_uploader()
    _upload_buffers(app, [{"name": "huge.png", "mimeType": "image/png",
                           "buffer": b"\x89PNG\r\n\x1a\n" + b"\0" * (MAX_BYTES + 1 - 8)}])
    app.page.wait_for_function("() => document.body.innerText.includes('too large')", timeout=60_000)
    text = _main_text(app)
    assert "couldn't use this file" in text and f"{MAX_MB} MB" in text, text[:2000]
    _shot(app, "22_classify_too_large")


def test_species_page_search(app, server, class_names):
    app.open()
    href = next(h for title, h in app.nav_links() if title == "Species")
    app.goto_page(href)
    query = "lily" if any("lily" in c for c in class_names) else class_names[0]
    box = app.page.get_by_label("Search a species")
    app.run_and_wait(lambda: (box.fill(query), box.press("Enter")))
    _images_loaded(app)
    text = _main_text(app)
    _shot(app, "23_species_lily")
    assert app.error_texts() == [], app.error_texts()
    assert re.search(r"\d+ of \d+ species match", text), text[:1000]


def test_any_file_type_reaches_the_app(app, server, class_names, example, tmp_path):
    """The uploader filters no type: a type outside a list would be refused by Streamlit's own message, seen
    only on hover; an SVG gets the app's plain message instead, and a .jfif (how Windows saves web images) its
    answer."""
    app.open()
    app.wait_uploader()
    _upload_buffers(app, [{"name": "drawing.svg", "mimeType": "image/svg+xml",
                           "buffer": b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>'}])
    app.page.wait_for_function("() => document.body.innerText.includes('not an image we can read')", timeout=60_000)
    jfif = tmp_path / "saved.jfif"
    Image.open(example["path"]).convert("RGB").save(jfif, "JPEG")
    app.open()
    app.wait_uploader()
    headings, _ = app.classify(jfif, class_names)
    app.wait_idle()
    assert headings and app.error_texts() == [], f"{app.error_texts()}\n{server.log_tail()}"
