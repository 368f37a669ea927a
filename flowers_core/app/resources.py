"""What the app loads once and shares: cached models (``st.cache_resource``), gallery packs and tables, and the
bound of one heavy job at a time in the whole server.

Torch is imported only when a torch model is asked for (Explain, Latency, Compare): Classify runs the INT8 student
on onnxruntime and starts without it. Models are shared by every visitor, read-only. Heavy work (an explanation, a
latency run, loading a torch model) runs one job at a time (``one_heavy_job``): a free host's memory fits one such
peak, not three; a visitor whose job waits is told so. Cache keys include the artifacts folder and the manifest's
mtime, so retraining or pointing ``FLOWERS_ARTIFACTS`` elsewhere loads fresh models."""
from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

import pandas as pd
import streamlit as st

from ..predictors import open_predictor
from ..results import common, explore
from ..serve.gallery import ReferencePhotos, Thumbnails
from ..serve.mistakes import MistakeMaps
from ..serve.predictor import Predictor
from ..serve.words import (
    load_error,
)
from ..shipped import catalog
from ..shipped import manifest as art
from ..shipped.paths import MISTAKE_MAPS
from ..shipped.splits import SHIPPED_PROTOCOL

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
        yield
    finally:
        _HEAVY.release()


# ---------------------------------------------------------------------------------------------
# Cached resources
# ---------------------------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading the model…", max_entries=16)
def _loaded_predictor(name: str, protocol: str, root: str, mtime: float) -> Predictor:
    return open_predictor(name, protocol, root)


def _predictor(name: str, protocol: str, root: str, mtime: float) -> Predictor:
    """A cached Predictor; a torch model not yet loaded is loaded as a heavy job (importing torch and building
    a network is the biggest step of a cold Explain or Compare)."""
    shipped = catalog.get(name)  # the catalogue, not the manifest: no file read on every page run
    if (shipped is not None and shipped.runtime == "onnx") or (name, protocol, root, mtime) in _LOADED:
        return _loaded_predictor(name, protocol, root, mtime)  # loaded: never waits for another visitor's job
    with one_heavy_job("The model loads in a moment: another visitor's request is running."):
        found = _loaded_predictor(name, protocol, root, mtime)
    _LOADED.add((name, protocol, root, mtime))
    return found


_LOADED: set[tuple] = set()  # torch predictors loaded once (st.cache_resource holds them)


def predictor(name: str, protocol: str = SHIPPED_PROTOCOL) -> Predictor:
    """A cached, shared Predictor; raises ArtifactMissing / other errors (see ``try_predictor``)."""
    root, mtime = _key()
    return _predictor(name, protocol, root, mtime)




def try_predictor(name: str, protocol: str = SHIPPED_PROTOCOL) -> tuple[Predictor | None, str | None]:
    try:
        return predictor(name, protocol), None
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
