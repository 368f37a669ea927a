"""How the Streamlit app feels to a visitor, measured in a real browser (not a test).

    python -m flowers_core.bench.app_benchmark [--uploads 5] [--out PATH]

Same harness as the e2e test (``flowers_core.bench.browser``): headless Debian Chromium drives
``streamlit run app.py``. Measures

* cold start: ``streamlit run`` launched -> Classify page usable (the uploader visible);
* round trip: file chosen in the uploader -> answer heading visible (a species, "not sure" or "not a flower"), in a fresh session each time
  (the page is reloaded between uploads, not timed), median over ``--uploads`` example photos;
  the first upload of the server's life is reported separately;
* memory after a Classify-only visit: the server's resident set once the uploads above are answered,
  before any other page is opened (Classify runs the INT8 student on onnxruntime, without torch);
* peak memory: resident set of the server and its children, sampled every 100 ms from launch until
  every page has been visited (so every model the pages use is loaded), plus the kernel's own
  high-water mark (VmHWM).

Writes ``<artifacts>/reports/app_performance.json`` with the numbers, targets, machine and date.
Numbers depend on what else the machine is doing: the load average is recorded next to them.

    python -m flowers_core.bench.app_benchmark --crowd 3

Crowd mode, what a small free host must survive: a fresh server, N visitors (each its own headless
Chromium) at once, each doing everything heavy the app offers: classify an example photo, open Explain
(the torch model, Grad-CAM), press Run LIME, open Compare (every model), open Latency and press Run.
Reports the server process's own high-water mark (``VmHWM`` from ``/proc/<pid>/status``, the kernel's
exact peak: what a host's memory limit is checked against) and each visitor's waits per step; with
``--crowd 1`` the Explain step is the first heatmap (and its check) of a cold server. Writes
``<artifacts>/reports/app_crowd_<N>.json``.

    python -m flowers_core.bench.app_benchmark --soak 200 [--idle-s 120] [--data-root DIR] [--step-timeout-s 300]

Soak mode, a public demo that lasts (issue 38): a fresh server, N visitors one after another, each in a new
browser context (a fresh Streamlit session) with a different photo (the Flowers-102 test split's, ids from
``<artifacts>/splits/``, under ``--data-root`` / ``$FLOWERS_DATA_ROOT`` / ``../shared/data``, cycled; the shipped
example photos when the dataset is absent). Each visitor takes the crowd's tour (``tour``, shared): Classify ->
Explain (the first heatmap, then its check's verdict) -> Compare (every model's column) -> Latency's Run; every 5th
visitor also runs LIME. A step that fails or times out is recorded (step, error), that visitor ends and the next
one comes; the report counts the visitors answered. Records the server process tree's RSS (``VmRSS``) after each
visitor, its ``VmHWM`` at the end and its RSS after ``--idle-s`` seconds without visitors; the growth per visitor
(least-squares slope of the RSS over the visitors after the 5th); whether libtorch was mapped in the server after
the first visitor's Classify and at the end; each visitor's step times; the machine, load average and date.
Targets: growth <= 0.5 MB/visitor, VmHWM <= 1536 MB, idle RSS within 100 MB of the RSS after the 5th visitor.
Writes ``<artifacts>/reports/app_soak.json`` and a plot of the RSS over visitors, ``app_soak.png``, beside it.

Every mode takes ``--malloc-arena-max K``: the server runs with ``MALLOC_ARENA_MAX=K`` (glibc's malloc arenas; the
report records it), so runs with and without can be compared.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import threading
import time
from pathlib import Path

import numpy as np

from ..results import explanations as explanation_report
from ..serve.stages import cpu_model
from ..serve.words import LIME_NOTE_MARK
from ..shipped import manifest as art
from ..shipped import paths
from ..shipped.paths import REPO_ROOT
from ..shipped.splits import SHIPPED_PROTOCOL
from .browser import AppDriver, StreamlitServer, chromium_browser, chromium_page, visitor_page

TARGETS = {"cold_start_s": 4.0, "round_trip_p50_s": 0.5, "classify_only_rss_mb": 400.0, "peak_rss_mb": 1536.0}  # #38: Classify-only <= 400 MB
# crowd mode: the free host's limit is 2.7 GB; the target leaves a margin for what this machine does not
# show (another Python build, allocator growth over days); the first Grad-CAM of a cold server
CROWD_TARGETS = {"server_vmhwm_mb": 2200.0, "host_limit_mb": 2765.0, "cold_gradcam_s": 8.0}
EXAMPLES = REPO_ROOT / "assets" / "examples"


# ---------------------------------------------------------------------------------------------
# Memory of a process tree, from /proc (Linux)
# ---------------------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def process_tree(pid: int) -> list[int]:
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += _children(p)
    return tree


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Sum of ``field`` (VmRSS now, or VmHWM = each process's peak) over ``pid`` and its descendants."""
    return sum(_status_kb(p, field) for p in process_tree(pid)) / 1024


class PeakRss(threading.Thread):
    """Samples the tree's total RSS every ``interval`` seconds; ``peak_mb`` is the largest seen."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak_mb = pid, interval, 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))
            self._halt.wait(self.interval)

    def stop(self) -> float:
        self._halt.set()
        self.join()
        self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))
        return self.peak_mb


# ---------------------------------------------------------------------------------------------
# The measurement
# ---------------------------------------------------------------------------------------------
def example_photos() -> list[Path]:
    index = EXAMPLES / "examples.json"
    if not index.is_file():
        raise SystemExit(f"{index} is missing (python -m train.gallery --build)")
    return [EXAMPLES / item["file"] for item in json.loads(index.read_text())]


def app_under_test(artifacts_root: Path | None) -> tuple[Path, list[str], list[Path], tuple]:
    """The artifacts folder the app will read (it must hold a model), its class names, the example photos to
    upload and the load average before the run."""
    root = Path(artifacts_root) if artifacts_root else art.artifacts_dir()
    if not art.read_manifest(root).get("models"):
        raise SystemExit(f"no trained model in {art.manifest_path(root)}: the app cannot classify")
    return root, art.read_manifest(root).get("classes") or [], example_photos(), os.getloadavg()


def run_record(root: Path, load_before: tuple) -> dict:
    """What every app report records of its run: the machine (and how busy it was), the date, the artifacts."""
    return {"machine": {"cpu_model": cpu_model(), "cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version(), "loadavg_before": [round(x, 2) for x in load_before],
                        "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "artifacts": os.path.relpath(root, REPO_ROOT)}


def server_env(malloc_arena_max: int | None) -> dict[str, str]:
    """The variables the server runs with on top of this environment (``--malloc-arena-max``)."""
    return {"MALLOC_ARENA_MAX": str(malloc_arena_max)} if malloc_arena_max else {}


def measure(uploads: int = 15, artifacts_root: Path | None = None, malloc_arena_max: int | None = None) -> dict:
    root, class_names, photos, load_before = app_under_test(artifacts_root)
    result: dict = {}
    with chromium_page(timeout_ms=180_000) as page:  # the browser is up before the clock starts
        server = StreamlitServer("app.py", artifacts=root, env=server_env(malloc_arena_max))
        server.start()
        sampler = PeakRss(server.pid)
        sampler.start()
        try:
            healthy_s = server.wait_healthy(timeout=180)
            app = AppDriver(page, server.url)
            app.open()
            app.wait_uploader(timeout_ms=180_000)
            cold_start_s = time.perf_counter() - server.started_at

            times, predictions = [], []
            for i in range(uploads + 1):  # the first upload of the server's life, then `uploads` more
                if i:
                    app.open()  # a fresh session: no photo, no answer on the page
                    app.wait_uploader()
                photo = photos[i % len(photos)]
                headings, seconds = app.classify(photo, class_names)
                app.wait_idle()  # let the rest of the page (chart, details) finish before the next one
                times.append(seconds)
                predictions.append({"photo": photo.name, "shown": headings[0], "seconds": round(seconds, 3)})

            time.sleep(1.0)  # as below: late allocations of the Classify visit show up
            classify_only_rss = tree_rss_mb(server.pid)
            classify_only_peak = sampler.peak_mb

            pages = {}
            for title, href in app.nav_links():
                t0 = time.perf_counter()
                app.goto_page(href)
                pages[title] = {"seconds": round(time.perf_counter() - t0, 3), "errors": len(app.error_texts())}
            time.sleep(1.0)  # let late allocations show up in the samples
            rss_now = tree_rss_mb(server.pid)
            hwm = tree_rss_mb(server.pid, "VmHWM")
            n_procs = len(process_tree(server.pid))
            peak = sampler.stop()
        finally:
            if sampler.is_alive():
                sampler.stop()
            server.stop()

    p50 = statistics.median(times[1:]) if len(times) > 1 else times[0]
    result = {
        "cold_start_s": round(cold_start_s, 2),
        "health_endpoint_s": round(healthy_s, 2),
        "round_trip_p50_s": round(p50, 3),
        "round_trip_first_s": round(times[0], 3),
        "round_trip_samples_s": [round(t, 3) for t in times[1:]],
        # one process: its VmHWM is the exact peak; several: their VmHWMs need not coincide, so the sum
        # is only an upper bound and the sampled total is reported
        "peak_rss_mb": round(max(peak, hwm) if n_procs == 1 else peak, 1),
        "classify_only_rss_mb": round(classify_only_rss, 1),
        "classify_only_peak_mb": round(classify_only_peak, 1),
        "server_processes": n_procs,
        "peak_rss_sampled_mb": round(peak, 1),
        "hwm_sum_mb": round(hwm, 1),
        "rss_after_all_pages_mb": round(rss_now, 1),
        "pages": pages,
        "predictions": predictions,
    }
    result["targets"] = TARGETS
    result["meets_target"] = {k: result[k] <= v for k, v in TARGETS.items()}
    if malloc_arena_max:
        result["malloc_arena_max"] = malloc_arena_max
    result |= run_record(root, load_before)
    result["method"] = ("headless Chromium (Playwright) against `streamlit run app.py`; cold start = launch -> "
                        "uploader visible; round trip = file chosen -> answer heading visible, fresh session "
                        "each, median of the uploads after the first; Classify-only memory = server process "
                        "tree RSS after those uploads, before another page is opened; peak memory = server process "
                        "tree RSS sampled every 100 ms until all pages were visited, and the sum of VmHWM")
    return result


# ---------------------------------------------------------------------------------------------
# One visitor's tour, shared by crowd mode (visitors at once) and soak mode (visitors one after another)
# ---------------------------------------------------------------------------------------------
TOUR_STEPS = ("open", "classify", "explain_gradcam", "explain_lime", "compare", "latency_run")
# the first heatmap's check on Explain ends in one of these sentences (results.explanations.verdict_words), or in
# the caption that says the check could not run
CHECK_VERDICTS = tuple(explanation_report.CHECK_VERDICT_STARTS.values())
CHECK_FAILED = "The check of this map could not run"
LATENCY_RESULT = "timed runs per model"  # the Latency page's live result, shown once Run has measured


def _main_images(page) -> int:
    return page.locator('[data-testid="stMain"] [data-testid="stImage"]').count()


def _wait_images(page, at_least: int, timeout_ms: int = 600_000) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=\"stMain\"] [data-testid=\"stImage\"]').length >= n",
        arg=at_least, timeout=timeout_ms, polling=100)


def _main_text(page, texts: tuple[str, ...], timeout_ms: int) -> str:
    """Wait until an up-to-date element of the main area starts with one of ``texts``; return that text."""
    handle = page.wait_for_function(
        """texts => {
             const main = document.querySelector('[data-testid="stMain"]');
             if (!main) return null;
             for (const el of main.querySelectorAll('[data-testid="stMarkdownContainer"]')) {
               if (el.closest('[data-stale="true"]')) continue;
               const t = (el.innerText || '').trim();
               if (texts.some(x => t.startsWith(x))) return t;
             }
             return null;
           }""", arg=[t[:60] for t in texts], timeout=timeout_ms, polling=100)
    return handle.json_value()


def _page_text(page) -> str:
    """The start of what the main area shows (which page, what it says), for a step that failed."""
    try:
        return page.locator('[data-testid="stMain"]').first.inner_text(timeout=5_000)[:400]
    except Exception as e:
        return f"(unreadable: {type(e).__name__})"


def tour(page, base_url: str, photo: Path, class_names: list[str], *, lime: bool = True,
         timeout_ms: int = 600_000, stop_on_error: bool = False, after_step=None) -> dict:
    """One visitor on a fresh page: Classify ``photo`` -> Explain (the first heatmap and its check's verdict) ->
    LIME when ``lime`` -> Compare (every model's column) -> Latency's Run. Each step is timed from the action to its
    result visible; a step that raises is recorded (step, error) and the tour goes on, or ends when
    ``stop_on_error``; exception boxes the app shows are recorded too. ``after_step(name)`` is called after each
    step (the soak reads the server's memory maps there)."""
    app = AppDriver(page, base_url)
    steps: dict[str, float] = {}
    errors: list[dict] = []
    seen: dict = {}
    links: dict[str, str] = {}

    def link(title: str) -> str:
        if not links:
            app.wait_idle(timeout_ms)
            links.update(app.nav_links())
        return links[title]

    def classify() -> None:
        seen["answer"] = app.classify(photo, class_names, timeout_ms=timeout_ms)[0][0]

    def explain() -> None:
        # the photo chosen on Classify is kept across pages: the page's own run draws its heatmap and the check
        app.goto_page(link("Explain"))
        if _main_images(page) < 3:  # none carried over: this page asks for the photo (an upload's run, waited for,
            app.wait_uploader(timeout_ms=timeout_ms)  # so that no later click races it)
            app.run_and_wait(lambda: app.upload(photo), timeout_ms=timeout_ms)
        _wait_images(page, 3, timeout_ms)  # what the model sees, the raw heatmap, the overlay
        text = _main_text(page, (*CHECK_VERDICTS, CHECK_FAILED), timeout_ms)  # the first map's check, in words
        if text.startswith(CHECK_FAILED):
            raise RuntimeError(text[:300])
        seen["check"] = next(v for v, start in explanation_report.CHECK_VERDICT_STARTS.items() if text.startswith(start))

    def run_lime() -> None:
        app.wait_idle(timeout_ms)  # the Grad-CAM run over: the button pressed is the finished page's
        page.locator('[data-testid="stExpander"]').filter(has_text="LIME").locator("summary").first.click()
        app.run_and_wait(page.get_by_role("button", name="Run LIME").click, timeout_ms=timeout_ms)
        # LIME's own note, not a count of images taken while the page was still drawing (a count taken
        # mid-run could be too high and never be reached)
        page.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]').filter(
            has_text=LIME_NOTE_MARK).first.wait_for(timeout=timeout_ms)

    def compare() -> None:
        app.wait_idle(timeout_ms)
        app.goto_page(link("Compare models"))  # its run is over: every model's column is drawn, then the table
        page.locator('[data-testid="stMain"] [data-testid="stDataFrame"]').first.wait_for(timeout=timeout_ms)
        # Plotly charts mount after the script's elements (their JavaScript loads apart): wait for one, not count at once
        page.locator('[data-testid="stMain"] [data-testid="stColumn"] [data-testid="stPlotlyChart"]').first.wait_for(
            timeout=60_000)
        seen["compare_models"] = page.locator('[data-testid="stMain"] [data-testid="stColumn"] '
                                              '[data-testid="stPlotlyChart"]').count()
        if not seen["compare_models"]:
            raise RuntimeError("Compare showed no model's column")

    def latency() -> None:
        app.goto_page(link("Latency"))
        app.run_and_wait(page.get_by_role("button", name="Run", exact=True).click, timeout_ms=timeout_ms)
        page.locator('[data-testid="stMain"] [data-testid="stMarkdownContainer"]').filter(
            has_text=LATENCY_RESULT).first.wait_for(timeout=timeout_ms)

    actions = {"open": lambda: (app.open(), app.wait_uploader(timeout_ms=timeout_ms)), "classify": classify,
               "explain_gradcam": explain, "explain_lime": run_lime,
               "compare": compare, "latency_run": latency}
    for name in TOUR_STEPS:
        if name == "explain_lime" and not lime:
            continue
        t0 = time.perf_counter()
        failed = None
        try:
            actions[name]()
        except Exception as e:  # a step that fails is reported, and the tour goes on (or ends: stop_on_error)
            failed = f"{type(e).__name__}: {str(e)[:300]}"
        steps[name] = round(time.perf_counter() - t0, 2)
        if failed:  # with what the page showed, read after the step's time was taken
            errors.append({"step": name, "error": failed, "page": _page_text(page)})
        if name == "classify" and not failed:  # untimed: the rest of Classify's run (chart, details) finishes
            with contextlib.suppress(Exception):
                app.wait_idle(timeout_ms)
        try:
            errors.extend({"step": name, "error": t[:300]} for t in app.error_texts())
        except Exception:  # the page itself is gone: the failure above says why
            pass
        if after_step is not None:
            after_step(name)
        if failed and stop_on_error:
            break
    return {"photo": photo.name, "lime": lime, "steps_s": steps, "total_s": round(sum(steps.values()), 2),
            "errors": errors, "seen": seen}


def tour_steps(lime: bool = True) -> tuple[str, ...]:
    return tuple(s for s in TOUR_STEPS if lime or s != "explain_lime")


def answered(visit: dict) -> bool:
    """Every step of the visitor's tour done, no error recorded."""
    return not visit.get("errors") and set(visit.get("steps_s", {})) == set(tour_steps(visit.get("lime", True)))


# ---------------------------------------------------------------------------------------------
# Crowd mode
# ---------------------------------------------------------------------------------------------
def _visit(base_url: str, photo: Path, class_names: list[str], start: threading.Barrier) -> dict:
    """One visitor's whole tour in its own browser, started with the others; each step's seconds and anything
    that went wrong."""
    with chromium_page(timeout_ms=600_000) as page:
        start.wait()  # every visitor's browser is up: they arrive together
        return tour(page, base_url, photo, class_names, lime=True, timeout_ms=600_000)


def measure_crowd(visitors: int = 3, artifacts_root: Path | None = None, malloc_arena_max: int | None = None) -> dict:
    root, class_names, photos, load_before = app_under_test(artifacts_root)
    server = StreamlitServer("app.py", artifacts=root, env=server_env(malloc_arena_max))
    server.start()
    sampler = PeakRss(server.pid)
    sampler.start()
    results: list[dict | None] = [None] * visitors
    try:
        server.wait_healthy(timeout=180)
        start = threading.Barrier(visitors)

        def run(i: int) -> None:
            try:
                results[i] = _visit(server.url, photos[i % len(photos)], class_names, start)
            except Exception as e:
                start.abort()
                results[i] = {"photo": photos[i % len(photos)].name, "lime": True, "steps_s": {},
                              "errors": [{"step": "browser", "error": repr(e)[:500]}]}

        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(visitors)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(1.0)
        hwm = _status_kb(server.pid, "VmHWM") / 1024  # the server process's own peak, exact
        n_procs = len(process_tree(server.pid))
        peak_tree = sampler.stop()
        log_errors = [ln for ln in server.log_text().splitlines() if "Traceback" in ln or "page crashed" in ln]
    finally:
        if sampler.is_alive():
            sampler.stop()
        server.stop()
    steps = sorted({k for r in results if r for k in r["steps_s"]})
    result = {
        "visitors": visitors,
        "server_vmhwm_mb": round(hwm, 1),
        "peak_tree_rss_sampled_mb": round(peak_tree, 1),
        "server_processes": n_procs,
        "every_visitor_answered": all(r and answered(r) for r in results),
        "slowest_step_s": {k: max(r["steps_s"].get(k, 0.0) for r in results if r) for k in steps},
        "cold_gradcam_s": min((r["steps_s"]["explain_gradcam"] for r in results
                               if r and "explain_gradcam" in r["steps_s"]), default=None),
        "visitors_detail": results,
        "server_log_errors": log_errors[:20],
        "targets": CROWD_TARGETS,
    }
    if malloc_arena_max:
        result["malloc_arena_max"] = malloc_arena_max
    result["meets_target"] = {
        "server_vmhwm_mb": result["server_vmhwm_mb"] <= CROWD_TARGETS["server_vmhwm_mb"],
        "host_limit_mb": result["server_vmhwm_mb"] <= CROWD_TARGETS["host_limit_mb"],
        "cold_gradcam_s": result["cold_gradcam_s"] is not None and result["cold_gradcam_s"] <= CROWD_TARGETS["cold_gradcam_s"],
    }
    result |= run_record(root, load_before)
    result["method"] = (f"a fresh `streamlit run app.py`; {visitors} headless Chromium visitors start together, each: "
                        "open Classify, classify an example photo, open Explain (the photo carried over; uploaded when not) until "
                        "its Grad-CAM and the map's check's verdict are shown, press Run LIME "
                        "(100 samples), open Compare, open Latency and press Run (defaults); steps timed from the "
                        "action to the result visible (cold_gradcam_s: the fastest visitor's Explain step, the first "
                        "Grad-CAM of this server); memory = the server's VmHWM from /proc/<pid>/status")
    return result


def main_crowd(visitors: int, artifacts, out, malloc_arena_max: int | None = None) -> dict:
    result = measure_crowd(visitors, artifacts, malloc_arena_max)
    path = paths.app_crowd(visitors).write(result, root=artifacts, output=out)
    ok = result["meets_target"]
    print(f"{visitors} visitors at once: server VmHWM {result['server_vmhwm_mb']:.0f} MB "
          f"(target <= {CROWD_TARGETS['server_vmhwm_mb']:.0f} MB: {'ok' if ok['server_vmhwm_mb'] else 'MISSED'}; "
          f"host limit {CROWD_TARGETS['host_limit_mb']:.0f} MB)")
    print(f"every visitor got every answer: {result['every_visitor_answered']}")
    print(f"first heatmap and its check on the cold server {result['cold_gradcam_s']} s "
          f"(target <= {CROWD_TARGETS['cold_gradcam_s']} s: {'ok' if ok['cold_gradcam_s'] else 'MISSED'})")
    for i, r in enumerate(result["visitors_detail"]):
        print(f"visitor {i + 1}: {r['steps_s']} {'; '.join(e['step'] + ': ' + e['error'] for e in r['errors'])[:400]}")
    print(f"load average {result['machine']['loadavg_before']} -> {result['machine']['loadavg_after']}")
    print(f"wrote {path}")
    return result


# ---------------------------------------------------------------------------------------------
# Soak mode
# ---------------------------------------------------------------------------------------------
# a public demo that lasts (issue 38): memory must not creep up visitor after visitor, must stay under the host's
# limit with a margin, and must come back down (or at least not climb) once the visitors have gone
SOAK_TARGETS = {"growth_mb_per_visitor": 0.5, "server_vmhwm_mb": 1536.0, "idle_rss_delta_mb": 100.0}
SOAK_WARMUP = 5  # visitors whose memory is left out of the growth: the models and caches load during them
LIME_EVERY = 5  # every 5th visitor also runs LIME on Explain


def soak_photos(root: Path, data_root: Path | str | None = None) -> tuple[list[Path], str]:
    """The Flowers-102 test split's photos (ids from ``<artifacts>/splits/``, files under the data root), or the
    shipped example photos when the dataset is not on this machine; and which of the two it is."""
    base = (Path(data_root) if data_root else paths.default_data_root()) / "flowers-102" / "jpg"
    try:
        ids = art.read_split(SHIPPED_PROTOCOL, root)["test"]
    except art.ArtifactMissing:
        ids = []
    photos = [base / f"image_{i:05d}.jpg" for i in ids]
    if photos and all(p.is_file() for p in photos[:5]):
        photos = [p for p in photos if p.is_file()]
        return photos, f"Flowers-102 test split ({len(photos)} photos under {os.path.relpath(base, REPO_ROOT)})"
    return example_photos(), ("the shipped example photos (assets/examples/: no Flowers-102 under "
                              f"{os.path.relpath(base, REPO_ROOT)})")


def torch_mapped(pid: int) -> bool:
    """Is libtorch mapped into ``pid`` or any of its descendants (``/proc/<pid>/maps``)?"""
    for p in process_tree(pid):
        try:
            if "libtorch" in Path(f"/proc/{p}/maps").read_text():
                return True
        except OSError:
            pass
    return False


def growth_per_visitor(rss_mb: list[float | None], after: int = SOAK_WARMUP) -> float | None:
    """Least-squares slope (MB per visitor) of the RSS after each visitor, over the visitors after the ``after``-th
    (visitor numbers from 1); None with fewer than two such measurements."""
    points = [(i + 1, v) for i, v in enumerate(rss_mb) if i >= after and v is not None]
    if len(points) < 2:
        return None
    x, y = np.array(points, dtype=float).T
    return float(np.polyfit(x, y, 1)[0])


def soak_checks(growth: float | None, vmhwm_mb: float, idle_delta_mb: float | None) -> dict[str, bool | None]:
    """Each soak target met (True), missed (False) or not measurable from this run (None: too few visitors)."""
    t = SOAK_TARGETS
    return {"growth_mb_per_visitor": None if growth is None else growth <= t["growth_mb_per_visitor"],
            "server_vmhwm_mb": vmhwm_mb <= t["server_vmhwm_mb"],
            "idle_rss_delta_mb": None if idle_delta_mb is None else abs(idle_delta_mb) <= t["idle_rss_delta_mb"]}


def soak_summary(visits: list[dict], *, vmhwm_mb: float, idle_rss_mb: float, idle_s: float,
                 torch_after_first_classify: bool | None, torch_at_end: bool) -> dict:
    """The soak's figures from each visit (``rss_mb`` after it, ``steps_s``, ``errors``) and the end's memory."""
    rss = [v.get("rss_mb") for v in visits]
    growth = growth_per_visitor(rss)
    reference = min(SOAK_WARMUP, len(visits))  # the idle memory is compared with the memory after this visitor
    ref_rss = rss[reference - 1] if reference else None
    idle_delta = None if ref_rss is None else idle_rss_mb - ref_rss
    steps = [s for s in TOUR_STEPS if any(s in v.get("steps_s", {}) for v in visits)]
    step_s = {}
    for s in steps:
        times = [v["steps_s"][s] for v in visits if s in v.get("steps_s", {})]
        step_s[s] = {"visitors": len(times), "median": round(statistics.median(times), 2), "max": max(times)}
    return {
        "visitors": len(visits),
        "visitors_answered": sum(answered(v) for v in visits),
        "failed_steps": [{"visitor": i + 1, **e} for i, v in enumerate(visits) for e in v.get("errors", [])],
        "growth_mb_per_visitor": None if growth is None else round(growth, 3),
        "growth_after_visitor": SOAK_WARMUP,
        "growth_all_visitors_mb_per_visitor": (None if (g := growth_per_visitor(rss, 0)) is None else round(g, 3)),
        "server_vmhwm_mb": round(vmhwm_mb, 1),
        "rss_after_visitor_mb": [None if v is None else round(v, 1) for v in rss],
        "reference_visitor": reference,
        "reference_rss_mb": None if ref_rss is None else round(ref_rss, 1),
        "idle_s": idle_s,
        "idle_rss_mb": round(idle_rss_mb, 1),
        "idle_rss_delta_mb": None if idle_delta is None else round(idle_delta, 1),
        "torch_mapped": {"after_first_classify": torch_after_first_classify, "at_end": torch_at_end},
        "step_s": step_s,
        "targets": SOAK_TARGETS,
        "meets_target": soak_checks(growth, vmhwm_mb, idle_delta),
    }


def measure_soak(visitors: int, artifacts_root: Path | None = None, data_root: Path | None = None,
                 idle_s: float = 120.0, malloc_arena_max: int | None = None, step_timeout_s: float = 300.0,
                 on_visitor=None) -> dict:
    root, class_names, _, load_before = app_under_test(artifacts_root)
    photos, photo_source = soak_photos(root, data_root)
    server = StreamlitServer("app.py", artifacts=root, env=server_env(malloc_arena_max))
    server.start()
    visits: list[dict] = []
    torch_first: dict[str, bool] = {}
    timeout_ms = int(step_timeout_s * 1000)
    try:
        server.wait_healthy(timeout=180)
        with chromium_browser() as browser:
            for i in range(visitors):
                photo, lime = photos[i % len(photos)], (i + 1) % LIME_EVERY == 0

                def after_step(name: str) -> None:
                    if name == "classify":  # the first visitor's Classify: the app's path is torch-free
                        torch_first["classify"] = torch_mapped(server.pid)

                try:
                    with visitor_page(browser, timeout_ms) as page:
                        visit = tour(page, server.url, photo, class_names, lime=lime, timeout_ms=timeout_ms,
                                     stop_on_error=True, after_step=after_step if i == 0 else None)
                except Exception as e:  # the browser itself failed: this visitor is recorded, the soak goes on
                    visit = {"photo": photo.name, "lime": lime, "steps_s": {}, "total_s": 0.0,
                             "errors": [{"step": "browser", "error": f"{type(e).__name__}: {str(e)[:300]}"}]}
                if server.proc.poll() is not None:
                    visit["errors"].append({"step": "server", "error": f"exited with {server.proc.returncode}"})
                time.sleep(1.0)  # the closed session's late frees and allocations show up
                visit["rss_mb"] = round(tree_rss_mb(server.pid), 1)
                visit["loadavg_1m"] = round(os.getloadavg()[0], 2)
                visits.append(visit)
                if on_visitor is not None:
                    on_visitor(i, visit)
                if server.proc.poll() is not None:
                    break  # nothing left to visit
        time.sleep(idle_s)
        idle_rss = tree_rss_mb(server.pid)
        n_procs = len(process_tree(server.pid))
        own_hwm = _status_kb(server.pid, "VmHWM") / 1024
        hwm_sum = tree_rss_mb(server.pid, "VmHWM")
        torch_end = torch_mapped(server.pid)
        log_errors = [ln for ln in server.log_text().splitlines() if "Traceback" in ln or "page crashed" in ln]
    finally:
        server.stop()
    # one process: its VmHWM is the exact peak; several: the sum of theirs is an upper bound
    result = soak_summary(visits, vmhwm_mb=own_hwm if n_procs == 1 else hwm_sum, idle_rss_mb=idle_rss, idle_s=idle_s,
                          torch_after_first_classify=torch_first.get("classify"), torch_at_end=torch_end)
    result |= {"server_own_vmhwm_mb": round(own_hwm, 1), "tree_vmhwm_sum_mb": round(hwm_sum, 1),
               "server_processes": n_procs, "malloc_arena_max": malloc_arena_max, "lime_every": LIME_EVERY,
               "step_timeout_s": step_timeout_s, "photos": photo_source, "visitors_detail": visits,
               "server_log_errors": log_errors[:20]}
    result |= run_record(root, load_before)
    result["method"] = (f"a fresh `streamlit run app.py`{f' with MALLOC_ARENA_MAX={malloc_arena_max}' if malloc_arena_max else ''}; "
                        f"{visitors} headless Chromium visitors one after another, each in a new browser context (a "
                        "fresh session) with a different photo: Classify it, open Explain (the photo carried over) until "
                        f"its first heatmap and that map's check's verdict are shown, every {LIME_EVERY}th visitor also runs LIME (100 samples), "
                        "open Compare (every model's column), open Latency and press Run (defaults); a step that fails "
                        f"or passes {step_timeout_s:.0f} s ends that visitor (recorded) and the next one comes. Memory: "
                        "the server process tree's RSS (VmRSS, /proc) 1 s after each visitor's context closed; growth = "
                        f"least-squares slope over the visitors after the {SOAK_WARMUP}th; peak = the server's VmHWM; "
                        f"idle = RSS after {idle_s:.0f} s without visitors, against the RSS after the "
                        f"{SOAK_WARMUP}th visitor")
    return result


def write_soak_plot(result: dict, path: Path) -> Path:
    """A small PNG of the RSS after each visitor, the growth fit, the peak and the idle RSS (matplotlib when
    installed, else Pillow)."""
    rss = result["rss_after_visitor_mb"]
    x = list(range(1, len(rss) + 1))
    hwm, idle = result["server_vmhwm_mb"], result["idle_rss_mb"]
    title = (f"{result['visitors']} visitors, one after another"
             + (f"; MALLOC_ARENA_MAX={result['malloc_arena_max']}" if result.get("malloc_arena_max") else ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _soak_plot_pil(x, rss, hwm, idle, title, path)
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=100)
    ax.plot(x, rss, marker=".", lw=1, color="#b5338a", label="server RSS after each visitor")
    growth, after = result.get("growth_mb_per_visitor"), result.get("growth_after_visitor", SOAK_WARMUP)
    points = [(i, v) for i, v in zip(x, rss) if i > after and v is not None]
    if growth is not None and len(points) > 1:
        xs, ys = np.array(points, dtype=float).T
        b = np.polyfit(xs, ys, 1)
        ax.plot(xs, np.polyval(b, xs), "--", color="black", lw=1, label=f"fit after visitor {after}: {growth:+.2f} MB/visitor")
    ax.axhline(hwm, color="#d62728", lw=0.8, ls=":", label=f"peak (VmHWM) {hwm:.0f} MB")
    ax.scatter([len(rss) + max(1, len(rss) // 20)], [idle], marker="s", color="#1f77b4", zorder=3,
               label=f"after {result['idle_s']:.0f} s idle: {idle:.0f} MB")
    ax.set_xlabel("visitor")
    ax.set_ylabel("MB")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _soak_plot_pil(x: list[int], rss: list, hwm: float, idle: float, title: str, path: Path) -> Path:
    from PIL import Image, ImageDraw

    w, h, pad = 640, 320, 40
    values = [v for v in rss if v is not None] + [hwm, idle]
    lo, hi = min(values) * 0.95, max(values) * 1.05 or 1.0
    n = max(len(x), 2)

    def at(i: float, v: float) -> tuple[float, float]:
        return pad + (i - 1) / (n - 1) * (w - 2 * pad), h - pad - (v - lo) / (hi - lo) * (h - 2 * pad)

    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    d.rectangle([pad, pad, w - pad, h - pad], outline="#999999")
    d.line([at(1, hwm), at(n, hwm)], fill="#d62728")
    d.line([at(i, v) for i, v in zip(x, rss) if v is not None], fill="#b5338a", width=2)
    ix, iy = at(n, idle)
    d.rectangle([ix - 3, iy - 3, ix + 3, iy + 3], fill="#1f77b4")
    d.text((pad, 10), f"{title}: server RSS (MB) after each visitor; red: peak {hwm:.0f} MB; blue: idle {idle:.0f} MB",
           fill="black")
    d.text((4, pad), f"{hi:.0f}", fill="black")
    d.text((4, h - pad - 10), f"{lo:.0f}", fill="black")
    d.text((w // 2, h - pad + 8), "visitor", fill="black")
    img.save(path, optimize=True)
    return path


def main_soak(visitors: int, artifacts, out, data_root=None, idle_s: float = 120.0,
              malloc_arena_max: int | None = None, step_timeout_s: float = 300.0) -> dict:
    def progress(i: int, visit: dict) -> None:
        errors = "; ".join(f"{e['step']}: {e['error']}" for e in visit["errors"])[:300]
        print(f"visitor {i + 1}/{visitors} {visit['photo']}{' +LIME' if visit['lime'] else ''}: RSS "
              f"{visit['rss_mb']:.0f} MB, {visit['total_s']} s {visit['steps_s']} {errors}", flush=True)

    result = measure_soak(visitors, artifacts, data_root, idle_s, malloc_arena_max, step_timeout_s, progress)
    report = paths.APP_SOAK.file(artifacts, out)
    plot = report.with_suffix(".png") if out else paths.artifacts_dir(artifacts) / paths.APP_SOAK_PLOT
    result["plot"] = os.path.relpath(write_soak_plot(result, plot), report.parent)
    path = paths.APP_SOAK.write(result, root=artifacts, output=out)
    ok, t = result["meets_target"], SOAK_TARGETS

    def verdict(key: str) -> str:
        return {True: "ok", False: "MISSED", None: "not measured"}[ok[key]]

    growth = result["growth_mb_per_visitor"]
    print(f"{result['visitors_answered']}/{result['visitors']} visitors answered")
    print(f"growth after visitor {SOAK_WARMUP}: {'—' if growth is None else f'{growth:+.3f}'} MB/visitor "
          f"(target <= {t['growth_mb_per_visitor']}: {verdict('growth_mb_per_visitor')}; over all visitors "
          f"{result['growth_all_visitors_mb_per_visitor']})")
    print(f"server VmHWM {result['server_vmhwm_mb']:.0f} MB (target <= {t['server_vmhwm_mb']:.0f} MB: "
          f"{verdict('server_vmhwm_mb')})")
    print(f"RSS after {idle_s:.0f} s idle {result['idle_rss_mb']:.0f} MB, {result['idle_rss_delta_mb']} MB against "
          f"visitor {result['reference_visitor']} (target within {t['idle_rss_delta_mb']:.0f} MB: "
          f"{verdict('idle_rss_delta_mb')})")
    print(f"torch mapped in the server: after the first Classify {result['torch_mapped']['after_first_classify']}, "
          f"at the end {result['torch_mapped']['at_end']}")
    print(f"load average {result['machine']['loadavg_before']} -> {result['machine']['loadavg_after']}")
    print(f"wrote {path} and {plot}")
    return result


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--uploads", type=int, default=15, help="timed uploads after the first (default 15)")
    ap.add_argument("--crowd", type=int, default=0, metavar="N",
                    help="crowd mode: N visitors at once pressing every heavy button (see the module docstring)")
    ap.add_argument("--soak", type=int, default=0, metavar="N",
                    help="soak mode: N visitors one after another, the server's memory after each (module docstring)")
    ap.add_argument("--idle-s", type=float, default=120.0, help="soak: seconds without visitors before the idle RSS")
    ap.add_argument("--step-timeout-s", type=float, default=300.0, help="soak: a visitor's step fails after this long")
    ap.add_argument("--malloc-arena-max", type=int, default=None, metavar="K",
                    help="set MALLOC_ARENA_MAX=K in the server's environment (glibc's malloc arenas), to compare runs")
    ap.add_argument("--data-root", type=Path, default=None,
                    help="soak: where flowers-102/ lies (default $FLOWERS_DATA_ROOT or ../shared/data)")
    ap.add_argument("--artifacts", type=Path, default=None, help="artifacts dir (default $FLOWERS_ARTIFACTS or artifacts/)")
    ap.add_argument("--out", type=Path, default=None, help=f"default <artifacts>/{paths.APP_PERFORMANCE.path}")
    args = ap.parse_args(argv)
    if args.soak:
        return main_soak(args.soak, args.artifacts, args.out, args.data_root, args.idle_s, args.malloc_arena_max,
                         args.step_timeout_s)
    if args.crowd:
        return main_crowd(args.crowd, args.artifacts, args.out, args.malloc_arena_max)
    result = measure(args.uploads, args.artifacts, args.malloc_arena_max)
    out = paths.APP_PERFORMANCE.write(result, root=args.artifacts, output=args.out)
    ok = result["meets_target"]
    print(f"cold start      {result['cold_start_s']:7.2f} s   (target <= {TARGETS['cold_start_s']} s)  "
          f"{'ok' if ok['cold_start_s'] else 'MISSED'}")
    print(f"round trip p50  {result['round_trip_p50_s']:7.3f} s   (target <= {TARGETS['round_trip_p50_s']} s)  "
          f"{'ok' if ok['round_trip_p50_s'] else 'MISSED'}; first upload {result['round_trip_first_s']:.2f} s")
    print(f"Classify only   {result['classify_only_rss_mb']:7.0f} MB  (target <= {TARGETS['classify_only_rss_mb']:.0f} MB) "
          f"{'ok' if ok['classify_only_rss_mb'] else 'MISSED'}; peak during it {result['classify_only_peak_mb']:.0f} MB")
    print(f"peak memory     {result['peak_rss_mb']:7.0f} MB  (target <= {TARGETS['peak_rss_mb']:.0f} MB) "
          f"{'ok' if ok['peak_rss_mb'] else 'MISSED'}; VmHWM sum {result['hwm_sum_mb']:.0f} MB")
    print(f"load average {result['machine']['loadavg_before']} -> {result['machine']['loadavg_after']} "
          f"on {result['machine']['cpus']} x {result['machine']['cpu_model']}")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
