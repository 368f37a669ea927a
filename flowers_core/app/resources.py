"""What the app loads once and shares: cached models (``st.cache_resource``), gallery packs and tables, and the
bound of one heavy job at a time in the whole server.

Every model runs on onnxruntime unless a visitor asks for a method that needs gradients: the INT8 student, and the
torch models on their ONNX twins (``train.onnx_twins``; Compare, Latency, the ensemble). Torch is imported only
when a torch network is asked for with ``runtime="torch"`` (Explain's Grad-CAM++, EigenCAM, the fp32 and level-3
maps), under the heavy-job bound and a spinner that says so. Models are shared by every visitor, read-only. Heavy
work (an explanation, a check, a comparison, a latency run, loading torch) runs one job at a time
(``one_heavy_job``): a free host's memory fits one such peak, not five; a visitor whose job waits is told so, and
each job ends by giving the allocator's free memory back to the system (``memory.give_back``). Cache keys include the artifacts folder and the manifest's
mtime, so retraining or pointing ``FLOWERS_ARTIFACTS`` elsewhere loads fresh models."""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from pathlib import Path

import pandas as pd
import streamlit as st

from ..open_model import open_predictor
from ..results import common, explore
from ..serve.gallery import ReferencePhotos, Thumbnails
from ..serve.mistakes import MistakeMaps
from ..serve.predictor import Predictor, has_onnx_twin
from ..serve.words import (
    load_error,
)
from ..shipped import catalog
from ..shipped import manifest as art
from ..shipped.paths import MISTAKE_MAPS
from ..shipped.splits import SHIPPED_PROTOCOL
from . import memory

log = logging.getLogger("flowers_app")

# The app's default classifier and what it falls back to: the highest level first (the INT8 student).
CLASSIFIER_PREFERENCE = tuple(reversed(catalog.NAMES))


def _key() -> tuple[str, float]:
    path = art.manifest_path()
    return str(art.artifacts_dir()), path.stat().st_mtime if path.is_file() else 0.0


# ---------------------------------------------------------------------------------------------
# One heavy job at a time
# ---------------------------------------------------------------------------------------------
# Reentrant: a latency run loads its models under the same bound (each visitor's script runs in its own thread).
_HEAVY = threading.RLock()
_DEPTH = threading.local()  # how deep this thread is in nested heavy jobs


@contextlib.contextmanager
def held_heavy_job():
    """Hold the heavy-job bound for the block, waiting for it silently (a worker thread has no page to write on);
    the outermost job of a thread gives the allocator's free memory back to the system when it ends."""
    with _HEAVY:
        _DEPTH.value = getattr(_DEPTH, "value", 0) + 1
        try:
            yield
        finally:
            _DEPTH.value -= 1
            if _DEPTH.value == 0:
                memory.give_back()


@contextlib.contextmanager
def one_heavy_job(waiting: str = "Your request starts in a moment: another visitor's is running."):
    """Run the block when no other visitor's heavy job runs in this server; until then show ``waiting``.

    Three visitors pressing LIME together peaked at 3.6 GB, over a free host's 2.7 GB; one at a time, each
    waits for the others' jobs (seconds each) and the server's peak is one job's."""
    if not _HEAVY.acquire(blocking=False):
        # a spinner is transient: unlike a placeholder, it leaves the page's later elements in their places (an
        # expander that moved from one run to the next would be a new, closed one)
        with st.spinner(waiting):
            _HEAVY.acquire()
    try:
        with held_heavy_job():  # reentrant: this thread holds it already
            yield
    finally:
        _HEAVY.release()


# ---------------------------------------------------------------------------------------------
# Cached resources
# ---------------------------------------------------------------------------------------------
APP_THREADS = os.cpu_count() or 1  # every model's intra-op threads, stated (the Latency page reuses them)


@st.cache_resource(show_spinner=False, max_entries=16)
def _loaded_predictor(name: str, protocol: str, root: str, mtime: float, runtime: str = "onnx") -> Predictor:
    return open_predictor(name, protocol, root, threads=APP_THREADS, runtime=runtime)


@functools.lru_cache(maxsize=64)
def needs_torch(name: str, protocol: str, root: str, mtime: float, runtime: str = "onnx") -> bool:
    """Whether opening ``name`` this way imports torch: a torch network asked for itself (gradients), or a torch
    model without a recorded ONNX twin (for every member, for the ensemble)."""
    shipped = catalog.get(name)
    if shipped is not None and shipped.runtime == "onnx":
        return False
    if runtime == "torch":
        return True
    entry = art.model_entries(protocol, root).get(name)
    return entry is None or not has_onnx_twin(entry, protocol, root)


TORCH_LOADING = ("Loading the full model and its maths library (torch) for this method: about 5–10 s the first "
                 "time, then instant for everyone.")


def _predictor(name: str, protocol: str, root: str, mtime: float, runtime: str = "onnx") -> Predictor:
    """A cached Predictor; one that needs torch is loaded as a heavy job under a spinner that says so (importing
    torch and building a network is the biggest step a visitor can wait for)."""
    key = (name, protocol, root, mtime, runtime)
    if key in _LOADED or not needs_torch(*key):
        return _loaded_predictor(*key)  # loaded, or onnxruntime only: never waits for another visitor's job
    with one_heavy_job("The model loads in a moment: another visitor's request is running."), \
            st.spinner(TORCH_LOADING):
        found = _loaded_predictor(*key)
    _LOADED.add(key)
    return found


_LOADED: set[tuple] = set()  # torch predictors loaded once (st.cache_resource holds them)


def predictor(name: str, protocol: str = SHIPPED_PROTOCOL, runtime: str = "onnx") -> Predictor:
    """A cached, shared Predictor (``runtime``: "onnx" unless gradients are needed, see ``open_predictor``); raises
    ArtifactMissing / other errors (see ``try_predictor``)."""
    root, mtime = _key()
    return _predictor(name, protocol, root, mtime, runtime)


def try_predictor(name: str, protocol: str = SHIPPED_PROTOCOL,
                  runtime: str = "onnx") -> tuple[Predictor | None, str | None]:
    try:
        return predictor(name, protocol, runtime), None
    except Exception as e:  # missing or mismatched artifacts: a message, never a traceback
        log.warning("cannot load %s: %s", name, e)
        return None, load_error(name, e)


def default_classifier() -> tuple[Predictor | None, list[str]]:
    """The best available classifier (INT8 student first) and why better ones were skipped."""
    skipped = []
    for name in CLASSIFIER_PREFERENCE:
        if not common.has_weights(name):
            skipped.append(f"{catalog.title(name)}: not available ({catalog.produced_by(name)}).")
            continue
        p, err = try_predictor(name)
        if p is not None:
            return p, skipped
        skipped.append(err)
    return None, skipped


@st.cache_resource(max_entries=4)
def _thumbnails(protocol: str, root: str, mtime: float):
    return Thumbnails(protocol, root)


def thumbnails(protocol: str = SHIPPED_PROTOCOL):
    root, mtime = _key()
    return _thumbnails(protocol, root, mtime)


@st.cache_resource(max_entries=4)
def _reference_photos(root: str, mtime: float):
    return ReferencePhotos(root)


def reference_photos():
    """The shipped reference photos of the species (training images); ``.available`` False when absent."""
    root, mtime = _key()
    return _reference_photos(root, mtime)


@st.cache_resource(max_entries=2)
def _mistake_maps(root: str, mtime: float, pack_mtime: float):
    return MistakeMaps(root)


def mistake_maps() -> MistakeMaps:
    """The maps of the app's model's test mistakes (Confusions); ``.available`` False when not built. Keyed by
    the pack's own time too: it is not in the manifest, and a rebuilt pack must not wait for a restart."""
    root, mtime = _key()
    pack = Path(root) / MISTAKE_MAPS.format(protocol=SHIPPED_PROTOCOL)
    return _mistake_maps(root, mtime, pack.stat().st_mtime if pack.is_file() else 0.0)


@st.cache_data(max_entries=8, show_spinner=False)
def _species_table(name: str, protocol: str, root: str, mtime: float):
    return explore.species_table(name, protocol, root)


def species_table(name: str = catalog.PRODUCTION, protocol: str = SHIPPED_PROTOCOL):
    """(per-species table with the model's test accuracy, None); without saved probabilities (the species
    names only, why the accuracy is missing); without class names (None, why)."""
    root, mtime = _key()
    try:
        return _species_table(name, protocol, root, mtime), None
    except Exception as e:  # no saved probabilities: the page still lists the species
        why = load_error(name, e)
    try:
        classes = art.class_names(root)
    except art.ArtifactMissing as e:
        return None, str(e)
    return pd.DataFrame({"class id": range(len(classes)), "class": classes}), why
