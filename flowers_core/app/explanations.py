"""Explanations as jobs: computed in worker threads under the heavy-job bound, kept in a small LRU, watched by
the page that asked (a note while another visitor's job runs, a spinner, LIME's progress)."""
from __future__ import annotations

import atexit
import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import streamlit as st

from ..results import common
from ..serve.decode import load_image
from ..shipped import catalog
from ..shipped.splits import SHIPPED_PROTOCOL
from .resources import _HEAVY, _LOADED, _key, _loaded_predictor, _predictor, one_heavy_job


def remember(**values) -> None:
    """A button's ``on_click``: store what the visitor asked for in their session state."""
    for key, value in values.items():
        st.session_state[key] = value


def explanation(model, photo: bytes, method: str, target: int | None, num_samples: int = 150, progress=None):
    """One explanation of ``model``'s view of ``photo``, computed now (``explain_cached`` keeps them)."""
    from ..explain import maps as explain  # torch: loaded by the Explain page only (Classify starts without it)

    img = load_image(photo)
    if method == "Attention":
        return explain.attention_map(model, img)
    if method == "LIME":
        return explain.lime(model, img, target, num_samples=num_samples, progress=progress)
    return explain.gradcam(model, img, method, target)


# Explanations kept per (photo, model, method, target, samples): moving the opacity slider or coming back costs
# nothing. A plain LRU rather than st.cache_data, so that the wait note and LIME's progress bar shown while one is
# computed are never stored and replayed with it. ~0.4 MB each.
log = logging.getLogger("flowers_app")
_EXPLANATIONS: OrderedDict = OrderedDict()
_EXPLANATIONS_LOCK = threading.Lock()  # guards _EXPLANATIONS and _JOBS
EXPLANATIONS_KEPT = 64


@dataclass
class _Job:
    """An explanation being computed in a worker thread; the pages that want it watch ``done``/``total``."""

    future: Future | None = None
    started: bool = False
    done: int = 0
    total: int = 0


# Explanations run in worker threads, not in the visitor's script run: a click during LIME (the opacity slider)
# reruns the page, which interrupts the script at its next Streamlit call (the progress bar); the job goes on,
# and the rerun (or another visitor asking for the same explanation) waits for the same job.
_JOBS: dict[tuple, _Job] = {}
_WORKERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="explain")  # they queue on _HEAVY, one runs


def _run_job(key: tuple, job: _Job, model, photo: bytes, method: str, target: int | None, num_samples: int):
    def progress(done: int, total: int) -> None:
        job.done, job.total = done, total

    try:
        with _HEAVY:
            job.started = True
            found = explanation(model, photo, method, target, num_samples, progress)
        with _EXPLANATIONS_LOCK:
            _EXPLANATIONS[key] = found
            while len(_EXPLANATIONS) > EXPLANATIONS_KEPT:
                _EXPLANATIONS.popitem(last=False)
        return found
    finally:
        with _EXPLANATIONS_LOCK:
            _JOBS.pop(key, None)


def explain_cached(photo: bytes, name: str, method: str, target: int | None, num_samples: int = 150):
    """The explanation, from the cache or computed as a heavy job, with what the visitor waits for on the page:
    a note while another visitor's job runs, then a spinner, or LIME's progress."""
    # made on every run, used or not: the page's later elements keep their places from one run to the next (an
    # expander that moved would be a new, closed one)
    note = st.empty()
    root, mtime = _key()
    key = (hashlib.sha256(photo).hexdigest(), name, method, target, num_samples, root, mtime)
    with _EXPLANATIONS_LOCK:
        if key in _EXPLANATIONS:
            _EXPLANATIONS.move_to_end(key)
            return _EXPLANATIONS[key]
        job = _JOBS.get(key)
    if job is None:
        model = _predictor(name, SHIPPED_PROTOCOL, root, mtime).model  # loaded here, with its spinner and bound
        with _EXPLANATIONS_LOCK:
            job = _JOBS.get(key)
            if job is None:
                job = _JOBS[key] = _Job(total=num_samples if method == "LIME" else 0)
                job.future = _WORKERS.submit(_run_job, key, job, model, photo, method, target, num_samples)
    try:
        while True:
            try:
                return job.future.result(timeout=0.25)
            except FutureTimeout:
                pass
            if not job.started:
                note.info("Your explanation starts in a moment: another visitor's is being computed.", icon="⏳")
            elif method == "LIME":
                note.progress(job.done / max(job.total, 1),
                              text=f"LIME: tried {job.done} of {job.total} photos")
            else:
                note.info("Computing the explanation…", icon="⏳")
    finally:
        note.empty()


# A heatmap's faithfulness score (``explain.faithfulness``) kept per (photo, model, map, class); the random maps'
# curve, which depends on the photo, the model and the class but not on the map, is kept apart and shared by every
# map of the photo (it is most of the cost of the first score). A few hundred bytes each.
_FAITHFULNESS: OrderedDict = OrderedDict()
_RANDOM_CURVES: OrderedDict = OrderedDict()


def faithfulness_cached(photo: bytes, name: str, exp, target: int, samples: int = 0):
    """How much hiding what ``exp`` marks changes ``name``'s confidence in ``target``, against random maps of the
    same photo (``faithfulness.score``), computed as a heavy job under a spinner the first time."""
    from ..explain import faithfulness  # torch: the Explain page only

    root, mtime = _key()
    digest = hashlib.sha256(photo).hexdigest()
    key = (digest, name, exp.method, int(target), samples, root, mtime)
    random_key = (digest, name, int(target), root, mtime)
    with _EXPLANATIONS_LOCK:
        if key in _FAITHFULNESS:
            _FAITHFULNESS.move_to_end(key)
            return _FAITHFULNESS[key]
        random = _RANDOM_CURVES.get(random_key)
    clf = _predictor(name, SHIPPED_PROTOCOL, root, mtime)
    with one_heavy_job("The check starts in a moment: another visitor's request is running."), \
            st.spinner("Checking this map: hiding the parts it marks and asking the model again (a few seconds)…"):
        found = faithfulness.score(clf.model, exp.view, exp.heatmap, int(target), float(clf.temperature or 1.0),
                                   random=random)
    with _EXPLANATIONS_LOCK:
        _FAITHFULNESS[key] = found
        _RANDOM_CURVES[random_key] = found.random
        for kept in (_FAITHFULNESS, _RANDOM_CURVES):
            while len(kept) > EXPLANATIONS_KEPT:
                kept.popitem(last=False)
    return found


# ---------------------------------------------------------------------------------------------
# Warming the explanations once the server has served a page
# ---------------------------------------------------------------------------------------------
# A cold server's first heatmap took 7-8 s, mostly importing torch and timm and building the network. Once a first
# page has been sent, a background thread does that for the model Explain opens on, so a visitor who then asks for
# a heatmap finds them ready. Classify's own path still imports no torch (its test runs with the warm-up off); the
# server holds torch from then on (its peak with 3 visitors is measured with it: DECISIONS.md).
WARM_ENV = "FLOWERS_WARM_EXPLAIN"  # "0": no warm-up (a host that only classifies, the lean-start test)
WARM_MODEL = catalog.fp32_twin(catalog.PRODUCTION)  # the Explain page's first model
_WARM_STARTED = threading.Event()
WARM_JOIN_S = 120  # the longest a process that ends waits for the warm-up
WARMED: dict = {}  # what the warm-up did and how long it took (the server log says it too)


def warm_in_background() -> None:
    """Start the warm-up once per server process (later calls return at once)."""
    if os.environ.get(WARM_ENV, "1") == "0" or _WARM_STARTED.is_set():
        return
    with _EXPLANATIONS_LOCK:
        if _WARM_STARTED.is_set():
            return
        _WARM_STARTED.set()
    root, mtime = _key()
    thread = threading.Thread(target=_warm, args=(root, mtime), name="warm-explain", daemon=True)
    thread.start()
    # a process that ends while the thread is still importing torch aborts in torch's native teardown ("terminate
    # called without an active exception", exit 134): let the warm-up finish first
    atexit.register(thread.join, WARM_JOIN_S)


def _warm(root: str, mtime: float) -> None:
    start = time.perf_counter()
    try:
        from ..explain import maps  # noqa: F401  torch, timm and OpenCV: the imports a first heatmap waited for

        WARMED["imports_s"] = round(time.perf_counter() - start, 2)
        key = (WARM_MODEL, SHIPPED_PROTOCOL, root, mtime)
        if common.has_weights(WARM_MODEL, root) and key not in _LOADED:
            with _HEAVY:  # as a visitor's load: never beside another heavy job
                _loaded_predictor(*key)
            _LOADED.add(key)
            WARMED["model"] = WARM_MODEL
        WARMED["total_s"] = round(time.perf_counter() - start, 2)
        log.info("explanations warmed in the background: %s", WARMED)
    except Exception as e:  # a warm-up that fails leaves the pages to load what they need, as before
        WARMED["error"] = f"{type(e).__name__}: {e}"
        log.warning("warming the explanations failed: %s", WARMED["error"])
