"""The Streamlit side of ``flowers_core``: cached loaders, the photo picker and friendly errors.

The only ``flowers_core`` module that imports streamlit. Torch is imported only by the pages that
need it (Explain, Latency, Compare's torch models), inside the functions that serve them: Classify runs
the INT8 student on onnxruntime and starts without torch. Models are ``st.cache_resource`` (one
copy shared by every visitor, read-only: explanations never mutate or copy them, see ``explain``).
Heavy work (computing an explanation, a latency run, loading a torch model) runs one job at a time
in the whole server (``one_heavy_job``): a free host's memory fits one such peak, not three; a visitor
whose job waits is told so.
Cache keys include the artifacts folder and the manifest's mtime, so retraining or pointing
``FLOWERS_ARTIFACTS`` elsewhere loads fresh models.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import traceback
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from .. import artifacts as art
from .. import catalog, tables
from ..data import SHIPPED_PROTOCOL
from ..gallery import ReferencePhotos, Thumbnails, examples
from ..inference import (
    CANDIDATE_MIN_PROB,
    CANDIDATES_SHOWN,
    MAX_BYTES,
    ImageError,
    Predictor,
    load_image,
    size_limit_text,
    too_large_message,
)
from ..localise import draw_looked
from ..runtime import OnnxSession
from . import deep_link
from .texts import (
    ADD_PHOTO_LABEL,
    CRASH_MARKER,
    DIFFERENT_FLOWERS_HEADLINE,
    NO_ARTICLE_LABELS,
    NOT_A_FLOWER_HEADLINE,
    NOT_A_FLOWER_SEVERAL_HEADLINE,
    NOT_SURE_HEADLINE,
    NOT_SURE_NONE_HEADLINE,
    NOT_SURE_UNFAMILIAR_HEADLINE,
    UPLOAD_LABEL,
    display_name,
    taxonomy,
    where_looked_caption,
)

log = logging.getLogger("flowers_app")

# The app's default classifier and what it falls back to: the highest level first (the INT8 student).
CLASSIFIER_PREFERENCE = tuple(reversed(catalog.NAMES))
MAX_PHOTOS = 3  # photos of one plant that Classify combines into one answer


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
    return Predictor(name, protocol, root)


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


def load_error(name: str, e: Exception) -> str:
    if isinstance(e, art.ArtifactMissing):
        return str(e)
    if isinstance(e, ImportError):
        return f"{tables.pretty(name)} needs a module that is not available yet ({e})."
    return f"{tables.pretty(name)} could not be loaded ({type(e).__name__}: {e})."


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
        if not tables.has_weights(name):
            skipped.append(f"{tables.pretty(name)}: not available ({catalog.produced_by(name)}).")
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


@st.cache_data(max_entries=8, show_spinner=False)
def _species_table(name: str, protocol: str, root: str, mtime: float):
    return tables.species_table(name, protocol, root)


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


def explanation(model, photo: bytes, method: str, target: int | None, num_samples: int = 150, progress=None):
    """One explanation of ``model``'s view of ``photo``, computed now (``explain_cached`` keeps them)."""
    from .. import explain  # torch: loaded by the Explain page only (Classify starts without it)

    img = load_image(photo)
    if method == "Attention":
        return explain.attention_map(model, img)
    if method == "LIME":
        return explain.lime(model, img, target, num_samples=num_samples, progress=progress)
    return explain.gradcam(model, img, method, target)


# Explanations kept per (photo, model, method, target, samples): moving the opacity slider or coming back costs
# nothing. A plain LRU rather than st.cache_data, so that the wait note and LIME's progress bar shown while one is
# computed are never stored and replayed with it. ~0.4 MB each.
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
                              text=f"LIME: classified {job.done} of {job.total} perturbed photos")
            else:
                note.info("Computing the explanation…", icon="⏳")
    finally:
        note.empty()


# ---------------------------------------------------------------------------------------------
# The photo picker (shared by Classify, Compare and Explain through st.session_state)
# ---------------------------------------------------------------------------------------------
# One question at a time: ``st.session_state["photos"]`` holds the photos of the visitor's current question
# (1 to MAX_PHOTOS of one plant; the first is ``st.session_state["photo"]``). A new upload, camera shot or
# example replaces the question; a photo joins it only through ``add_photo_box`` (the visitor says it is the
# same plant); removing the upload ends the question. The widgets act through their ``on_change``
# callbacks, so a widget emptied by a page change (Streamlit forgets a widget that was not drawn) is not
# mistaken for the visitor removing the photo.
@dataclass
class Photo:
    data: bytes  # empty when the file is over the size limit (its bytes are never kept)
    name: str
    source: str  # upload | camera | example
    page: str = ""  # the picker it came from
    size: int = -1  # bytes of the file as uploaded (-1: len(data))

    def __post_init__(self):
        if self.size < 0:
            self.size = len(self.data)

    @property
    def digest(self) -> str:
        return hashlib.sha1(self.data or self.name.encode()).hexdigest()[:12]


MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")
# what Markdown's autolinker turns into a link even when escaped: a scheme's "://" and "www."
AUTOLINK_STARTS = re.compile(r"(?<=:)(?=//)|(?<=www)(?=\\\.)", re.IGNORECASE)


def plain(text: str) -> str:
    """``text`` escaped so that Streamlit's Markdown shows it literally (a visitor's file name may hold
    ``**bold**``, ``[a](link)`` or a bare ``https://…``, which must not turn into formatting or a live link):
    Markdown's specials are backslash-escaped and an invisible word joiner (U+2060) sits after a scheme's
    colon and after "www", where the autolinker would otherwise start a link."""
    return AUTOLINK_STARTS.sub("\u2060", MARKDOWN_SPECIALS.sub(r"\\\1", text))


def _photo_from(file, source: str, page: str) -> Photo:
    """A Photo from an UploadedFile; a file over the size limit keeps its name and size, not its bytes."""
    size = getattr(file, "size", None)
    size = len(file.getvalue()) if size is None else int(size)
    return Photo(b"" if size > MAX_BYTES else file.getvalue(), file.name, source, page, size)


def _set_photos(photos: list[Photo]) -> None:
    """Make ``photos`` the current question (none: no question)."""
    st.session_state["photo"] = photos[0] if photos else None
    st.session_state["photos"] = list(photos)
    st.session_state.pop("photo_bad", None)


def _set_photo(data: bytes, name: str, source: str, page: str = "") -> None:
    _set_photos([Photo(data, name, source, page)])


def _new_question(page: str) -> None:
    """A fresh uploader (and 'add another photo' box) on ``page``: the old file no longer shows in it."""
    st.session_state[f"{page}_gen"] = st.session_state.get(f"{page}_gen", 0) + 1


def _on_upload(widget_key: str, source: str, page: str) -> None:
    """The visitor chose a file (a new question) or removed it (no question, when it was this box's)."""
    file = st.session_state.get(widget_key)
    if file is not None:
        _set_photos([_photo_from(file, source, page)])
        if source == "camera":  # one photo source shown: the uploader forgets an earlier file; the answer in view
            _new_question(page)
            st.session_state["scroll_to_answer"] = True
        return
    photo = current_photo()
    if photo is not None and photo.page == page and photo.source == source:
        _set_photos([])


def _on_example(path: str, page: str) -> None:
    _set_photo(Path(path).read_bytes(), Path(path).name, "example", page)
    _new_question(page)
    st.session_state["scroll_to_answer"] = True  # the button was far below, where the answer is not


def scroll_to_answer() -> None:
    """Bring the answer's heading (anchor "answer") into view after an example was chosen further down the page
    (a phone would otherwise stay scrolled to the examples). A zero-height component whose script, same-origin,
    scrolls the app's page; it runs once per choice (the nonce makes each one a new element)."""
    if not st.session_state.pop("scroll_to_answer", False):
        return
    from streamlit.components.v1 import html  # a component only here: the other pages never need it

    nonce = st.session_state.get("scroll_nonce", 0) + 1
    st.session_state["scroll_nonce"] = nonce
    html(f"""<script>/* {nonce} */
      const target = () => window.parent.document.getElementById("answer");
      let tries = 0;
      const go = () => {{ const h = target(); if (h) h.scrollIntoView({{block: "start"}}); else if (tries++ < 40)
        setTimeout(go, 50); }};
      go();</script>""", height=0)


def _on_example_choice(widget_key: str, page: str) -> None:
    items, choice = examples(), st.session_state.get(widget_key)
    labels = [display_name(it["label"]) for it in items]
    if choice in labels:
        _on_example(items[labels.index(choice)]["file"], page)


def current_photo() -> Photo | None:
    return st.session_state.get("photo")


def current_photos() -> list[Photo]:
    """The photos of the visitor's current question (1 to MAX_PHOTOS of one plant; the first is
    ``current_photo``); none before a photo is chosen."""
    photo = current_photo()
    photos = st.session_state.get("photos") or []
    if photo is None:
        return []
    return photos if photos and photos[0] is photo else [photo]


def size_help() -> str:
    return f"JPEG, PNG, WebP or HEIC (iPhone) photos, up to {size_limit_text()} each."


def hide_transport_limit() -> None:
    """Hide the uploader's "Limit N MB per file" line: that is Streamlit's transport cap (set above the app's
    limit in .streamlit/config.toml so that a larger file reaches the app's own message), not the limit."""
    st.html("<style>[data-testid='stFileUploaderDropzoneInstructions'] {display: none;}</style>")


def photo_picker(key: str, gallery: str | None = "grid", camera: bool = True) -> Photo | None:
    """Upload / camera / example photos; returns the visitor's current photo (kept across pages). Each
    choice is a new question (``current_photos``); ``gallery``: "grid" (example photos with buttons),
    "select" (a drop-down), or None (the page draws ``example_gallery`` itself, where it fits)."""
    gen = st.session_state.get(f"{key}_gen", 0)
    # no `type=` filter: Streamlit refuses a type outside its list with a message seen only on hover, while
    # `inference.load_image` opens what Pillow can (.jfif and .avif included) and says plainly what it cannot
    upload_key = f"{key}_upload_{gen}"
    hide_transport_limit()
    st.file_uploader(UPLOAD_LABEL, key=upload_key, help=size_help(), on_change=_on_upload,
                     args=(upload_key, "upload", key))
    st.caption(size_help())  # seen on a phone too (a help tooltip needs a hover)
    if camera and st.toggle("Take a photo with the camera", key=f"{key}_camera_on"):
        shot_key = f"{key}_camera_{gen}"
        st.camera_input("Take a photo", key=shot_key, on_change=_on_upload, args=(shot_key, "camera", key))
    if gallery:
        example_gallery(key, gallery)
    photo = current_photo()
    if photo is not None and photo.page != key and st.session_state.get("photo_bad") == photo.digest:
        return None  # an unreadable upload from another page: its message was shown there
    if photo is not None and photo.page != key:
        st.caption(f"Using your photo **{plain(photo.name)}** from before; upload or pick another to change it.")
    return photo


EXAMPLE_PX = 96  # an example photo's width in the compact gallery (three or four to a phone's row)


def example_gallery(key: str, layout: str = "grid", columns: int = 4) -> None:
    """The shipped example photos: a grid of photos with "Try it" buttons, a drop-down ("select"), or "compact":
    small photos side by side, each with its name as the button, that wrap on a phone instead of stacking (a
    short landing page, the answer's place in view)."""
    items = examples()
    if not items:
        st.caption("Example photos are not shipped in this copy (`python -m train.gallery --build`).")
        return
    if layout == "compact":
        with st.container(horizontal=True, gap="small"):
            for i, item in enumerate(items):
                with st.container(width=EXAMPLE_PX, gap=None):
                    st.image(item["file"], width=EXAMPLE_PX)
                    st.button(display_name(item["label"]), key=f"{key}_ex_{i}", width="stretch",
                              on_click=_on_example, args=(item["file"], key),
                              help=f"Classify this photo of {with_article(item['label'])}")
        return
    if layout == "select":
        select_key = f"{key}_example"
        st.selectbox("…or pick an example photo", [display_name(it["label"]) for it in items], index=None,
                     placeholder="Choose an example", key=select_key, on_change=_on_example_choice,
                     args=(select_key, key))
        return
    cols = st.columns(min(len(items), columns))
    for i, item in enumerate(items):
        with cols[i % len(cols)]:
            st.image(item["file"], caption=display_name(item["label"]), width="stretch")
            st.button("Try it", key=f"{key}_ex_{i}", width="stretch", on_click=_on_example, args=(item["file"], key),
                      help=f"Classify this photo of {with_article(item['label'])}")


def _on_add(widget_key: str, page: str) -> None:
    """A photo added as the same plant joins the question only when it can be read: an unreadable file gets its
    message under the box and is not counted among the plant's photos."""
    file = st.session_state.get(widget_key)
    photos = current_photos()
    if file is not None and photos and len(photos) < MAX_PHOTOS:
        photo = _photo_from(file, "upload", page)
        try:
            if photo.size > MAX_BYTES:
                raise ImageError(too_large_message(photo.size))
            load_image(photo.data)
        except ImageError as e:
            st.session_state[f"{page}_add_refused"] = (photo.name, str(e))
            st.session_state[f"{page}_add_gen"] = st.session_state.get(f"{page}_add_gen", 0) + 1  # an empty box
            return
        _set_photos(photos + [photo])


def _on_remove(index: int, page: str) -> None:
    photos = current_photos()
    if 0 <= index < len(photos):
        _set_photos(photos[:index] + photos[index + 1:])
        if index == 0:  # the uploader shows the first photo's file: a fresh one
            _new_question(page)


def add_photo_box(key: str) -> None:
    """'Add another photo of this same plant': the only way a photo joins the current question (at most
    MAX_PHOTOS), so photos chosen one after another are never silently combined."""
    photos = current_photos()
    if not photos or len(photos) >= MAX_PHOTOS:
        if photos:
            st.caption(f"That's {MAX_PHOTOS} photos of this plant, the most I combine; remove one to add another.")
        return
    gen = st.session_state.get(f"{key}_gen", 0)
    refused = st.session_state.get(f"{key}_add_gen", 0)
    widget_key = f"{key}_more_{gen}_{len(photos)}_{refused}"  # a fresh, empty box after each photo added or refused
    if bad := st.session_state.pop(f"{key}_add_refused", None):
        st.error(f"**We couldn't use this file ({plain(bad[0])}), so it was not added.** {plain(bad[1])}")
    st.file_uploader(f"{ADD_PHOTO_LABEL} (a side view, the leaves) for a surer answer — {len(photos)} of "
                     f"{MAX_PHOTOS} so far", key=widget_key, help=size_help(),
                     on_change=_on_add, args=(widget_key, key))


def remove_button(index: int, key: str) -> None:
    st.button("Remove this photo", key=f"{key}_remove_{index}", on_click=_on_remove, args=(index, key))


def example_truth(photo: Photo | None) -> str | None:
    """The true species of a shipped example photo (None for the visitor's own photos)."""
    if photo is None or photo.source != "example":
        return None
    for item in examples():
        if Path(item["file"]).name == photo.name:
            return item["label"]
    return None


def photo_image(photo: Photo | None, prompt: str) -> tuple[object, list[str]]:
    """The visitor's photo as RGB, with notes on what was done to it. With no photo yet ``prompt``
    is shown, and an unreadable one gets a clear message; either way the page stops there."""
    _, img, notes = photo_images([] if photo is None else [photo], prompt)[0]
    return img, notes


def photo_images(photos: list[Photo], prompt: str | None, remove_key: str | None = None) -> list[tuple[Photo, object, list[str]]]:
    """Several photos of one plant as (photo, RGB image, notes); an unreadable one gets its message and
    is left out (with ``remove_key``, the picker's key, and other photos beside it: a button to remove it).
    With no photo, or none readable, the page stops (like ``photo_image``); ``prompt`` (if any) is shown when
    there is no photo."""
    if not photos:
        if prompt:
            st.info(prompt)
        st.stop()
    good = []
    for photo in photos:
        notes: list[str] = []
        try:
            if photo.size > MAX_BYTES:
                raise ImageError(too_large_message(photo.size))
            good.append((photo, load_image(photo.data, notes), notes))
        except ImageError as e:  # the message may quote the file's own bytes (a decoder's complaint): escaped
            if photo is photos[0]:
                st.session_state["photo_bad"] = photo.digest
            st.error(f"**We couldn't use this file ({plain(photo.name)}).** {plain(str(e))}")
            if remove_key and len(photos) > 1:
                remove_button(photos.index(photo), remove_key)
    if not good:
        st.stop()
    return good


def show_notes(notes: list[str]) -> None:
    """What was done to the photo (alpha filled, CMYK, first frame, small…), the same on every page."""
    for note in notes:
        st.caption(f"ℹ️ {note}")


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------
def missing(message: str, what: str = "This part of the page") -> None:
    st.info(f"**{what} is not available yet.** {message}", icon="ℹ️")


def run_guarded(page) -> None:
    """Run a page; an unexpected error becomes a short message, never a traceback."""
    # on a touch screen Plotly's toolbar (shown on a tap) covers the charts' titles: hidden there, kept for a mouse
    st.html("<style>@media (hover: none) { .modebar-container { display: none !important; } }</style>")
    try:
        page.run()
    except Exception as e:  # st.stop / st.rerun are BaseException and pass through
        log.error("page crashed:\n%s", traceback.format_exc())
        st.error(f"{CRASH_MARKER} Please try another photo or reload. ({type(e).__name__}: {e})")


# ---------------------------------------------------------------------------------------------
# Charts shared by several pages
# ---------------------------------------------------------------------------------------------
def top5_chart(top5: list[tuple[str, float]], title: str | None = None, height: int = 260, narrow: bool = False):
    """The top guesses as horizontal bars. ``narrow`` (a chart in a narrow column): the names are written on the
    bars, left-aligned, instead of as axis labels, which a narrow chart cuts ("ck-eyed Susan")."""
    labels = [display_name(label) for label, _ in top5][::-1]
    values = [p for _, p in top5][::-1]
    text = [f"{name} · {v:.0%}" for name, v in zip(labels, values)] if narrow else [f"{v:.0%}" for v in values]
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h", text=text, marker_color="#b5338a",
                           textposition="outside" if narrow else "auto", cliponaxis=False,
                           hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    if narrow:  # the text after each bar's start: a full bar gets its text inside, in white
        fig.update_traces(textposition=["inside" if v > 0.5 else "outside" for v in values],
                          insidetextanchor="start", textfont_size=12)
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      xaxis=dict(range=[0, 1], tickformat=".0%", title=None))
    fig.update_yaxes(automargin=True, showticklabels=not narrow)
    return fig


PHONE_MAX_PX = 640  # Streamlit stacks columns below this width: a phone


def scroll_sideways_on_phone(key: str, min_px: int) -> None:
    """On a phone, draw the element with ``key`` at least ``min_px`` wide in a strip that scrolls sideways: a
    heatmap or table squeezed into a phone's width would leave its data a few pixels wide behind its labels."""
    st.html(f"<style>@media (max-width: {PHONE_MAX_PX}px) {{ .st-key-{key} {{ overflow-x: auto; }} "
            f".st-key-{key} > div {{ min-width: {min_px}px; }} }}</style>")


# ---------------------------------------------------------------------------------------------
# The verdict in plain words (Classify, and wherever a visitor sees a prediction)
# ---------------------------------------------------------------------------------------------
NOT_A_FLOWER_HINT = ("I need to see a flower in bloom: a seed head (like a dandelion clock), a bud or leaves alone "
                     "are not enough. Try a photo of one open flower, close up, filling most of the frame, in focus "
                     "and in daylight; the app knows 102 common garden and wild flowers.")


def confidence_words(prob: float) -> str:
    return "almost certainly" if prob >= 0.9 else "probably" if prob >= 0.6 else "possibly"


def with_article(name: str, start: bool = False) -> str:
    """"a sunflower", "an English marigold" (mid-sentence; ``start``: "A sunflower"); a plural or mass name takes
    none ("Prince of Wales feathers", "watercress")."""
    if name in NO_ARTICLE_LABELS:
        return display_name(name, start=start)
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"{article.capitalize() if start else article} {display_name(name, start=False)}"


def _names(labelled: list[tuple[str, float]], scores: bool = True) -> str:
    """"X (40%)", "X (40%) or Y (30%)", "X (40%), Y (30%) or Z (10%)"; without ``scores``, the names alone."""
    parts = [with_article(label) + (f" ({p:.0%})" if scores else "") for label, p in labelled]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def verdict_text(pred, several: bool = False) -> tuple[str, str]:
    """(headline, one line of explanation) of a Prediction's verdict, for a visitor; ``several``: the
    combined answer of several photos ("these photos"). The percentages named are the ones the page shows."""
    this = "these photos" if several else "this photo"
    your = "your photos look" if several else "your photo looks"
    if pred.verdict == "not_a_flower":
        return (NOT_A_FLOWER_SEVERAL_HEADLINE if several else NOT_A_FLOWER_HEADLINE), NOT_A_FLOWER_HINT
    if pred.verdict == "not_sure":
        if pred.unfamiliar and pred.leading:  # one species leads, but the photo is unlike every species' photos:
            # its score cannot vouch for it, so the headline hedges and names no species, and no score is given
            return NOT_SURE_UNFAMILIAR_HEADLINE.replace("this photo", this), (
                f"The closest of the 102 species I know is {with_article(pred.label)}, but {your} unlike the photos "
                "I learned from, so I can't vouch for it: it may be a flower I don't know, or an unusual view of one "
                "I do. Compare with the photos below.")
        candidates = pred.candidates()
        if not candidates:  # every species under CANDIDATE_MIN_PROB: nothing worth naming as a candidate
            return NOT_SURE_NONE_HEADLINE, (
                f"None of the 102 species I know gets more than {CANDIDATE_MIN_PROB:.0%} (the best, "
                f"{with_article(pred.label)}, gets {pred.prob:.0%}): it may be a flower I don't know, or the flower "
                "is hard to see. A closer, sharper photo of a single flower helps.")
        names = _names(candidates)
        if pred.unfamiliar:  # the novelty check: unlike every species, whatever the softmax says (no scores)
            return NOT_SURE_UNFAMILIAR_HEADLINE.replace("this photo", this), (
                f"The closest species I know: {_names(candidates, scores=False)}, but {your} unlike the photos I "
                "learned from: it may be a flower I "
                "don't know, or an unusual view of one I do. A closer, sharper photo of a single flower helps.")
        return NOT_SURE_HEADLINE, (
            f"It could be {names}: {this} {'fit' if several else 'fits'} several species, or the flower is hard "
            "to see. A closer, sharper photo of a single flower helps.")
    return f"This is {with_article(pred.label)}", (
        f"It is {confidence_words(pred.prob)} {with_article(pred.label)} ({pred.prob:.0%} confident).")


def confidence_metric(pred) -> tuple[str, str, str] | None:
    """(label, value, help) of the number beside the verdict, saying what the verdict says: a species answer's
    confidence; nothing for a hedged answer ("not sure": a large score would contradict its words) or "not a
    flower"."""
    if pred.verdict == "species":
        return "Confidence", f"{pred.prob:.0%}", "How sure the model is among the 102 species it knows."
    return None  # a hedged answer shows no large score: its words say why it is hedged


def agreement(student, teacher) -> tuple[str, str]:
    """("agree" | "disagree" | "unnamed", a sentence) comparing two models' answers to one photo: the same best
    guess is an agreement only when both would name it."""
    guess = display_name(student.label)
    if student.class_id != teacher.class_id:
        return "disagree", f"The student and the ensemble disagree: **{guess}** vs **{display_name(teacher.label)}**."
    named = [p.verdict == "species" for p in (student, teacher)]
    if all(named):
        return "agree", f"The student and the ensemble agree: both say **{guess}**."
    return "unnamed", (f"Both models' best guess is **{guess}**, but {'only one' if any(named) else 'neither'} of them "
                       "would name it (each model's answer is under its name above).")


def show_verdict(pred, several: bool = False) -> None:
    headline, detail = verdict_text(pred, several)
    st.subheader(headline, anchor="answer")
    {"species": st.success, "not_sure": st.info, "not_a_flower": st.warning}[pred.verdict](detail)
    if pred.verdict == "species":  # a hedged answer's best guess is no answer: no scientific name as if it were
        taxonomy_line(pred.label)


def own_answer_short(pred) -> str:
    """A photo's own answer in a few words, for the lists of photos that disagree."""
    if pred.verdict == "not_a_flower":
        return "not a flower"
    if pred.verdict == "species":
        return with_article(pred.label)
    return f"maybe {with_article(pred.label)} (not sure)"


def own_answer_line(pred) -> str | None:
    """The line under a photo's own headline in the multi-photo view: a species answer's confidence; a hedged
    answer's closest species without a score (its headline hedges); nothing for "not a flower"."""
    if pred.verdict == "species":
        return f"{pred.prob:.0%} confident"
    if pred.verdict == "not_sure":
        return f"Closest: {display_name(pred.label)} (not sure)"
    return None


def _photo_numbers(indices) -> str:
    numbers = [str(i + 1) for i in indices]
    return ("photo " if len(numbers) == 1 else "photos ") + (", ".join(numbers[:-1]) + " and " + numbers[-1]
                                                           if len(numbers) > 1 else numbers[0])


def show_disagreement(preds, agreement, loaded) -> None:
    """Photos sent as one plant that do not all agree (``inference.agreeing_photos``): say so, name the photos that
    disagree and what each says, say what to do, and combine nothing (a different flower is never outvoted)."""
    st.subheader(DIFFERENT_FLOWERS_HEADLINE, anchor="answer")
    if agreement.joined:  # some agree: the others are the odd ones out
        group = _photo_numbers(agreement.joined)
        odd = "; ".join(f"{_photo_numbers([i])} ({plain(loaded[i][0].name)}) says {own_answer_short(preds[i])}"
                        for i in agreement.apart)
        which = _photo_numbers(agreement.apart)
        st.warning(f"{group.capitalize()} agree (on their own: {own_answer_short(preds[agreement.joined[0]])}), but "
                   f"{odd}, so I won't give one answer from all of them. If {which} shows another plant, remove it "
                   "and I'll answer from the others; if it is the same plant, try a clearer photo of its flower.")
        return
    said = "; ".join(f"photo {i} says {own_answer_short(p)}" for i, p in enumerate(preds, start=1))
    st.warning(f"On their own, {said}: their answers do not agree, so I won't combine them into one answer. If "
               "they show one plant, try clearer photos of its flower; if not, remove the ones that show another "
               "plant, or start again with one photo.")


def several_caption(agreement, n: int) -> str:
    """The caption under a multi-photo answer, saying what the answer is made of (never contradicting it)."""
    if agreement.apart:
        return f"Your {n} photos: each photo's own answer is below."
    return f"Your {n} photos of one plant: one answer from all of them; each photo's own answer is below."


def answers_once(clf, loaded) -> list:
    """The predictions of the loaded photos, each set of photos answered (and timed) once per session: a rerun
    of the page (a click elsewhere) shows the same answer and the same time."""
    key = (clf.name, id(clf), tuple(photo.digest for photo, _, _ in loaded))
    kept = st.session_state.setdefault("answers_kept", {})
    if key not in kept:
        kept.clear()  # one question at a time: the previous answers are not needed again
        kept[key] = clf.predict_many([img for _, img, _ in loaded])
    return kept[key]


def taxonomy_line(label: str) -> None:
    """The species' scientific name and family (``texts.taxonomy``), when the table has it."""
    row = taxonomy().get(label)
    if row:
        st.caption(taxonomy_text(row))


def taxonomy_text(row: dict) -> str:
    """"*Helianthus annuus* · family Asteraceae"; a class that is a genus, a garden variety or a whole family
    says so (the app cannot tell their species apart)."""
    name, rank = row["scientific_name"], row["rank"]
    if rank == "cultivar":
        base, _, variety = name.partition(" '")
        text = f"*{base}* '{variety} (a garden variety)"
    elif rank == "genus":
        text = f"*{name}*, a genus (its species are not told apart)"
    elif rank == "family":
        text = "several genera"
    else:
        text = f"*{name}*"
    return f"{text} · family {row['family']}"


WHERE_LOOKED_PX = 240  # the "where I looked" picture's default width (Explain; Classify passes its own)


def show_where_looked(img, pred, width: int = WHERE_LOOKED_PX, caption: str | None = None) -> bool:
    """The photo with the part the app classified closely drawn on it (the localisation stage's crop), so a
    visitor sees when it looked at the wrong thing; ``caption`` goes before the explanation. Shows nothing and
    returns False when the stage did not run (or the photo is no flower)."""
    place = getattr(pred, "localisation", None)
    if place is None or pred.verdict == "not_a_flower":
        return False
    text = where_looked_caption(len(place.blooms), place.used)
    st.image(draw_looked(img, place), caption=f"{caption} · {text}" if caption else text, width=width)
    return True


def show_reference(class_id: int, refs, width: int = 96) -> None:
    photos = refs.of_class(class_id)
    if photos:
        st.image(photos, width=width)


def show_candidates(pred, classes: list[str], refs) -> None:
    """Under the verdict, something to check it against: the species' reference photos ("species"), or
    its candidates (``Prediction.candidates``) each with theirs ("not sure"); nothing for "not a flower"."""
    if pred.verdict == "not_a_flower":
        return
    if not refs.available:
        st.caption(f"ℹ️ {refs.missing_message}")
        return
    if pred.verdict == "species":
        st.markdown(f"**What {with_article(pred.label)} looks like** (photos from the training set):")
        show_reference(pred.class_id, refs)
        return
    ids = pred.candidate_ids()
    if not ids:
        return
    st.markdown(f"**Compare your photo with {'this species' if len(ids) == 1 else 'these'}**: it may be "
                f"{'it' if len(ids) == 1 else 'one of them'}, or none (photos from the training set):")
    for rank, class_id in enumerate(ids, start=1):
        # an unfamiliar photo's scores cannot vouch for a candidate (the novelty check), so they are not shown
        score = "" if pred.unfamiliar else f" — {pred.probs[class_id]:.0%}"
        st.markdown(f"{rank}. **{display_name(classes[class_id])}**{score}")
        show_reference(class_id, refs)
    if len(ids) < min(CANDIDATES_SHOWN, len(pred.top5)):
        st.caption(f"Every other species scores under {CANDIDATE_MIN_PROB:.0%}, too little to be worth comparing.")


def species_card(row, refs) -> None:
    """One species on the Species page: name, reference photos, the model's test accuracy on it."""
    st.markdown(f"**{display_name(row['class'])}** · no. {int(row['class id']) + 1}")
    if taxon := taxonomy().get(row["class"]):
        st.caption(taxonomy_text(taxon) + (f" — {taxon['note']}" if taxon["note"] else ""))
    show_reference(int(row["class id"]), refs, width=80)
    if "accuracy" in row and row.get("test images", 0):
        st.caption(f"Test accuracy {row['accuracy']:.0%} ({int(row['correct'])} of {int(row['test images'])} "
                   "test photos)" + (f"; most often mistaken for {display_name(row['most often mistaken for'])}"
                                     if row.get("most often mistaken for") else ""))


SPECIES_ORDERS = {"name": ("class", True), "test accuracy (lowest first)": ("accuracy", True),
                  "number": ("class id", True)}


def species_rows(table, query: str, order: str):
    names = {label: f"{row.get('scientific_name', '')} {row.get('family', '')}" for label, row in taxonomy().items()}
    rows = tables.search_species(table, query, also=names)
    column, ascending = SPECIES_ORDERS[order]
    if column not in rows.columns:
        column = "class"
    return rows.sort_values([column, "class"], ascending=[ascending, True], kind="stable")


# ---------------------------------------------------------------------------------------------
# Live latency (the visitor's own measurement)
# ---------------------------------------------------------------------------------------------
@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def _onnx_session(name: str, threads: int, root: str, mtime: float) -> OnnxSession:
    """An ONNX model's session with its own intra-op thread count (a session fixes it when it is made): what the
    app runs, and what the latency benchmark times."""
    return OnnxSession(art.model_file(art.model_entry(name, SHIPPED_PROTOCOL, root), root), threads)


def _timed_model(name: str, threads: int, root: str, mtime: float):
    """What the live measurement times: torch models are the shared predictor's (``measure`` sets torch's
    thread count per call); ONNX models get a session with ``threads``."""
    if art.model_entry(name, SHIPPED_PROTOCOL, root).format == "onnx":
        return _onnx_session(name, threads, root, mtime)
    return _predictor(name, SHIPPED_PROTOCOL, root, mtime).model


def live_latency(names: list[str], threads: int, batch: int, iters: int, warmup: int = 3,
                 progress=None) -> list[dict]:
    """Time each model on a random batch here and now; ``progress(done, total)`` over all models."""
    # torch (and timing, which uses it): imported by the Latency page only, so Classify starts without them
    import torch

    from ..timing import measure

    root, mtime = _key()
    rows, total = [], len(names) * iters
    with one_heavy_job("Your measurement starts in a moment: another visitor's request is running."):
        for k, name in enumerate(names):
            try:
                entry = art.model_entry(name, SHIPPED_PROTOCOL, root)
                fn = _timed_model(name, threads, root, mtime)
            except Exception as e:
                rows.append({"model": tables.pretty(name), "error": load_error(name, e)})
                continue
            size = entry.preprocess["input_size"]
            x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
            cb = (lambda i, n, k=k: progress(k * iters + i, total)) if progress else None
            r = measure(fn, x, iters=iters, warmup=warmup, threads=threads, progress=cb)
            rows.append({"model": tables.pretty(name), "precision": "INT8" if catalog.get(name).runtime == "onnx" else "fp32",
                         "threads": threads, "batch": batch, "p50_ms": r["p50_ms"], "p95_ms": r["p95_ms"],
                         "mean_ms": r["mean_ms"], "per_image_ms": r["p50_ms"] / batch, "iters": iters})
    return rows


# ---------------------------------------------------------------------------------------------
# Deep links on a cold server (``deep_link``; the library's package hands them over before its first import)
# ---------------------------------------------------------------------------------------------
deep_link.hand_over_to_app()
