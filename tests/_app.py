"""What the page tests share: the app's paths, opening a page, the clean-page check, synthetic photos and artifacts
folders edited to force one answer. The fixtures (``artifacts_root``, ``use``, ``classify_app``) are in conftest.py.

The page tests run on the committed ``artifacts/`` when they hold trained models, otherwise on the synthetic
``trained_artifacts`` fixture (levels 1-4, no student)."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowers_core.results import common
from flowers_core.serve.words import CRASH_MARKER
from flowers_core.shipped import manifest as art

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
PAGES = ["app_pages/classify.py", "app_pages/species.py", "app_pages/compare.py", "app_pages/explain.py", "app_pages/confusions.py",
         "app_pages/latency.py", "app_pages/report.py"]
TIMEOUT = 300  # 2 shared cores: the first run imports torch and loads models


def real_artifacts_ready() -> bool:
    return common.has_weights("level1", REPO / "artifacts")


def open_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if page and page != PAGES[0]:
        at.switch_page(page).run()
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    crashes = [e.value for e in at.error if CRASH_MARKER in e.value]
    assert not crashes, crashes


def png(img: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _rgb(w=160, h=120):
    arr = np.random.default_rng(1).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr)


def partial_copy(src: Path, dst: Path, drop=(), missing_dirs=(), edit=None) -> Path:
    """dst: symlinks to src's folders, and a manifest without ``drop`` models (``edit`` patches it)."""
    dst.mkdir(parents=True, exist_ok=True)
    for child in src.iterdir():
        if child.is_dir() and child.name not in missing_dirs:
            (dst / child.name).symlink_to(child.resolve())
        elif child.is_file() and child.name != "manifest.json":
            shutil.copy(child, dst / child.name)
    manifest = art.read_manifest(src)
    for protocol in manifest.get("models", {}).values():
        for name in drop:
            protocol.pop(name, None)
    if edit:
        edit(manifest)
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def pick_example(at: AppTest) -> AppTest:
    box = at.selectbox[-1] if not any(s.key and s.key.endswith("_example") for s in at.selectbox) else \
        next(s for s in at.selectbox if s.key and s.key.endswith("_example"))
    box.set_value(box.options[1]).run()
    return at


def answers_copy(src: Path, dst: Path, entropy_threshold=None, gate_threshold=None, reference=True,
                 unfamiliar=None) -> Path:
    """A copy of ``src`` whose thresholds force one verdict, with a synthetic reference-photo pack
    (3 coloured squares per class) or none at all (``reference=False``). An entropy threshold also sets
    the novelty check's: no photo is too atypical when the entropy lets every answer through, every
    photo is when it lets none through; ``unfamiliar`` (True/False) sets the novelty check apart."""
    from flowers_core.shipped.paths import REFERENCE_PHOTOS
    from flowers_core.training.gallery import write_pack

    def edit(manifest):
        for entry in manifest.get("models", {}).get("stratified", {}).values():
            if entropy_threshold is not None:
                entry.setdefault("uncertainty", {})["entropy_threshold"] = entropy_threshold
                if entry.get("novelty"):
                    entry["novelty"]["threshold"] = -1e30 if entropy_threshold > 0 else 1e30
            if unfamiliar is not None and entry.get("novelty"):
                entry["novelty"]["threshold"] = 1e30 if unfamiliar else -1e30
        if gate_threshold is not None and "gate" in manifest:
            manifest["gate"]["threshold"] = gate_threshold
        manifest.pop("reference_photos", None)
        if reference:
            manifest["reference_photos"] = {"file": REFERENCE_PHOTOS.format(protocol="stratified"), "protocol": "stratified", "per_class": 3,
                                            "split": "train", "size_px": 16}
    partial_copy(src, dst, missing_dirs=("thumbs",), edit=edit)
    if reference:
        n = len(art.class_names(dst))
        labels = np.repeat(np.arange(n), 3)
        blobs = [png(Image.new("RGB", (16, 16), (int(c) * 2 % 256, 90, 160)), "JPEG") for c in labels]
        write_pack(dst / REFERENCE_PHOTOS.format(protocol="stratified"), np.arange(1, len(labels) + 1), labels, blobs)
    return dst


def classify(at: AppTest, file) -> AppTest:
    """``file`` (name, bytes) chosen in Classify's uploader: a new question."""
    at.file_uploader[0].set_value((*file, "image/png")).run()
    assert_clean(at)
    return at


def add_photo(at: AppTest, name: str, data: bytes) -> AppTest:
    """A photo added through the 'add another photo of this plant' box."""
    from flowers_core.serve.words import ADD_PHOTO_LABEL

    box = next(u for u in at.file_uploader if u.label.startswith(ADD_PHOTO_LABEL))
    box.set_value((name, data, "image/png")).run()
    assert_clean(at)
    return at
