"""End to end in a real browser: ``streamlit run app.py`` + headless Debian Chromium (Playwright).

Uploads a shipped example photo on Classify, checks a species name appears as the answer, visits
every page from the sidebar and checks none shows an exception; screenshots go to ``screenshots/``.

Which models: ``$FLOWERS_ARTIFACTS`` if set, else ``artifacts/`` when it holds trained models, else
tiny models trained on synthetic data by the ``trained_artifacts`` fixture (so a fresh CI checkout
still exercises the real code path). Run: ``python -m pytest -q tests/e2e -m e2e``.
"""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from flowers_core.bench.browser import (
    CHROMIUM,
    SCREENS,
    AppDriver,
    StreamlitServer,
    chromium_available,
    chromium_page,
    session_at,
)
from flowers_core.serve.words import NOT_A_FLOWER_HEADLINE, UPLOAD_LABEL
from flowers_core.shipped import manifest as art
from flowers_core.shipped.paths import REPO_ROOT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not chromium_available(),
                       reason=f"{CHROMIUM} is absent (apt-get install chromium, or bash .ci/install_browser.sh)"),
]

SCREENSHOTS = REPO_ROOT / "screenshots"

EXAMPLES = REPO_ROOT / "assets" / "examples"
PAGE_FILES = sorted((REPO_ROOT / "app_pages").glob("*.py"))


@pytest.fixture(scope="module")
def class_names(app_artifacts) -> list[str]:
    names = art.read_manifest(app_artifacts).get("classes") or []
    assert names, f"no class names in {art.manifest_path(app_artifacts)}"
    return list(names)


@pytest.fixture(scope="module")
def example() -> dict:
    """The first shipped example photo and its true label (any dataset photo before they exist)."""
    index = EXAMPLES / "examples.json"
    if index.is_file():
        item = json.loads(index.read_text())[0]
        return {"path": EXAMPLES / item["file"], "label": item["label"]}
    from flowers_core.shipped.paths import default_data_root

    jpg = next((default_data_root() / "flowers-102" / "jpg").glob("*.jpg"), None)
    if jpg is None:
        pytest.skip("no example photo: assets/examples/examples.json and the dataset are both missing")
    return {"path": jpg, "label": None}


@pytest.fixture(scope="module")
def server(app_artifacts, tmp_path_factory):
    srv = StreamlitServer("app.py", artifacts=app_artifacts,
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


def test_an_answer_without_a_species_is_waited_for_too(app, server, class_names, app_artifacts, tmp_path):
    """A plain grey square is "not a flower", a headline that names no species; the driver (and so the app
    benchmark) must still see the answer arrive."""
    if not art.read_manifest(app_artifacts).get("gate"):
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
    from flowers_core.serve.decode import MAX_BYTES, MAX_MB

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


# ---------------------------------------------------------------------------------------------
# Issue 26: one question at a time, the answer on a phone's first screen, words that match the numbers,
# limits a visitor can see, file names as plain text. At a phone's and a desktop's size, shipped artifacts.
# ---------------------------------------------------------------------------------------------
LINK_NAME = "**b** [x](https://evil.example).png"
SUNFLOWER, WATER_LILY = EXAMPLES / "sunflower_05401.jpg", EXAMPLES / "water_lily_00258.jpg"


@pytest.fixture(params=list(SCREENS))
def sized(request, app, server):
    """A fresh session (a new tab) at a phone's or a desktop's size, on Classify."""
    with session_at(app.page.context, server.url, request.param) as driver:
        yield driver


@pytest.fixture(scope="module")
def real_answers(app_artifacts) -> bool:
    """The shipped models (which name the shipped examples' species), not the synthetic fallback's."""
    return Path(app_artifacts).resolve() == (REPO_ROOT / "artifacts").resolve() and SUNFLOWER.is_file() \
        and WATER_LILY.is_file()


def _needs_real(real_answers):
    if not real_answers:
        pytest.skip("needs the shipped artifacts and example photos (which species a photo shows)")


def _buffer(name: str, data: bytes, mime: str = "image/png") -> dict:
    return {"name": name, "mimeType": mime, "buffer": data}


def _variant(path: Path, how: str) -> dict:
    """Another photo of the same plant: the example mirrored or cropped closer."""
    img = Image.open(path).convert("RGB")
    img = img.transpose(Image.FLIP_LEFT_RIGHT) if how == "mirrored" else img.crop(
        (img.width // 8, img.height // 8, img.width * 7 // 8, img.height * 7 // 8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return _buffer(f"{path.stem}_{how}.jpg", buf.getvalue(), "image/jpeg")


def _visible_text(driver: AppDriver, needle: str) -> bool:
    return driver.page.get_by_text(needle, exact=False).first.is_visible()


def _shot26(driver: AppDriver, name: str) -> None:
    _images_loaded(driver)
    _shot(driver, f"26_{name}_{driver.name}")


@pytest.mark.slow
def test_a_new_photo_is_a_new_question(sized, server, class_names, real_answers):
    """A photo, then a different one: the second is answered on its own; the answer heading is on the first
    screen after each upload; a species answer's words and its confidence agree."""
    _needs_real(real_answers)
    headings, _ = sized.classify(SUNFLOWER, class_names)
    sized.page.get_by_text("Time taken").first.wait_for()  # the rest of the answer
    sized.wait_idle()
    assert headings == ["This is a sunflower"], headings
    box = sized.answer_box(class_names)
    assert box and 0 <= box["top"] and box["bottom"] <= box["height"], f"the answer is below the first screen: {box}"
    text = _main_text(sized)
    confidence = re.search(r"It is almost certainly a sunflower \((\d+)% confident\)", text)
    shown = re.search(r"Confidence\s+(\d+)%", text)
    assert confidence and shown and confidence.group(1) == shown.group(1), text[:1500]
    assert "Helianthus annuus" in text and "I know 102 species" in text
    _shot26(sized, "first_photo")
    sized.run_and_wait(lambda: sized.upload(WATER_LILY))
    sized.wait_first_answer(class_names, "This is a water lily")
    assert sized.answer_headings(class_names) == ["This is a water lily"], "the sunflower is not mixed in"
    assert "photos of one plant" not in _main_text(sized)
    box = sized.answer_box(class_names)
    assert box["bottom"] <= box["height"], box
    assert sized.error_texts() == [], f"{sized.error_texts()}\n{server.log_tail()}"


@pytest.mark.slow
def test_two_different_flowers_sent_as_one_plant(sized, server, class_names, real_answers):
    from flowers_core.serve.words import DIFFERENT_FLOWERS_HEADLINE

    _needs_real(real_answers)
    sized.classify(SUNFLOWER, class_names)
    sized.add_photo(WATER_LILY)
    sized.wait_first_answer(class_names, DIFFERENT_FLOWERS_HEADLINE)
    text = _main_text(sized)
    assert "This is a sunflower" in text and "This is a water lily" in text, "each photo's own answer"
    assert "Top 5 guesses" not in text and "What a" not in text, "no combined species"
    _shot26(sized, "different_flowers")
    assert sized.error_texts() == []


@pytest.mark.slow
def test_three_photos_of_one_plant_then_removed(sized, server, class_names, real_answers):
    """Three photos of one plant: one combined answer, every file listed, no room for a 4th; removing the upload
    takes the answer away (greyed, under a note, till a replacing photo's answer arrives)."""
    _needs_real(real_answers)
    sized.classify(SUNFLOWER, class_names)
    variants = [_variant(SUNFLOWER, "mirrored"), _variant(SUNFLOWER, "closer")]
    for v in variants:
        sized.add_photo(v)
    sized.page.get_by_text("Your 3 photos of one plant").first.wait_for()
    sized.wait_idle()
    assert sized.answer_headings(class_names)[0] == "This is a sunflower"
    text = _main_text(sized)
    assert "Your 3 photos of one plant: one answer from all of them" in text, text[:2000]
    for name in [SUNFLOWER.name] + [v["name"] for v in variants]:
        assert name in text, f"{name} is listed"
    assert "the most I combine" in text and "Same plant?" not in text
    _shot26(sized, "three_photos")
    sized.remove_upload()
    sized.wait_first_answer(class_names, None)  # no answer heading: the last answer only greyed, for a new upload
    assert "answer will appear here" in _main_text(sized)
    assert sized.error_texts() == []


@pytest.mark.slow
def test_a_file_over_the_limit_shows_the_apps_message(sized, server):
    from flowers_core.serve.decode import MAX_BYTES, size_limit_text

    size = 36_800_000  # the 36.8 MB file of issue 26: over the app's limit, under the transport cap
    assert size > MAX_BYTES
    sized.run_and_wait(lambda: sized.uploader().locator('input[type="file"]').set_input_files(
        _buffer("huge.png", b"\x89PNG\r\n\x1a\n" + b"\0" * (size - 8))))
    sized.page.wait_for_function("() => document.body.innerText.includes('too large')", timeout=60_000)
    assert _visible_text(sized, f"the limit is {size_limit_text()}"), "the message is on the page, no hover needed"
    assert _visible_text(sized, "36.8 MB")
    assert not sized.page.get_by_text("MB per file").first.is_visible(), "one limit: Streamlit's cap is not shown"
    _shot26(sized, "over_limit")


@pytest.mark.slow
def test_an_8000_pixel_square_photo_is_answered(sized, server, class_names, tmp_path):
    big = Image.open(SUNFLOWER if SUNFLOWER.is_file() else next(EXAMPLES.glob("*.jpg"))).convert("RGB")
    path = tmp_path / "big_8000.png"
    big.resize((8000, 8000), Image.NEAREST).save(path, "PNG", compress_level=1)  # 64 MP, ~1 MB
    headings, seconds = sized.classify(path, class_names)
    sized.wait_idle()
    assert headings, "answered"
    assert "too large" not in _main_text(sized) and sized.error_texts() == []
    details = sized.page.locator('[data-testid="stExpander"]').filter(has_text="Technical details").first
    details.locator("summary").click()
    decoded = re.search(r"decoded (\d+)×(\d+)", details.inner_text())
    assert decoded and 1024 <= int(decoded.group(1)) < 8000, "reduced while decoding, not refused"
    print(f"\n8000×8000 PNG answered {headings[0]!r} in {seconds:.1f} s")


@pytest.mark.slow
def test_a_file_name_with_markup_and_a_url_is_plain_text(sized, server, class_names):
    data = SUNFLOWER.read_bytes() if SUNFLOWER.is_file() else next(EXAMPLES.glob("*.jpg")).read_bytes()
    sized.run_and_wait(lambda: sized.uploader().locator('input[type="file"]').set_input_files(
        _buffer(LINK_NAME, data, "image/jpeg")))
    sized.wait_answer(class_names)
    sized.wait_idle()
    main = sized.page.locator('[data-testid="stMain"]')
    shown = main.first.inner_text().replace("\u2060", "")  # the word joiner that stops the autolinker is invisible
    assert LINK_NAME in shown, "the name is shown literally under the photo"
    assert sized.page.locator('a[href*="evil.example"]').count() == 0, "no live link anywhere on the page"
    assert main.locator("strong", has_text="b").count() == 0, "no bold text made of the name"
    _shot26(sized, "markup_name")


PHONE_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/17.0 Mobile/15E148 Safari/604.1")


@pytest.mark.slow
def test_navigation_for_two_audiences_gets_out_of_the_way_on_a_phone(app, server):
    """The sidebar groups the visitor's pages apart from how-it-works; on a phone (a phone's user agent:
    Streamlit closes the sidebar after a tap on a phone, not in a narrow desktop window) it starts closed and
    closes again after a page is chosen."""
    page = app.page.context.new_page()
    try:
        page.set_viewport_size(SCREENS["phone"])
        cdp = page.context.new_cdp_session(page)
        cdp.send("Emulation.setUserAgentOverride", {"userAgent": PHONE_UA})
        phone = AppDriver(page, server.url)
        phone.open()
        sidebar = page.locator('[data-testid="stSidebar"]')
        assert sidebar.get_attribute("data-collapsed") == "true", "closed on a phone"
        page.locator('[data-testid="stExpandSidebarButton"]').first.click()
        page.wait_for_function("() => document.querySelector('[data-testid=stSidebar]')"
                               ".getAttribute('data-collapsed') === 'false'")
        nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
        assert nav.index("Identify") < nav.index("Classify") < nav.index("Species") < nav.index("How it works") \
            < nav.index("Compare models"), nav
        phone.run_and_wait(page.locator('[data-testid="stSidebarNav"] a', has_text="Species").first.click)
        page.wait_for_function("() => document.querySelector('[data-testid=stSidebar]')"
                               ".getAttribute('data-collapsed') === 'true'", timeout=10_000)
        assert "The 102 species" in _main_text(phone)
    finally:
        page.close()


@pytest.mark.slow
def test_an_example_chosen_far_down_a_phone_shows_its_answer(sized, server, class_names):
    """On a phone the examples sit under the uploader: choosing the last one scrolls to its answer."""
    if not (EXAMPLES / "examples.json").is_file():
        pytest.skip("no example photos shipped")
    sized.wait_idle()
    buttons = sized.page.locator("[class*='st-key-classify_ex_'] button:visible")  # each example's button (its name)
    buttons.first.wait_for()
    last = buttons.last
    last.scroll_into_view_if_needed()
    sized.run_and_wait(last.click)
    sized.wait_answer(class_names)
    sized.page.wait_for_function("() => { const h = document.getElementById('answer'); if (!h) return false; "
                                 "const r = h.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; }",
                                 timeout=10_000)
    _shot26(sized, "example_answer")
