"""The novelty check: Mahalanobis typicality, the ONNX features output, its fit and its place in the verdict."""
import json
import shutil

import numpy as np
import onnx
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


def without_features_output(src, dst):
    """A copy of the INT8 file as the quantiser writes it: no features output."""
    model = onnx.load(str(src))
    graph = model.graph
    for output in [o for o in graph.output if o.name == FEATURES_OUTPUT]:
        graph.output.remove(output)
    for node in [n for n in graph.node if FEATURES_OUTPUT in n.output]:
        graph.node.remove(node)
    onnx.save(model, str(dst))
    return dst


def test_the_features_output_leaves_the_logits_unchanged(student_artifacts, tmp_path):  # noqa: F811
    entry = art.model_entry("student_int8", root=student_artifacts)
    path = without_features_output(student_artifacts / entry.file, tmp_path / "int8.onnx")
    x = np.random.default_rng(0).normal(0, 1, (3, 3, *([entry.preprocess["input_size"]] * 2))).astype(np.float32)
    plain = OnnxSession(path, threads=1)
    assert plain.output_names == ["logits"]
    add_feature_output(path, x)
    session = OnnxSession(path, threads=1)
    assert session.output_names == ["logits", FEATURES_OUTPUT]
    out = session.outputs(x)
    assert np.array_equal(out["logits"], plain(x))
    assert out[FEATURES_OUTPUT].shape == (3, 1280)
    add_feature_output(path, x)  # idempotent
    assert OnnxSession(path, threads=1).output_names == ["logits", FEATURES_OUTPUT]


def test_fit_records_the_check_and_the_predictor_uses_it(student_artifacts, synthetic_root, tmp_path):  # noqa: F811
    root = tmp_path / "artifacts"
    shutil.copytree(student_artifacts, root)
    info = fit_novelty("student_int8", synthetic_root, root, pass_rate=0.9, threads=1)
    assert info["file"] and (root / info["file"]).is_file() and info["val_pass_rate"] >= 0.9
    recorded = json.loads((root / "manifest.json").read_text())["models"]["stratified"]["student_int8"]
    assert recorded["novelty"]["threshold"] == info["threshold"]

    index = load_index(synthetic_root)
    img = Image.open(index.path(1)).convert("RGB")

    def predictor_with(typicality_threshold):  # the entropy threshold off: only the novelty check can reject
        manifest = json.loads((root / "manifest.json").read_text())
        entry = manifest["models"]["stratified"]["student_int8"]
        entry["uncertainty"]["entropy_threshold"] = None
        entry["novelty"]["threshold"] = typicality_threshold
        (root / "manifest.json").write_text(json.dumps(manifest))
        return Predictor("student_int8", root=root, gate=None)

    lenient = predictor_with(-1e30)
    pred = lenient.predict(img)
    assert pred.typicality is not None and "typicality" in pred.to_json()
    assert pred.verdict == "species" and pred.uncertain is False
    strict = predictor_with(0.0)  # nothing is that typical: every photo becomes "not sure"
    assert strict.predict(img).verdict == "not_sure" and strict.predict(img).uncertain is True
    assert strict.combine([strict.predict(img), strict.predict(img)]).verdict == "not_sure"


def test_without_a_pack_the_check_is_off(student_artifacts):  # noqa: F811
    p = Predictor("student_int8", root=student_artifacts, gate=None)
    assert p.typicality is None and p.typicality_threshold is None
    assert p.predict(Image.new("RGB", (64, 64), (200, 40, 90))).typicality is None


def test_the_shipped_production_model_has_the_check():
    """The committed artifacts: the INT8 student's file has the features output and a fitted pack."""
    entry = art.model_entry("student_int8")
    assert entry.novelty and entry.novelty["val_pass_rate"] >= entry.novelty["target_val_pass_rate"]
    assert FEATURES_OUTPUT in OnnxSession(art.artifacts_dir() / entry.file).output_names
    assert Predictor("student_int8", gate=None).typicality is not None
