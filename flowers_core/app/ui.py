"""The Streamlit side of ``flowers_core``: cached loaders, the photo picker and friendly errors.

The only ``flowers_core`` module that imports streamlit. Torch is imported only by the pages that
need it (Explain, Latency, Compare's torch models), inside the functions that serve them: Classify runs
the INT8 student on onnxruntime and starts without torch. Models are ``st.cache_resource`` (one
copy shared by every visitor, read-only: explanations work on private copies, see ``explain``).
Cache keys include the artifacts folder and the manifest's mtime, so retraining or pointing
``FLOWERS_ARTIFACTS`` elsewhere loads fresh models.
"""
from __future__ import annotations

import hashlib
import logging
import re
import traceback
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from .. import artifacts as art
from .. import catalog
from ..data import SHIPPED_PROTOCOL
from ..gallery import ReferencePhotos, Thumbnails, examples
from ..inference import MAX_MB, ImageError, Predictor, load_image
from ..localise import draw_looked
from ..runtime import OnnxSession
from . import reports
from .texts import (
    CRASH_MARKER,
    NOT_A_FLOWER_HEADLINE,
    NOT_SURE_HEADLINE,
    NOT_SURE_UNFAMILIAR_HEADLINE,
    UPLOAD_LABEL,
    display_name,
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
# Cached resources
# ---------------------------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading the model…", max_entries=16)
def _predictor(name: str, protocol: str, root: str, mtime: float) -> Predictor:
    return Predictor(name, protocol, root)


def predictor(name: str, protocol: str = SHIPPED_PROTOCOL) -> Predictor:
    """A cached, shared Predictor; raises ArtifactMissing / other errors (see ``try_predictor``)."""
    root, mtime = _key()
    return _predictor(name, protocol, root, mtime)


def load_error(name: str, e: Exception) -> str:
    if isinstance(e, art.ArtifactMissing):
        return str(e)
    if isinstance(e, ImportError):
        return f"{reports.pretty(name)} needs a module that is not available yet ({e})."
    return f"{reports.pretty(name)} could not be loaded ({type(e).__name__}: {e})."


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
        if not reports.has_weights(name):
            skipped.append(f"{reports.pretty(name)}: not available ({catalog.produced_by(name)}).")
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
    return reports.species_table(name, protocol, root)


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


@st.cache_data(max_entries=64, show_spinner="Computing the explanation…")
def explanation(photo: bytes, name: str, method: str, target: int | None, root: str, mtime: float,
                num_samples: int = 150):
    """Cached per (photo, model, method, target): moving the opacity slider costs nothing."""
    from .. import explain  # torch: loaded by the Explain page only (Classify starts without it)

    model = _predictor(name, SHIPPED_PROTOCOL, root, mtime).model
    img = load_image(photo)
    if method == "Attention":
        return explain.attention_map(model, img)
    if method == "LIME":
        return explain.lime(model, img, target, num_samples=num_samples)
    return explain.gradcam(model, img, method, target)


def explain_cached(photo: bytes, name: str, method: str, target: int | None, num_samples: int = 150):
    root, mtime = _key()
    return explanation(photo, name, method, target, root, mtime, num_samples)


# ---------------------------------------------------------------------------------------------
# The photo picker (shared by Classify, Compare and Explain through st.session_state)
# ---------------------------------------------------------------------------------------------
@dataclass
class Photo:
    data: bytes
    name: str
    source: str  # upload | camera | example
    page: str = ""  # the picker it came from

    @property
    def digest(self) -> str:
        return hashlib.sha1(self.data).hexdigest()[:12]


MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def plain(text: str) -> str:
    """``text`` escaped so that Streamlit's Markdown shows it literally (a visitor's file name may hold
    ``**bold**`` or ``[a](link)``, which must not turn into formatting or a live link)."""
    return MARKDOWN_SPECIALS.sub(r"\\\1", text)


def _set_photo(data: bytes, name: str, source: str, page: str = "") -> None:
    st.session_state["photo"] = Photo(data, name, source, page)
    st.session_state["photos"] = [st.session_state["photo"]]
    st.session_state["photos_dropped"] = 0


def current_photo() -> Photo | None:
    return st.session_state.get("photo")


def current_photos() -> list[Photo]:
    """The visitor's photos of one plant (1 to MAX_PHOTOS; the first is ``current_photo``)."""
    photo = current_photo()
    photos = st.session_state.get("photos") or []
    if photo is None:
        return []
    return photos if photos and photos[0] is photo else [photo]


def _take_new(widget_value, seen_key: str, source: str, page: str, limit: int = 1) -> None:
    """Adopt an upload/camera shot (or up to ``limit`` uploads) only when new, so a later example click wins."""
    files = widget_value if isinstance(widget_value, list) else [] if widget_value is None else [widget_value]
    if not files:
        st.session_state.pop(seen_key, None)
        return
    ident = tuple(getattr(f, "file_id", None) or f"{f.name}:{f.size}" for f in files)
    if st.session_state.get(seen_key) != ident:
        st.session_state[seen_key] = ident
        _set_photo(files[0].getvalue(), files[0].name, source, page)
        st.session_state["photos"] = [st.session_state["photo"]] + [
            Photo(f.getvalue(), f.name, source, page) for f in files[1:limit]]
        st.session_state["photos_dropped"] = max(0, len(files) - limit)


def photo_picker(key: str, gallery: str = "grid", camera: bool = True, multiple: bool = False) -> Photo | None:
    """Upload / camera / example photos; returns the visitor's current photo (kept across pages).
    ``multiple``: the uploader takes up to MAX_PHOTOS photos of the same plant (see ``current_photos``)."""
    limit = MAX_PHOTOS if multiple else 1
    # no `type=` filter: Streamlit refuses a type outside its list with a message seen only on hover, while
    # `inference.load_image` opens what Pillow can (.jfif and .avif included) and says plainly what it cannot
    upload = st.file_uploader(
        UPLOAD_LABEL, key=f"{key}_upload", accept_multiple_files=multiple,
        help=f"JPEG, PNG, WebP or HEIC (iPhone) photos, up to {MAX_MB} MB each"
             + (f"; up to {MAX_PHOTOS} photos of the same plant are combined into one answer." if multiple else "."))
    _take_new(upload, f"{key}_upload_seen", "upload", key, limit)
    if camera and st.toggle("Take a photo with the camera", key=f"{key}_camera_on"):
        shot = st.camera_input("Take a photo", key=f"{key}_camera")
        _take_new(shot, f"{key}_camera_seen", "camera", key)

    items = examples()
    if items and gallery == "grid":
        st.caption("…or try one of these example photos:")
        cols = st.columns(min(len(items), 4))
        for i, item in enumerate(items):
            with cols[i % len(cols)]:
                st.image(item["file"], caption=display_name(item["label"]), width="stretch")
                if st.button("Try it", key=f"{key}_ex_{i}", width="stretch",
                             help=f"Classify this photo of {with_article(item['label'])}"):
                    _set_photo(Path(item["file"]).read_bytes(), Path(item["file"]).name, "example", key)
    elif items:
        labels = ["—"] + [display_name(it["label"]) for it in items]
        choice = st.selectbox("…or pick an example photo", labels, key=f"{key}_example")
        if choice != "—" and st.session_state.get(f"{key}_example_seen") != choice:
            st.session_state[f"{key}_example_seen"] = choice
            item = items[labels.index(choice) - 1]
            _set_photo(Path(item["file"]).read_bytes(), Path(item["file"]).name, "example", key)
    elif not items:
        st.caption("Example photos are not shipped in this copy (`python -m train.gallery --build`).")
    photo = current_photo()
    if photo is not None and photo.page != key and st.session_state.get("photo_bad") == photo.digest:
        return None  # an unreadable upload from another page: its message was shown there
    if photo is not None and photo.page != key:
        st.caption(f"Using your photo **{plain(photo.name)}** from before; upload or pick another to change it.")
    return photo


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


def photo_images(photos: list[Photo], prompt: str) -> list[tuple[Photo, object, list[str]]]:
    """Several photos of one plant as (photo, RGB image, notes); an unreadable one gets its message and
    is left out. With no photo, or none readable, the page stops (like ``photo_image``)."""
    if not photos:
        st.info(prompt)
        st.stop()
    if len(photos) > 1 and st.session_state.get("photos_dropped"):
        st.warning(f"Only the first {MAX_PHOTOS} photos are used; "
                   f"{st.session_state['photos_dropped']} more were left out.")
    good = []
    for photo in photos:
        notes: list[str] = []
        try:
            good.append((photo, load_image(photo.data, notes), notes))
        except ImageError as e:  # the message may quote the file's own bytes (a decoder's complaint): escaped
            if photo is photos[0]:
                st.session_state["photo_bad"] = photo.digest
            what = f" {plain(photo.name)}" if len(photos) > 1 else ""
            st.error(f"**We couldn't use this file{what}.** {plain(str(e))}")
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
    try:
        page.run()
    except Exception as e:  # st.stop / st.rerun are BaseException and pass through
        log.error("page crashed:\n%s", traceback.format_exc())
        st.error(f"{CRASH_MARKER} Please try another photo or reload. ({type(e).__name__}: {e})")


# ---------------------------------------------------------------------------------------------
# Charts shared by several pages
# ---------------------------------------------------------------------------------------------
def top5_chart(top5: list[tuple[str, float]], title: str | None = None, height: int = 260):
    labels = [display_name(label) for label, _ in top5][::-1]
    values = [p for _, p in top5][::-1]
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h", text=[f"{v:.0%}" for v in values],
                           textposition="auto", marker_color="#b5338a",
                           hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      xaxis=dict(range=[0, 1], tickformat=".0%", title=None))
    return fig


# ---------------------------------------------------------------------------------------------
# The verdict in plain words (Classify, and wherever a visitor sees a prediction)
# ---------------------------------------------------------------------------------------------
NOT_A_FLOWER_HINT = ("Try a photo of one flower, close up, filling most of the frame, in focus and in daylight; "
                     "the app knows 102 common garden and wild flowers.")


def confidence_words(prob: float) -> str:
    return "almost certainly" if prob >= 0.9 else "probably" if prob >= 0.6 else "possibly"


def with_article(name: str) -> str:
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {display_name(name)}"


def verdict_text(pred) -> tuple[str, str]:
    """(headline, one line of explanation) of a Prediction's verdict, for a visitor."""
    if pred.verdict == "not_a_flower":
        return NOT_A_FLOWER_HEADLINE, NOT_A_FLOWER_HINT
    if pred.verdict == "not_sure":
        names = ", ".join(f"{display_name(label)} ({p:.0%})" for label, p in pred.candidates())
        if pred.unfamiliar:  # the novelty check: unlike every species, whatever the softmax says
            return NOT_SURE_UNFAMILIAR_HEADLINE, (
                f"My best guesses are {names}, but the photo looks unlike the photos I learned from, so I can't "
                "vouch for them: it may be a flower I don't know, or an unusual view of one I do. "
                "A closer, sharper photo of a single flower helps.")
        return NOT_SURE_HEADLINE, (
            f"{names}. The photo fits several species, or the flower is hard to see: "
            "a closer, sharper photo of a single flower helps.")
    return f"This is {with_article(pred.label)}", (
        f"It is {confidence_words(pred.prob)} {with_article(pred.label)} ({pred.prob:.0%} confident).")


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


def show_verdict(pred) -> None:
    headline, detail = verdict_text(pred)
    st.subheader(headline)
    {"species": st.success, "not_sure": st.info, "not_a_flower": st.warning}[pred.verdict](detail)


WHERE_LOOKED_PX = 240  # the "where I looked" picture's width: small, under the answer


def show_where_looked(img, pred) -> None:
    """Under an answer, the photo small with the part the app classified closely drawn on it (the localisation
    stage's crop), so a visitor sees when it looked at the wrong thing; nothing when the stage did not run."""
    place = getattr(pred, "localisation", None)
    if place is None or pred.verdict == "not_a_flower":
        return
    st.image(draw_looked(img, place), caption=where_looked_caption(len(place.blooms), place.used),
             width=WHERE_LOOKED_PX)


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
    st.markdown("**Compare your photo with these candidates** (photos from the training set):")
    for rank, class_id in enumerate(pred.candidate_ids(), start=1):
        st.markdown(f"{rank}. **{display_name(classes[class_id])}** — {pred.probs[class_id]:.0%}")
        show_reference(class_id, refs)


def species_card(row, refs) -> None:
    """One species on the Species page: name, reference photos, the model's test accuracy on it."""
    st.markdown(f"**{display_name(row['class'])}** · no. {int(row['class id']) + 1}")
    show_reference(int(row["class id"]), refs, width=80)
    if "accuracy" in row and row.get("test images", 0):
        st.caption(f"Test accuracy {row['accuracy']:.0%} ({int(row['correct'])} of {int(row['test images'])} "
                   "test photos)" + (f"; most often mistaken for {display_name(row['most often mistaken for'])}"
                                     if row.get("most often mistaken for") else ""))


SPECIES_ORDERS = {"name": ("class", True), "test accuracy (lowest first)": ("accuracy", True),
                  "number": ("class id", True)}


def species_rows(table, query: str, order: str):
    rows = reports.search_species(table, query)
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
    for k, name in enumerate(names):
        try:
            entry = art.model_entry(name, SHIPPED_PROTOCOL, root)
            fn = _timed_model(name, threads, root, mtime)
        except Exception as e:
            rows.append({"model": reports.pretty(name), "error": load_error(name, e)})
            continue
        size = entry.preprocess["input_size"]
        x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
        cb = (lambda i, n, k=k: progress(k * iters + i, total)) if progress else None
        r = measure(fn, x, iters=iters, warmup=warmup, threads=threads, progress=cb)
        rows.append({"model": reports.pretty(name), "precision": "INT8" if catalog.get(name).runtime == "onnx" else "fp32",
                     "threads": threads, "batch": batch, "p50_ms": r["p50_ms"], "p95_ms": r["p95_ms"],
                     "mean_ms": r["mean_ms"], "per_image_ms": r["p50_ms"] / batch, "iters": iters})
    return rows
