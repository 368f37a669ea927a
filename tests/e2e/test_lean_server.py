"""A visitor in a real browser against a fresh server: Classify and Explain's first map never load torch in the
server process (read from its /proc/<pid>/maps, as a host would see it), and torch loads only when the visitor
turns on the methods that need gradients. Run: ``python -m pytest -q tests/e2e/test_lean_server.py -m e2e``."""
from __future__ import annotations

from pathlib import Path

import pytest

from flowers_core.bench.app_benchmark import CHECK_VERDICTS
from flowers_core.bench.browser import CHROMIUM, AppDriver, StreamlitServer, chromium_available, chromium_page
from flowers_core.serve.gallery import examples
from flowers_core.shipped import manifest as art

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(not chromium_available(),
                       reason=f"{CHROMIUM} is absent (apt-get install chromium, or bash .ci/install_browser.sh)"),
]


def torch_mapped(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def test_classify_and_the_first_map_run_without_torch(app_artifacts):
    if not examples():
        pytest.skip("no example photo shipped")
    photo = Path(examples()[0]["file"])
    classes = list(art.read_manifest(app_artifacts).get("classes") or [])
    with StreamlitServer(artifacts=app_artifacts) as server, chromium_page() as page:
        app = AppDriver(page, server.url)
        app.open()
        app.wait_uploader()
        app.classify(photo, classes)
        app.wait_idle()
        assert not torch_mapped(server.pid), "Classify loaded torch"
        app.goto_page(dict(app.nav_links())["Explain"])
        app.wait_idle()
        main = page.locator('[data-testid="stMain"]')
        assert main.locator("img").count() >= 3, "the first map: the view, the map, the overlay"
        text = main.inner_text()
        assert "Class activation map" in text and "this map marks most" in text, text[:1500]
        assert any(v[:40] in text for v in CHECK_VERDICTS), text[:1500]
        assert not torch_mapped(server.pid), "Explain's first map and its check loaded torch"
        assert app.error_texts() == [], server.log_tail()
        page.get_by_text("Show other methods and models").click()
        app.wait_idle()
        assert torch_mapped(server.pid), "the gradient methods load torch when asked for"
        assert app.error_texts() == [], server.log_tail()
