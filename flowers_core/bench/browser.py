"""The Streamlit app in a real browser: start/stop ``streamlit run app.py`` and drive Debian's
Chromium through Playwright. Shared by the e2e test (``tests/e2e``) and the app benchmark
(``python -m flowers_core.bench.app_benchmark``) so both measure and check the same thing.

Playwright's downloaded browsers are never used (``playwright install`` needs the internet):
``/usr/bin/chromium`` (``apt-get install chromium``) runs headless with a fresh profile and flags
that stop its background connections, which a closed network would otherwise refuse or stall on.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from ..serve.words import ADD_PHOTO_LABEL, CRASH_MARKER, NAMELESS_HEADLINES, UPLOAD_LABEL, display_name
from ..shipped.paths import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)
VIEWPORT = {"width": 1400, "height": 1000}
# the two screens a visitor's pages are checked at: a phone's and a desktop's (the browser tests, each at both)
SCREENS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}


def chromium_available() -> bool:
    return os.access(CHROMIUM, os.X_OK)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamlitServer:
    """``streamlit run app.py`` on a free localhost port, in its own process group.

    ``start()`` returns at once (``started_at`` is the cold-start origin); ``wait_healthy()``
    polls ``/_stcore/health``; ``stop()`` always ends the server and anything it spawned. ``env``: variables
    set in the server's environment on top of this process's (e.g. ``MALLOC_ARENA_MAX``).
    """

    def __init__(self, app: str | Path = "app.py", artifacts: str | Path | None = None,
                 port: int | None = None, log_path: str | Path | None = None, cwd: Path = REPO_ROOT,
                 env: dict[str, str] | None = None):
        self.app, self.cwd = str(app), Path(cwd)
        self.port = port or free_port()
        self.artifacts = artifacts
        self.env = dict(env or {})
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="streamlit-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self) -> "StreamlitServer":
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        if self.artifacts is not None:
            env["FLOWERS_ARTIFACTS"] = str(self.artifacts)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.cwd), env.get("PYTHONPATH", "")) if p)
        cmd = [sys.executable, "-m", "streamlit", "run", self.app,
               "--server.headless", "true", "--server.port", str(self.port),
               "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
        self._log = open(self.log_path, "wb")
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=self.cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def wait_healthy(self, timeout: float = 60.0) -> float:
        """Block until the health endpoint answers ``ok``; return seconds since ``start()``."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200 and r.read().strip() == b"ok":
                        return time.perf_counter() - self.started_at
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"streamlit not healthy after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self._close_log()
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)  # the group this object created (start_new_session)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self._close_log()

    def _close_log(self) -> None:
        if getattr(self, "_log", None) is not None and not self._log.closed:
            self._log.close()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def __enter__(self) -> "StreamlitServer":
        self.start()
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def chromium_page(timeout_ms: int = 60_000):
    """A Playwright page in headless Debian Chromium with a fresh, throw-away profile."""
    from playwright.sync_api import sync_playwright  # a test/benchmark package (requirements-dev.txt), not the app's

    if not chromium_available():
        raise FileNotFoundError(f"{CHROMIUM} not found: apt-get install chromium (see .ci/install_browser.sh)")
    profile = tempfile.mkdtemp(prefix="flowers-chromium-")
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS), viewport=VIEWPORT)
            ctx.set_default_timeout(timeout_ms)
            try:
                yield ctx.pages[0] if ctx.pages else ctx.new_page()
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@contextlib.contextmanager
def chromium_browser():
    """Headless Debian Chromium (Playwright's ``Browser``) for many visitors in turn: each ``visitor_page`` is a
    new browser context (its own cookies and storage, so a fresh Streamlit session) in the same browser."""
    from playwright.sync_api import sync_playwright  # as in chromium_page

    if not chromium_available():
        raise FileNotFoundError(f"{CHROMIUM} not found: apt-get install chromium (see .ci/install_browser.sh)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def visitor_page(browser, timeout_ms: int = 60_000):
    """A page in a new context of ``browser`` (``chromium_browser``): a visitor no earlier visitor's state reaches;
    the context is closed afterwards."""
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.set_default_timeout(timeout_ms)
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


# JavaScript run in the page: texts of the up-to-date (not stale, i.e. not left over from the
# previous script run) headings of the main area (not the sidebar) that give an answer: they name one
# of ``names`` (a species) or start with one of ``headlines`` (the answers that name none).
_ANSWER_HEADINGS_JS = """
({names, headlines}) => {
  const main = document.querySelector('[data-testid="stMain"]') || document.body;
  const wanted = new Set(names.map(n => n.toLowerCase()));
  const found = [];
  for (const h of main.querySelectorAll('h1, h2, h3')) {
    if (h.closest('[data-stale="true"]')) continue;
    const text = (h.innerText || '').trim();
    if (headlines.some(x => text.startsWith(x))) { found.push(text); continue; }
    const low = text.toLowerCase();
    for (const n of wanted) {
      const i = low.indexOf(n);
      const before = i > 0 ? low[i - 1] : ' ', after = low[i + n.length] || ' ';
      if (i >= 0 && !/[a-z0-9-]/.test(before) && !/[a-z0-9-]/.test(after)) { found.push(text); break; }
    }
  }
  return found.length ? found : null;
}
"""


class AppDriver:
    """Page-level actions on the Streamlit app, written against Streamlit's ``data-testid``s."""

    def __init__(self, page, base_url: str):
        self.page, self.base_url = page, base_url.rstrip("/")

    # -- navigation and state -------------------------------------------------------------------
    def open(self, path: str = "") -> None:
        self.page.goto(f"{self.base_url}/{path.lstrip('/')}")
        self.wait_idle()

    def wait_idle(self, timeout_ms: int = 120_000) -> None:
        """Wait until the websocket is connected and the script has finished its run."""
        self.page.wait_for_selector('[data-testid="stApp"]', state="attached", timeout=timeout_ms)
        self.page.wait_for_function(
            """() => {
                 const app = document.querySelector('[data-testid="stApp"]');
                 if (!app) return false;
                 const state = app.getAttribute('data-test-script-state');
                 const conn = app.getAttribute('data-test-connection-state');
                 return state === 'notRunning' && conn === 'CONNECTED';
               }""", timeout=timeout_ms, polling=100)

    def nav_links(self) -> list[tuple[str, str]]:
        """(title, href) of every page in the sidebar navigation, expanding "View more" if shown."""
        more = self.page.locator('[data-testid="stSidebarNavViewButton"]')
        if more.count() and "more" in more.first.inner_text().lower():
            more.first.click()
        links = self.page.locator('[data-testid="stSidebarNav"] a')
        links.first.wait_for(state="attached")
        out = []
        for i in range(links.count()):
            lines = [ln.strip() for ln in links.nth(i).inner_text().splitlines() if ln.strip()]
            out.append((lines[-1] if lines else "", links.nth(i).get_attribute("href") or ""))  # drop the icon
        return out

    def run_and_wait(self, action, start_timeout_ms: int = 5_000, timeout_ms: int = 120_000) -> None:
        """Do ``action()`` (a click, an upload), wait for the script run it triggers to start, then to end.

        A MutationObserver counts runs, so a run shorter than the polling interval is not missed; if no
        run starts within ``start_timeout_ms`` (the action needed none) this just waits for idle.
        """
        self.page.evaluate("""() => {
            const app = document.querySelector('[data-testid="stApp"]');
            window.__flowersRuns = 0;
            if (window.__flowersObs) window.__flowersObs.disconnect();
            if (!app) return;
            // any change of the script state means a run started (it may be over by callback time)
            window.__flowersObs = new MutationObserver(records => { window.__flowersRuns += records.length; });
            window.__flowersObs.observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
        }""")
        action()
        with contextlib.suppress(Exception):  # PlaywrightTimeoutError: no rerun was needed
            self.page.wait_for_function("() => !(window.__flowersRuns === 0)", timeout=start_timeout_ms, polling=20)
        self.wait_idle(timeout_ms)

    def goto_page(self, href: str) -> None:
        """Click the sidebar link to ``href`` (from ``nav_links``) and wait for that page's run to finish."""
        self.run_and_wait(self.page.locator(f'[data-testid="stSidebarNav"] a[href="{href}"]').first.click)

    def error_texts(self) -> list[str]:
        """Exception boxes, tracebacks and the app's crash message shown in the page.

        Deliberate notes (``st.info``/``st.warning``, e.g. "model not trained yet") are not errors.
        """
        boxes = self.page.locator('[data-testid="stException"]')
        texts = [boxes.nth(i).inner_text() for i in range(boxes.count())]
        main = self.page.locator('[data-testid="stMain"]')
        body = main.first.inner_text() if main.count() else self.page.inner_text("body")
        for marker in ("Traceback", CRASH_MARKER):
            if marker in body and not any(marker in t for t in texts):
                texts.append(body[body.index(marker):][:2000])
        return texts

    def screenshot(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        return path

    # -- the Classify page --------------------------------------------------------------------------
    def uploader(self):
        return self.page.locator('[data-testid="stFileUploader"]').filter(has_text=UPLOAD_LABEL).first

    def wait_uploader(self, timeout_ms: int = 120_000) -> None:
        self.uploader().locator('[data-testid="stFileUploaderDropzone"], section').first.wait_for(
            state="visible", timeout=timeout_ms)

    def upload(self, image: str | Path) -> None:
        file_input = self.uploader().locator('input[type="file"]')
        file_input.evaluate("el => { el.value = ''; }")  # so re-choosing the same file is still a change
        file_input.set_input_files(str(image))

    @staticmethod
    def _answers_arg(class_names: list[str]) -> dict:
        return {"names": [display_name(n) for n in class_names], "headlines": list(NAMELESS_HEADLINES)}  # as shown

    def answer_headings(self, class_names: list[str]) -> list[str] | None:
        return self.page.evaluate(_ANSWER_HEADINGS_JS, self._answers_arg(class_names))

    def wait_answer(self, class_names: list[str], timeout_ms: int = 120_000) -> list[str]:
        """Wait for a heading that answers (a species, "not sure" or "not a flower"); return the texts of such
        headings."""
        handle = self.page.wait_for_function(_ANSWER_HEADINGS_JS, arg=self._answers_arg(class_names),
                                             timeout=timeout_ms, polling="raf")
        return handle.json_value()

    def classify(self, image: str | Path, class_names: list[str], timeout_ms: int = 120_000) -> tuple[list[str], float]:
        """Upload ``image`` on a page showing no prediction yet (a fresh session); return
        (texts of the answer headings, seconds from choosing the file to the heading showing)."""
        if shown := self.answer_headings(class_names):
            raise RuntimeError(f"a prediction is already shown ({shown}); open a fresh session first")
        t0 = time.perf_counter()
        self.upload(image)
        headings = self.wait_answer(class_names, timeout_ms)
        return headings, time.perf_counter() - t0

    # -- one question at a time (issue 26) ----------------------------------------------------------
    def add_photo(self, image: str | Path | dict) -> None:
        """Add a photo of the same plant through Classify's 'add another photo' box; wait for the answer."""
        self.wait_idle()  # the answer's run is over: the box is drawn
        box = self.page.locator('[data-testid="stFileUploader"]').filter(has_text=ADD_PHOTO_LABEL).first
        self.run_and_wait(lambda: box.locator('input[type="file"]').set_input_files(
            image if isinstance(image, dict) else str(image)))

    def wait_first_answer(self, class_names: list[str], text: str | None, timeout_ms: int = 60_000) -> None:
        """Wait until the first up-to-date answer heading reads ``text`` (None: until no answer is shown)."""
        self.page.wait_for_function(
            f"(arg) => {{ const found = ({_ANSWER_HEADINGS_JS})(arg); "
            "return arg.text === null ? found === null : !!found && found[0] === arg.text; }",
            arg={**self._answers_arg(class_names), "text": text}, timeout=timeout_ms, polling=100)
        self.wait_idle()  # and the run that drew it is over (no leftovers of the previous one)

    def remove_upload(self) -> None:
        """Remove the file shown in the main uploader (its ✕), as a visitor would; wait for the page."""
        self.wait_idle()
        self.run_and_wait(self.uploader().locator('[data-testid="stFileChipDeleteBtn"], [data-testid="stFileUploaderDeleteBtn"] button').first.click)

    def answer_box(self, class_names: list[str]) -> dict | None:
        """Where the first answer heading sits in the viewport ({top, bottom, height} in CSS px; the viewport's
        own height), without scrolling: the answer is "on the first screen" when bottom <= height."""
        return self.page.evaluate("""({names, headlines}) => {
            const main = document.querySelector('[data-testid="stMain"]') || document.body;
            const wanted = names.map(n => n.toLowerCase());
            for (const h of main.querySelectorAll('h1, h2, h3')) {
              if (h.closest('[data-stale="true"]')) continue;
              const text = (h.innerText || '').trim(), low = text.toLowerCase();
              if (headlines.some(x => text.startsWith(x)) || wanted.some(n => low.includes(n))) {
                const r = h.getBoundingClientRect();
                return {text, top: r.top, bottom: r.bottom, height: window.innerHeight};
              }
            }
            return null;
        }""", self._answers_arg(class_names))


@contextlib.contextmanager
def session_at(context, base_url: str, screen: str):
    """A fresh visitor's session (a new tab of ``context``) at one of ``SCREENS``, on Classify with its uploader
    drawn; ``driver.name`` is the screen's name. The tab is closed afterwards."""
    page = context.new_page()
    page.set_viewport_size(SCREENS[screen])
    driver = AppDriver(page, base_url)
    driver.name = screen
    driver.open()
    driver.wait_uploader()
    try:
        yield driver
    finally:
        page.close()
