"""Explanations as jobs: the answering model's own maps (torch-free, at once), their checks and the other methods
(computed under the heavy-job bound, in worker threads where a click may interrupt the page), kept in small caches
bounded in bytes, watched by the page that asked (a note while another visitor's job runs, a spinner, LIME's
progress).

The first map and its check run on the model that answered, the INT8 student on onnxruntime: a visitor who opens
Explain never loads torch. Grad-CAM++, EigenCAM and the fp32 and level-3 maps need gradients: their model is opened
with torch when the visitor asks for them (``resources.predictor(..., runtime="torch")``)."""
from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import numpy as np
import streamlit as st

from ..metrics import softmax
from ..serve.decode import load_image
from ..serve.heatmap import Explanation, class_activation_map
from ..serve.lime_map import lime_map
from ..serve.predictor import Predictor
from ..serve.road import CHECK_DRAWS, HidingCheck, hiding_check
from ..shipped.splits import SHIPPED_PROTOCOL
from .resources import _key, _predictor, held_heavy_job, one_heavy_job

FEATURE_STRIDE = 32  # EfficientNet's last feature map: one cell per 32 px of the view (the random maps' grid)


def remember(**values) -> None:
    """A button's ``on_click``: store what the visitor asked for in their session state."""
    for key, value in values.items():
        st.session_state[key] = value


class BoundedCache(OrderedDict):
    """A least-recently-used dict bounded in bytes (numpy arrays counted by their size): what a crowd of visitors'
    uploads can hold in the server is a fixed amount, not a number of entries of unknown size."""

    def __init__(self, max_bytes: int = 24_000_000):
        super().__init__()
        self.max_bytes, self.bytes = max_bytes, 0
        self._sizes: dict = {}

    @staticmethod
    def size_of(value) -> int:
        if isinstance(value, np.ndarray):
            return value.nbytes
        if isinstance(value, (list, tuple)):
            return sum(BoundedCache.size_of(v) for v in value)
        if hasattr(value, "__dict__"):
            return 256 + sum(BoundedCache.size_of(v) for v in vars(value).values())
        return 64

    def put(self, key, value) -> None:
        if key in self:
            self.bytes -= self._sizes.pop(key)
            del self[key]
        self[key] = value
        self._sizes[key] = self.size_of(value)
        self.bytes += self._sizes[key]
        while self.bytes > self.max_bytes and len(self) > 1:
            old, _ = self.popitem(last=False)
            self.bytes -= self._sizes.pop(old)

    def hit(self, key):
        """The value (marked recently used), or None."""
        if key not in self:
            return None
        self.move_to_end(key)
        return self[key]


_EXPLANATIONS = BoundedCache(24_000_000)  # maps (two ~0.3 MB arrays each)
_CHECKS = BoundedCache(2_000_000)  # checks and the random draws' confidences (a few hundred bytes each)
_LOCK = threading.Lock()  # guards the caches and _JOBS


def _photo_key(photo: bytes, *rest) -> tuple:
    root, mtime = _key()
    return (hashlib.sha256(photo).hexdigest(), *rest, root, mtime)


# ---------------------------------------------------------------------------------------------
# The answering model's own maps (torch-free)
# ---------------------------------------------------------------------------------------------
def answer_views(clf: Predictor, img, pred) -> list[tuple[str, np.ndarray]]:
    """The views the answer was made from, as the model saw them: the whole photo, and the closer crop when the
    localisation stage used one (``Predictor.localised``)."""
    pre = clf.preprocess
    views = [("whole", pre.eval_crop(img.convert("RGB")))]
    place = getattr(pred, "localisation", None)
    if place is not None and place.used:
        views.append(("closer", pre.eval_crop(img.crop(place.box.as_tuple()).convert("RGB"))))
    return views


def answer_maps(photo: bytes, clf: Predictor, img, pred, target: int) -> list[tuple[str, Explanation]]:
    """The answering model's class activation map of ``target`` on each view its answer used (milliseconds: one
    pass of the INT8 file per view); cached per photo and class."""
    key = _photo_key(photo, clf.name, "answer maps", int(target))
    with _LOCK:
        found = _EXPLANATIONS.hit(key)
    if found is None:
        session = clf.locator if clf.locator is not None else clf.backend.session
        found = [(label, class_activation_map(session, view, clf.preprocess, target))
                 for label, view in answer_views(clf, img, pred)]
        with _LOCK:
            _EXPLANATIONS.put(key, found)
    return found


def _confidences(clf: Predictor, target: int):
    """Normalised batch -> the model's calibrated probability of ``target`` per image (what the check measures)."""
    def run(batch: np.ndarray) -> np.ndarray:
        out = [softmax(clf.logits(batch[i:i + 8]), clf.temperature or 1.0)[:, int(target)]
               for i in range(0, len(batch), 8)]
        return np.concatenate(out)
    return run


def check_cached(photo: bytes, clf: Predictor, exp: Explanation, target: int, view: str = "") -> HidingCheck:
    """The check of ``exp`` on its view, run on ``clf`` (the model that gave the map), as a heavy job under a
    spinner the first time; the random draws of a view and class are measured once and shared by its maps."""
    key = _photo_key(photo, clf.name, clf.runtime, view, exp.method, int(target))
    draws_key = _photo_key(photo, clf.name, clf.runtime, view, "random draws", int(target))
    with _LOCK:
        found, draws = _CHECKS.hit(key), _CHECKS.hit(draws_key)
    if found is not None:
        return found
    pre = clf.preprocess
    x = pre.normalize_array(exp.view.transpose(2, 0, 1))
    grid = math.ceil(x.shape[-1] / FEATURE_STRIDE)
    run = _confidences(clf, target)
    with one_heavy_job("The check starts in a moment: another visitor's request is running."), \
            st.spinner(f"Checking this map: hiding the parts it marks, then {CHECK_DRAWS} random parts, and asking "
                       "the model again (a few seconds)…"):
        found = hiding_check(run, x, exp.heatmap, target, grid, random_confidences=draws)
    with _LOCK:
        _CHECKS.put(key, found)
        _CHECKS.put(draws_key, found.after_random)
    return found


# ---------------------------------------------------------------------------------------------
# Other methods: jobs in worker threads
# ---------------------------------------------------------------------------------------------
def explanation(clf: Predictor, photo: bytes, method: str, target: int | None, num_samples: int = 150,
                progress=None) -> Explanation:
    """One explanation of ``clf``'s view of ``photo``, computed now (``explain_cached`` keeps them). LIME runs on
    any model through its predictions (the INT8 student: no torch); the other methods need the torch network."""
    img = load_image(photo)
    if method == "LIME":
        pre = clf.preprocess

        def classify(batch: np.ndarray) -> np.ndarray:
            x = pre.normalize_array(np.clip(batch, 0, 255).astype(np.uint8).transpose(0, 3, 1, 2))
            return softmax(clf.logits(x), 1.0)

        return lime_map(classify, pre.eval_crop(img.convert("RGB")), target, num_samples, progress=progress)
    from ..explain import maps as explain  # torch: only for the methods that need gradients

    if method == "Attention":
        return explain.attention_map(clf.model, img)
    return explain.gradcam(clf.model, img, method, target)


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
_WORKERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="explain")  # they queue on _HEAVY, one runs


def _run_job(key: tuple, job: _Job, clf, photo: bytes, method: str, target: int | None, num_samples: int):
    def progress(done: int, total: int) -> None:
        job.done, job.total = done, total

    try:
        with held_heavy_job():
            job.started = True
            found = explanation(clf, photo, method, target, num_samples, progress)
        with _LOCK:
            _EXPLANATIONS.put(key, found)
        return found
    finally:
        with _LOCK:
            _JOBS.pop(key, None)


def explain_cached(photo: bytes, name: str, method: str, target: int | None, num_samples: int = 150,
                   runtime: str = "torch"):
    """The explanation, from the cache or computed as a heavy job, with what the visitor waits for on the page:
    a note while another visitor's job runs, then a spinner, or LIME's progress. ``runtime``: how ``name`` is
    opened (LIME on the INT8 student: "onnx")."""
    # made on every run, used or not: the page's later elements keep their places from one run to the next (an
    # expander that moved would be a new, closed one)
    note = st.empty()
    root, mtime = _key()
    key = (hashlib.sha256(photo).hexdigest(), name, runtime, method, target, num_samples, root, mtime)
    with _LOCK:
        found = _EXPLANATIONS.hit(key)
        job = _JOBS.get(key)
    if found is not None:
        return found
    if job is None:
        clf = _predictor(name, SHIPPED_PROTOCOL, root, mtime, runtime)  # loaded here, with its spinner and bound
        with _LOCK:
            job = _JOBS.get(key)
            if job is None:
                job = _JOBS[key] = _Job(total=num_samples if method == "LIME" else 0)
                job.future = _WORKERS.submit(_run_job, key, job, clf, photo, method, target, num_samples)
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
