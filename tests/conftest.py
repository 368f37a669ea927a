"""Shared fixtures: a synthetic dataset in the Flowers102 layout and tiny trained artifacts.

The synthetic images are coloured shapes whose colour depends on the class, so a model can learn
them; tiny resolution (32 px models) keeps every run to seconds on 2 cores, offline.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from flowers_core.training.recipes import LEVELS

N_CLASSES = 102
PER_CLASS = 10  # 80/10/10 stratification needs >= 1 image per class in each held-out part
IMAGE_SIZE = 40
TEST_INPUT_SIZE = 32

torch.set_num_threads(min(2, os.cpu_count() or 1))

# The fixtures that take minutes on 2 cores: every test that needs one is `slow`, and so is every browser test,
# so `pytest -m "not slow"` is the everyday loop and CI still runs everything.
SLOW_FIXTURES = {"student_artifacts", "student_entries"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.slow)


def class_colour(c: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(c)
    return tuple(int(v) for v in rng.integers(30, 226, 3))


def make_synthetic_flowers(root: Path, n_classes: int = N_CLASSES, per_class: int = PER_CLASS,
                           size: int = IMAGE_SIZE) -> Path:
    """Write ``root/flowers-102/{jpg/, imagelabels.mat, setid.mat, cat_to_name.json}``."""
    from PIL import Image, ImageDraw
    from scipy.io import savemat

    base = root / "flowers-102"
    (base / "jpg").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(1, n_classes + 1), per_class)
    rng.shuffle(labels)
    for i, label in enumerate(labels, start=1):
        img = Image.new("RGB", (size + int(rng.integers(0, 8)), size), tuple(int(v) for v in rng.integers(0, 60, 3)))
        draw = ImageDraw.Draw(img)
        r = int(rng.integers(size // 4, size // 2))
        cx, cy = int(rng.integers(r, img.width - r + 1)), int(rng.integers(r, size - r + 1))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=class_colour(int(label)))
        img.save(base / "jpg" / f"image_{i:05d}.jpg", quality=90)
    savemat(base / "imagelabels.mat", {"labels": labels[None, :].astype(np.uint8)})
    ids = np.arange(1, len(labels) + 1)
    # official protocol: first image of each class train, second val, rest test
    trn, val, tst = [], [], []
    for c in range(1, n_classes + 1):
        members = ids[labels == c]
        trn.append(members[0]), val.append(members[1]), tst.extend(members[2:])
    savemat(base / "setid.mat", {"trnid": np.array(trn)[None], "valid": np.array(val)[None],
                                 "tstid": np.array(sorted(tst))[None]})
    (base / "cat_to_name.json").write_text(json.dumps({str(c): f"flower {c}" for c in range(1, n_classes + 1)}))
    return root


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    return make_synthetic_flowers(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory, monkeypatch_session) -> Path:
    path = tmp_path_factory.mktemp("cache")
    monkeypatch_session.setenv("FLOWERS_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def monkeypatch_session():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def tiny_spec(name: str, epochs: int = 2):
    """A level's real recipe at test resolution and length."""
    from dataclasses import replace



    spec = LEVELS[name]
    return replace(spec, input_size=TEST_INPUT_SIZE, config=replace(spec.config, epochs=epochs, batch_size=128))


@pytest.fixture(scope="session")
def trained_artifacts(tmp_path_factory, synthetic_root, cache_dir) -> Path:
    """Levels 1-3 and the ensemble trained on the synthetic data (stratified protocol)."""
    from flowers_core.training.levels import prepare_workspace, run_ensemble, run_level

    root = tmp_path_factory.mktemp("artifacts")
    ws = prepare_workspace("stratified", synthetic_root, artifacts_root=root)
    for name in ("level1", "level2", "level3"):
        run_level(tiny_spec(name), "stratified", ws, artifacts_root=root)
    run_ensemble("stratified", artifacts_root=root)
    return root


@pytest.fixture(scope="session")
def photo_root(synthetic_root, tmp_path_factory):
    """labels.csv with 3 'known' classes (synthetic Flowers-102 images), 1 unknown flower, and non-flowers."""
    from PIL import Image

    from flowers_core.training.data import load_index

    root = tmp_path_factory.mktemp("realworld")
    index = load_index(synthetic_root)
    real, other = root / "real-photos", root / "not-flowers"
    other.mkdir(parents=True)
    rows = []
    for image_id in index.image_ids[:9]:
        label = int(index.labels[image_id - 1])
        folder = real / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(index.path(image_id), folder / f"{image_id}.jpg")
        rows.append({"file": f"class_{label}/{image_id}.jpg", "class_id": label, "label": index.classes[label],
                     "source": "synthetic"})
    (real / "tulip").mkdir()
    for i in range(2):
        Image.new("RGB", (48, 40), (200, 40 * i, 90)).save(real / "tulip" / f"{i}.jpg")
        rows.append({"file": f"tulip/{i}.jpg", "class_id": -1, "label": "tulip", "source": "synthetic"})
    with open(real / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "class_id", "label", "source"])
        w.writeheader(), w.writerows(rows)
    for i in range(3):
        Image.new("RGB", (60, 50), (20 * i, 90, 200)).save(other / f"n{i:08d}_thing.jpg")
    (other / "broken.jpg").write_bytes(b"not an image")
    return root


@pytest.fixture(scope="module")
def app_artifacts(request) -> Path:
    """The browser tests' artifacts: $FLOWERS_ARTIFACTS, else the committed ones when they hold models, else the
    tiny trained ones."""
    from flowers_core.shipped import manifest as art

    if os.environ.get("FLOWERS_ARTIFACTS"):
        return Path(os.environ["FLOWERS_ARTIFACTS"])
    if art.read_manifest(art.artifacts_dir()).get("models"):
        return art.artifacts_dir()
    return request.getfixturevalue("trained_artifacts")


# ---------------------------------------------------------------------------------------------
# Level 5: the student distilled from the synthetic ensemble of ``trained_artifacts`` (run once per session)
# ---------------------------------------------------------------------------------------------
_RESULT: dict = {}


def run_tiny_student(root, data_root):
    from flowers_core.training.level5 import run_student
    from flowers_core.training.levels import Workspace
    from flowers_core.training.recipes import STUDENT

    if "out" not in _RESULT:
        ws = Workspace("stratified", data_root, artifacts_root=root)  # the split conftest's levels were trained on
        spec = replace(STUDENT, calibration_images=64, quantization_trials=STUDENT.quantization_trials[:1],
                       config=replace(STUDENT.config, epochs=2, batch_size=128))
        _RESULT["out"] = run_student("stratified", ws, artifacts_root=root, spec=spec, threads=1, latency_iters=3,
                                     compare=False)
    return _RESULT["out"]


@pytest.fixture(scope="session")
def student_artifacts(trained_artifacts, synthetic_root):
    run_tiny_student(trained_artifacts, synthetic_root)
    return trained_artifacts


@pytest.fixture(scope="session")
def student_entries(student_artifacts):
    return _RESULT["out"]


# ---------------------------------------------------------------------------------------------
# The page tests (tests/test_page*.py, tests/test_pages_render.py; their helpers are in tests/_app.py)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def artifacts_root(request) -> Path:
    """$FLOWERS_APP_TEST_ARTIFACTS (an artifacts folder to test against), else the real artifacts
    when they hold trained models, else the synthetic fixture."""
    import os

    from _app import REPO, real_artifacts_ready

    if os.environ.get("FLOWERS_APP_TEST_ARTIFACTS"):
        return Path(os.environ["FLOWERS_APP_TEST_ARTIFACTS"])
    if real_artifacts_ready():
        return REPO / "artifacts"
    return request.getfixturevalue("trained_artifacts")


@pytest.fixture
def use(monkeypatch):
    def _use(root: Path):
        monkeypatch.setenv("FLOWERS_ARTIFACTS", str(root))
        return root
    return _use


@pytest.fixture(scope="module")
def classify_app(artifacts_root):
    """The Classify page opened once for the module's uploads (on ``artifacts_root``)."""
    import os

    from _app import open_page

    old = os.environ.get("FLOWERS_ARTIFACTS")
    os.environ["FLOWERS_ARTIFACTS"] = str(artifacts_root)
    yield open_page()
    if old is None:
        os.environ.pop("FLOWERS_ARTIFACTS", None)
    else:
        os.environ["FLOWERS_ARTIFACTS"] = old
