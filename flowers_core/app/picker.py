"""The photo picker, shared by Classify, Compare and Explain through ``st.session_state``: upload, camera or
example; one question at a time; more photos of one plant only when the visitor adds them as such."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from ..serve.decode import MAX_BYTES, ImageError, load_image, size_limit_text, too_large_message
from ..serve.gallery import examples
from ..serve.words import (
    UPLOAD_LABEL,
    UPLOADING_NOTE,
    add_photo_label,
    display_name,
    plain,
    with_article,
)

MAX_PHOTOS = 3  # photos of one plant that Classify combines into one answer


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
    if photos:  # a new question: the greyed last answer (``show_previous_answer``) is not kept for it
        _forget_answer(photos[0].page)


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
        # the box emptied: the visitor removed the photo, or is replacing it (the uploader sends "no file" before
        # the new file's upload ends, which takes seconds on a phone): the last answer stays, greyed, till then
        st.session_state[f"{page}_previous_shown"] = True
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
    # `decode.load_image` opens what Pillow can (.jfif and .avif included) and says plainly what it cannot
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
    st.file_uploader(add_photo_label(len(photos), MAX_PHOTOS), key=widget_key, help=size_help(),
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


EXAMPLE_PX = 96  # an example photo's width in the compact gallery (three or four to a phone's row)


def answers_once(clf, loaded) -> list:
    """The predictions of the loaded photos, each set of photos answered (and timed) once per session: a rerun
    of the page (a click elsewhere) shows the same answer and the same time."""
    key = (clf.name, id(clf), tuple(photo.digest for photo, _, _ in loaded))
    kept = st.session_state.setdefault("answers_kept", {})
    if key not in kept:
        kept.clear()  # one question at a time: the previous answers are not needed again
        kept[key] = clf.predict_many([img for _, img, _ in loaded])
    return kept[key]


# ---------------------------------------------------------------------------------------------
# The last answer, kept greyed while a replacing photo uploads
# ---------------------------------------------------------------------------------------------
PREVIOUS_PX = 200  # the greyed previous answer's photo


def remember_answer(page: str, headline: str, detail: str, img) -> None:
    """Keep the answer now shown on ``page`` (its words and a small copy of the photo) for ``previous_answer``."""
    small = img.copy()
    small.thumbnail((PREVIOUS_PX, PREVIOUS_PX))
    st.session_state[f"{page}_previous"] = {"headline": headline, "detail": detail, "image": small}
    st.session_state.pop(f"{page}_previous_shown", None)


def previous_answer(page: str) -> dict | None:
    """The answer shown before the visitor emptied the upload box (removed or is replacing the photo), else None."""
    if not st.session_state.get(f"{page}_previous_shown"):
        return None
    return st.session_state.get(f"{page}_previous")


def _forget_answer(page: str) -> None:
    st.session_state.pop(f"{page}_previous", None)
    st.session_state.pop(f"{page}_previous_shown", None)


def show_previous_answer(page: str) -> bool:
    """The last answer, greyed, under a note that a new photo's answer will replace it (Streamlit cannot tell the
    server that an upload has started, only that the old file left the box, so the note says both cases), with a
    button to clear it. False when there is none to show."""
    last = previous_answer(page)
    if last is None:
        return False
    st.info(UPLOADING_NOTE, icon="⏳")
    key = f"{page}_previous_answer"
    st.html(f"<style>.st-key-{key} {{ opacity: 0.45; filter: grayscale(1); }}</style>")
    with st.container(key=key):
        st.markdown(f"**{plain(last['headline'])}**")
        st.caption(last["detail"])
        st.image(last["image"], width=PREVIOUS_PX)
    st.button("Clear this answer", key=f"{page}_forget_answer", on_click=_forget_answer, args=(page,))
    return True
