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
``--crowd 1`` the Explain step is the first Grad-CAM of a cold server. Writes
``<artifacts>/reports/app_crowd_<N>.json``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import threading
import time
from pathlib import Path

from ..serve.words import LIME_NOTE_MARK
from ..shipped import manifest as art
from ..shipped import paths
from ..shipped.paths import REPO_ROOT
from .browser import AppDriver, StreamlitServer, chromium_page
from .latency import cpu_model

TARGETS = {"cold_start_s": 4.0, "round_trip_p50_s": 0.5, "classify_only_rss_mb": 500.0, "peak_rss_mb": 1536.0}
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


def measure(uploads: int = 15, artifacts_root: Path | None = None) -> dict:
    root, class_names, photos, load_before = app_under_test(artifacts_root)
    result: dict = {}
    with chromium_page(timeout_ms=180_000) as page:  # the browser is up before the clock starts
        server = StreamlitServer("app.py", artifacts=root)
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
    result |= run_record(root, load_before)
    result["method"] = ("headless Chromium (Playwright) against `streamlit run app.py`; cold start = launch -> "
                        "uploader visible; round trip = file chosen -> answer heading visible, fresh session "
                        "each, median of the uploads after the first; Classify-only memory = server process "
                        "tree RSS after those uploads, before another page is opened; peak memory = server process "
                        "tree RSS sampled every 100 ms until all pages were visited, and the sum of VmHWM")
    return result


# ---------------------------------------------------------------------------------------------
# Crowd mode
# ---------------------------------------------------------------------------------------------
def _main_images(page) -> int:
    return page.locator('[data-testid="stMain"] [data-testid="stImage"]').count()


def _wait_images(page, at_least: int, timeout_ms: int = 600_000) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=\"stMain\"] [data-testid=\"stImage\"]').length >= n",
        arg=at_least, timeout=timeout_ms, polling=100)


def _visit(base_url: str, photo: Path, class_names: list[str], start: threading.Barrier) -> dict:
    """One visitor's whole tour; returns each step's seconds and anything that went wrong."""
    steps: dict[str, float] = {}
    errors: list[str] = []
    with chromium_page(timeout_ms=600_000) as page:
        app = AppDriver(page, base_url)
        start.wait()  # every visitor's browser is up: they arrive together

        def step(name: str, action) -> None:
            t0 = time.perf_counter()
            try:
                action()
            except Exception as e:  # a step that fails is reported, and the tour goes on
                errors.append(f"{name}: {type(e).__name__}: {str(e)[:300]}")
            steps[name] = round(time.perf_counter() - t0, 2)
            errors.extend(f"{name}: {t[:300]}" for t in app.error_texts())

        def hrefs() -> dict[str, str]:
            return dict(app.nav_links())

        step("open", lambda: (app.open(), app.wait_uploader(timeout_ms=600_000)))
        step("classify", lambda: app.classify(photo, class_names, timeout_ms=600_000))
        app.wait_idle(600_000)
        links = hrefs()

        def explain() -> None:
            app.goto_page(links["Explain"])
            app.wait_uploader(timeout_ms=600_000)
            app.upload(photo)  # each page asks for its own photo
            _wait_images(page, 3)  # what the model sees, the raw heatmap, the overlay

        step("explain_gradcam", explain)

        def lime() -> None:
            app.wait_idle(600_000)  # the Grad-CAM run over: the button pressed is the finished page's
            page.locator('[data-testid="stExpander"]').filter(has_text="LIME").locator("summary").first.click()
            app.run_and_wait(page.get_by_role("button", name="Run LIME").click, timeout_ms=600_000)
            # LIME's own note, not a count of images taken while the page was still drawing (a count taken
            # mid-run could be too high and never be reached)
            page.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]').filter(
                has_text=LIME_NOTE_MARK).first.wait_for(timeout=600_000)

        step("explain_lime", lime)
        step("compare", lambda: app.goto_page(links["Compare models"]))

        def latency() -> None:
            app.goto_page(links["Latency"])
            app.run_and_wait(page.get_by_role("button", name="Run", exact=True).click, timeout_ms=600_000)
            page.locator('[data-testid="stMain"] [data-testid="stPlotlyChart"]').first.wait_for(timeout=600_000)

        step("latency_run", latency)
    return {"photo": photo.name, "steps_s": steps, "total_s": round(sum(steps.values()), 2), "errors": errors}


def measure_crowd(visitors: int = 3, artifacts_root: Path | None = None) -> dict:
    root, class_names, photos, load_before = app_under_test(artifacts_root)
    server = StreamlitServer("app.py", artifacts=root)
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
                results[i] = {"photo": photos[i % len(photos)].name, "steps_s": {}, "errors": [repr(e)[:500]]}

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
        "every_visitor_answered": all(r and not r["errors"] and len(r["steps_s"]) == 6 for r in results),
        "slowest_step_s": {k: max(r["steps_s"].get(k, 0.0) for r in results if r) for k in steps},
        "cold_gradcam_s": min((r["steps_s"]["explain_gradcam"] for r in results
                               if r and "explain_gradcam" in r["steps_s"]), default=None),
        "visitors_detail": results,
        "server_log_errors": log_errors[:20],
        "targets": CROWD_TARGETS,
    }
    result["meets_target"] = {
        "server_vmhwm_mb": result["server_vmhwm_mb"] <= CROWD_TARGETS["server_vmhwm_mb"],
        "host_limit_mb": result["server_vmhwm_mb"] <= CROWD_TARGETS["host_limit_mb"],
        "cold_gradcam_s": result["cold_gradcam_s"] is not None and result["cold_gradcam_s"] <= CROWD_TARGETS["cold_gradcam_s"],
    }
    result |= run_record(root, load_before)
    result["method"] = (f"a fresh `streamlit run app.py`; {visitors} headless Chromium visitors start together, each: "
                        "open Classify, classify an example photo, open Explain and upload it (Grad-CAM shown), press Run LIME "
                        "(100 samples), open Compare, open Latency and press Run (defaults); steps timed from the "
                        "action to the result visible (cold_gradcam_s: the fastest visitor's Explain step, the first "
                        "Grad-CAM of this server); memory = the server's VmHWM from /proc/<pid>/status")
    return result


def main_crowd(visitors: int, artifacts, out) -> dict:
    result = measure_crowd(visitors, artifacts)
    path = paths.app_crowd(visitors).write(result, out, artifacts)
    ok = result["meets_target"]
    print(f"{visitors} visitors at once: server VmHWM {result['server_vmhwm_mb']:.0f} MB "
          f"(target <= {CROWD_TARGETS['server_vmhwm_mb']:.0f} MB: {'ok' if ok['server_vmhwm_mb'] else 'MISSED'}; "
          f"host limit {CROWD_TARGETS['host_limit_mb']:.0f} MB)")
    print(f"every visitor got every answer: {result['every_visitor_answered']}")
    print(f"first Grad-CAM of the cold server {result['cold_gradcam_s']} s "
          f"(target <= {CROWD_TARGETS['cold_gradcam_s']} s: {'ok' if ok['cold_gradcam_s'] else 'MISSED'})")
    for i, r in enumerate(result["visitors_detail"]):
        print(f"visitor {i + 1}: {r['steps_s']} {'; '.join(r['errors'])[:400]}")
    print(f"load average {result['machine']['loadavg_before']} -> {result['machine']['loadavg_after']}")
    print(f"wrote {path}")
    return result


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--uploads", type=int, default=15, help="timed uploads after the first (default 15)")
    ap.add_argument("--crowd", type=int, default=0, metavar="N",
                    help="crowd mode: N visitors at once pressing every heavy button (see the module docstring)")
    ap.add_argument("--artifacts", type=Path, default=None, help="artifacts dir (default $FLOWERS_ARTIFACTS or artifacts/)")
    ap.add_argument("--out", type=Path, default=None, help=f"default <artifacts>/{paths.APP_PERFORMANCE.path}")
    args = ap.parse_args(argv)
    if args.crowd:
        return main_crowd(args.crowd, args.artifacts, args.out)
    result = measure(args.uploads, args.artifacts)
    out = paths.APP_PERFORMANCE.write(result, args.out, args.artifacts)
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
