"""The novelty check: Mahalanobis typicality, the ONNX features output, its fit and its place in the verdict."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from _level5 import student_artifacts  # noqa: F401  (session fixture)
from flowers_core import artifacts as art
from flowers_core.data import load_index
from flowers_core.inference import Predictor, verdict
from flowers_core.novelty import FEATURES_OUTPUT, Typicality
from flowers_core.quantize import add_feature_output
from flowers_core.runtime import OnnxSession
from train.novelty import fit_novelty


def clusters(seed=0, n=60, d=8, classes=3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (classes, d))
    labels = np.repeat(np.arange(classes), n)
    return centres[labels] + rng.normal(0, 1, (len(labels), d)), labels, centres


def test_typicality_is_minus_the_squared_mahalanobis_distance_to_the_nearest_class():
    x, labels, _ = clusters()
    typ = Typicality.fit(x, labels, 3, ridge=1e-3)
    means = np.stack([x[labels == c].mean(0) for c in range(3)])
    centred = x - means[labels]
    precision = np.linalg.inv(centred.T @ centred / len(x) + 1e-3 * np.eye(x.shape[1]))
    probe = np.random.default_rng(1).normal(0, 10, (5, x.shape[1]))
    expected = -np.min([np.einsum("nd,de,ne->n", probe - m, precision, probe - m) for m in means], axis=0)
    assert np.allclose(typ.scores(probe), expected, rtol=5e-3)  # the pack is stored in fp16


def test_typical_flowers_score_higher_than_far_ones_and_the_pack_round_trips(tmp_path):
    x, labels, centres = clusters()
    typ = Typicality.fit(x, labels, 3)
    near, far = typ.scores(centres), typ.scores(centres + 50)
    assert (near > far.max()).all()
    typ.save(tmp_path / "pack.npz")
    loaded = Typicality.load(tmp_path / "pack.npz")  # plain arrays: np.load without pickle
    assert np.array_equal(loaded.scores(x), typ.scores(x))


def test_an_atypical_flower_is_not_sure_and_the_gate_still_decides_first():
    assert verdict(0.1, 0.9, 0.5, 0.05, typicality=-10.0, typicality_threshold=-5.0) == "not_sure"
    assert verdict(0.1, 0.9, 0.5, 0.05, typicality=-1.0, typicality_threshold=-5.0) == "species"
    assert verdict(0.1, 0.9, 0.01, 0.05, typicality=-10.0, typicality_threshold=-5.0) == "not_a_flower"
    assert verdict(0.1, 0.9, typicality=-10.0) == "species"  # no threshold: never rejects


def test_the_features_output_leaves_the_logits_unchanged(student_artifacts, tmp_path):  # noqa: F811
    entry = art.model_entry("student_int8", root=student_artifacts)
    path = tmp_path / "int8.onnx"
    shutil.copy(student_artifacts / entry.file, path)
    x = np.random.default_rng(0).normal(0, 1, (3, 3, *([entry.preprocess["input_size"]] * 2))).astype(np.float32)
    add_feature_output(path)  # the level-5 run already added it: idempotent
    session = OnnxSession(path, threads=1)
    assert session.output_names.count(FEATURES_OUTPUT) == 1
    out = session.outputs(x)
    assert np.array_equal(out[session.output_names[0]], OnnxSession(student_artifacts / entry.file, threads=1)(x))
    assert out[FEATURES_OUTPUT].ndim == 2 and len(out[FEATURES_OUTPUT]) == 3


def test_fit_records_the_check_and_the_predictor_uses_it(student_artifacts, synthetic_root, tmp_path):  # noqa: F811
    root = tmp_path / "artifacts"
    shutil.copytree(student_artifacts, root)
    info = fit_novelty("student_int8", synthetic_root, root, pass_rate=0.9, threads=1)
    assert info["file"] and (root / info["file"]).is_file() and info["val_pass_rate"] >= 0.9
    recorded = json.loads((root / "manifest.json").read_text())["models"]["stratified"]["student_int8"]
    assert recorded["novelty"]["threshold"] == info["threshold"]

    index = load_index(synthetic_root)
    img = Image.open(index.path(1)).convert("RGB")
    pred = Predictor("student_int8", root=root, gate=None).predict(img)
    assert pred.typicality is not None and "typicality" in pred.to_json()

    recorded["novelty"]["threshold"] = 0.0  # nothing is that typical: every photo becomes "not sure"
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["models"]["stratified"]["student_int8"] = recorded
    (root / "manifest.json").write_text(json.dumps(manifest))
    strict = Predictor("student_int8", root=root, gate=None)
    assert strict.predict(img).verdict == "not_sure"
    assert strict.combine([strict.predict(img), strict.predict(img)]).verdict == "not_sure"


def test_without_a_pack_the_check_is_off(student_artifacts):  # noqa: F811
    p = Predictor("student_int8", root=student_artifacts, gate=None)
    assert p.typicality is None and p.typicality_threshold is None
    assert p.predict(Image.new("RGB", (64, 64), (200, 40, 90))).typicality is None


@pytest.mark.parametrize("protocol", ["stratified"])
def test_the_shipped_production_model_has_the_check(protocol):
    """The committed artifacts: the INT8 student's file has the features output and a fitted pack."""
    entry = art.model_entry("student_int8", protocol)
    if not entry.novelty:
        pytest.skip("no novelty check recorded in these artifacts")
    assert FEATURES_OUTPUT in OnnxSession(art.artifacts_dir() / entry.file).output_names
    assert Predictor("student_int8", gate=None).typicality is not None
