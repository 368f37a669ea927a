"""The novelty check: Mahalanobis typicality, the ONNX features output, its fit and its place in the verdict."""
import json
import shutil

import numpy as np
import onnx
import pytest
from PIL import Image

from flowers_core.bench.latency import bench_one
from flowers_core.open_model import open_predictor
from flowers_core.serve.answer import verdict
from flowers_core.serve.localise import CLASS_MAPS_OUTPUT
from flowers_core.serve.novelty import (
    FEATURES_OUTPUT,
    MAX_UNSEEN_ANSWERED,
    PASS_RATE,
    SWEPT_PASS_RATES,
    EnsembleTypicality,
    Typicality,
    operating_point,
    standardisation,
)
from flowers_core.serve.runtime import OnnxSession
from flowers_core.shipped import catalog, paths
from flowers_core.shipped import manifest as art
from flowers_core.training.data import load_index
from flowers_core.training.fits import fit_novelty, with_their_ensembles
from flowers_core.training.levels import Workspace
from flowers_core.training.onnx_edits import add_feature_output
from flowers_core.training.transforms import eval_view


def clusters(seed=0, n=60, d=8, classes=3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (classes, d))
    labels = np.repeat(np.arange(classes), n)
    return centres[labels] + rng.normal(0, 1, (len(labels), d)), labels, centres


def squared_mahalanobis(probe, mean, centred, ridge=1e-3):
    precision = np.linalg.inv(centred.T @ centred / len(centred) + ridge * np.eye(centred.shape[1]))
    return np.einsum("nd,de,ne->n", probe - mean, precision, probe - mean)


def test_typicality_is_minus_the_relative_squared_mahalanobis_distance_to_the_nearest_class():
    x, labels, _ = clusters()
    means = np.stack([x[labels == c].mean(0) for c in range(3)])
    probe = np.random.default_rng(1).normal(0, 10, (5, x.shape[1]))
    to_class = np.stack([squared_mahalanobis(probe, m, x - means[labels]) for m in means])  # shared covariance
    to_all = squared_mahalanobis(probe, x.mean(0), x - x.mean(0))  # one Gaussian over every training image
    plain = Typicality.fit(x, labels, 3, ridge=1e-3, relative=False)
    assert np.allclose(plain.scores(probe), -to_class.min(0), rtol=5e-3)  # the pack is stored in fp16
    relative = Typicality.fit(x, labels, 3, ridge=1e-3)
    assert np.allclose(relative.scores(probe), -(to_class - to_all).min(0), rtol=5e-3, atol=0.5)


def test_the_operating_point_is_the_largest_pass_rate_that_keeps_unknown_species_out():
    sweep = {"0.99": {"unseen_passing": 0.29}, "0.97": {"unseen_passing": 0.21}, "0.95": {"unseen_passing": 0.149},
             "0.9": {"unseen_passing": 0.06}}
    assert operating_point(sweep) == 0.95 and MAX_UNSEEN_ANSWERED == 0.20
    assert operating_point(sweep, 0.25) == 0.97 and operating_point(sweep, 0.01) is None


def test_the_shipped_pass_rate_is_the_one_the_held_out_species_choose():
    """The committed benchmark report: its sweep picks the library's PASS_RATE (re-run the benchmark, or
    change PASS_RATE and re-fit the checks, when they part)."""
    report = paths.UNSEEN_SPECIES.read()
    assert operating_point(report["mean_app_rule_by_pass_rate"], report.get("max_unseen_answered", MAX_UNSEEN_ANSWERED)) \
        == PASS_RATE


def test_the_relative_distance_counts_only_where_the_classes_differ():
    """Two photos equally far from a class mean: one off along a direction in which the classes do not
    differ (as a photo's light or framing may be), one off along the direction that separates them. The
    plain distance cannot tell them apart; the relative one finds the first typical and the second not."""
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(3), 400)
    centres = np.array([[0.0, 0.0], [0.0, 6.0], [0.0, 12.0]])  # the classes differ along the second axis only
    x = centres[labels] + rng.normal(0, 1, (len(labels), 2)) * np.array([1.0, 0.2])
    off_shared, off_separating = np.array([[2.0, 6.0]]), np.array([[0.0, 6.4]])  # both 4 in squared distance
    plain = Typicality.fit(x, labels, 3, relative=False)
    assert plain.scores(off_shared) == pytest.approx(plain.scores(off_separating), rel=0.15)
    relative = Typicality.fit(x, labels, 3)
    assert relative.scores(off_shared) > relative.scores(off_separating) + 2.5


def test_typical_flowers_score_higher_than_far_ones_and_the_pack_round_trips(tmp_path):
    x, labels, centres = clusters()
    typ = Typicality.fit(x, labels, 3)
    near, far = typ.scores(centres), typ.scores(centres + 50)
    assert (near > far.max()).all()
    typ.save(tmp_path / "pack.npz")
    loaded = Typicality.load(tmp_path / "pack.npz")  # plain arrays: np.load without pickle
    assert np.array_equal(loaded.scores(x), typ.scores(x))


def test_the_scores_keep_numpys_blas_on_one_thread_and_give_it_back(monkeypatch):
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    x, labels, _ = clusters()
    typ = Typicality.fit(x, labels, 3)
    with threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        assert before and set(before.values()) == {2}
        during = []
        real_asarray = np.asarray  # the scores' first step, inside their BLAS limit
        monkeypatch.setattr(np, "asarray", lambda *a, **k: (during.append(blas_threads()), real_asarray(*a, **k))[1])
        typ.scores(x)
        monkeypatch.undo()
        assert during and all(set(d.values()) == {1} for d in during)
        assert blas_threads() == before  # given back afterwards


def test_the_ensembles_typicality_is_the_mean_of_its_members_standardised():
    x, labels, centres = clusters()
    wide = x * 10  # a member whose distances are on another scale must not outweigh the other
    members = (Typicality.fit(x, labels, 3), Typicality.fit(wide, labels, 3))
    stats = [standardisation(m.scores(f)) for m, f in zip(members, (x, wide))]
    check = EnsembleTypicality(members, tuple(c for c, _ in stats), tuple(s for _, s in stats))
    probe = centres + np.random.default_rng(2).normal(0, 3, centres.shape)
    per_member = [(m.scores(f) - c) / s for m, f, (c, s) in zip(members, (probe, probe * 10), stats)]
    assert np.allclose(check.scores([probe, probe * 10]), np.mean(per_member, axis=0))
    assert np.allclose(per_member[0], per_member[1], atol=0.1)  # standardised: same scale (the ridge is not)
    assert (check.scores([centres, centres * 10]) > check.scores([centres + 50, (centres + 50) * 10]).max()).all()


def test_an_atypical_flower_is_not_sure_and_the_gate_still_decides_first():
    assert verdict(0.1, 0.9, 0.5, 0.05, typicality=-10.0, typicality_threshold=-5.0) == "not_sure"
    assert verdict(0.1, 0.9, 0.5, 0.05, typicality=-1.0, typicality_threshold=-5.0) == "species"
    assert verdict(0.1, 0.9, 0.01, 0.05, typicality=-10.0, typicality_threshold=-5.0) == "not_a_flower"
    assert verdict(0.1, 0.9, typicality=-10.0) == "species"  # no threshold: never rejects


def without_features_output(src, dst):
    """A copy of the INT8 file as the quantiser writes it: no features output (nor the class maps' output)."""
    model = onnx.load(str(src))
    graph = model.graph
    for output in [o for o in graph.output if o.name in (FEATURES_OUTPUT, CLASS_MAPS_OUTPUT)]:
        graph.output.remove(output)
    for node in [n for n in graph.node if FEATURES_OUTPUT in n.output or CLASS_MAPS_OUTPUT in n.output]:
        graph.node.remove(node)
    onnx.save(model, str(dst))
    return dst


def test_the_features_output_leaves_the_logits_unchanged(student_artifacts, tmp_path):
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


def test_fit_records_the_check_and_the_predictor_uses_it(student_artifacts, synthetic_root, tmp_path,
                                                          caplog):
    root = tmp_path / "artifacts"
    shutil.copytree(student_artifacts, root)
    info = fit_novelty("student_int8", synthetic_root, root, pass_rate=0.9, threads=1)
    assert info["file"] and (root / info["file"]).is_file() and info["val_pass_rate"] >= 0.9
    timed = bench_one("student_int8", root=root, threads=1, batch=2, iters=3, warmup=1)  # the app's path is timed too
    assert timed["p50_with_check_ms"] > 0 and timed["p50_ms"] > 0
    recorded = json.loads((root / "manifest.json").read_text())["models"]["stratified"]["student_int8"]
    assert recorded["novelty"]["threshold"] == info["threshold"]
    by_rate = {float(r): t for r, t in info["thresholds_by_pass_rate"].items()}
    assert sorted(by_rate) == sorted(SWEPT_PASS_RATES)
    assert [by_rate[r] for r in sorted(by_rate)] == sorted(by_rate.values(), reverse=True)  # laxer: lower threshold

    pack = (root / info["file"]).read_bytes()
    again = fit_novelty("student_int8", synthetic_root, root, pass_rate=0.5, threads=1, thresholds_only=True)
    assert (root / info["file"]).read_bytes() == pack and again["file"] == info["file"]  # the pack is kept
    assert again["bytes"] == info["bytes"] and again["distance"] == info["distance"]
    assert again["seconds"] == info["seconds"] and again["thresholds_seconds"] > 0  # the fit's time is kept
    assert again["threshold"] > info["threshold"] and again["target_val_pass_rate"] == 0.5  # set again, stricter
    assert again["val_pass_rate"] < info["val_pass_rate"]
    assert again["thresholds_by_pass_rate"] == pytest.approx(info["thresholds_by_pass_rate"])  # the same val scores
    (root / info["file"]).write_bytes(pack[: len(pack) // 2])  # a truncated pack is refused with the command
    with pytest.raises(SystemExit, match=r"cannot be kept .*--models student_int8"):
        fit_novelty("student_int8", synthetic_root, root, pass_rate=0.9, threads=1, thresholds_only=True)
    (root / info["file"]).write_bytes(pack)
    fit_novelty("student_int8", synthetic_root, root, pass_rate=0.9, threads=1, thresholds_only=True)

    index = load_index(synthetic_root)
    img = Image.open(index.path(1)).convert("RGB")

    def predictor_with(typicality_threshold):  # the entropy threshold off: only the novelty check can reject
        manifest = json.loads((root / "manifest.json").read_text())
        entry = manifest["models"]["stratified"]["student_int8"]
        entry["uncertainty"]["entropy_threshold"] = None
        entry["novelty"]["threshold"] = typicality_threshold
        (root / "manifest.json").write_text(json.dumps(manifest))
        return open_predictor("student_int8", root=root, gate=None)

    lenient = predictor_with(-1e30)
    pred = lenient.predict(img)
    assert pred.typicality is not None and "typicality" in pred.to_json()
    assert pred.verdict == "species" and pred.uncertain is False and pred.unfamiliar is False
    strict = predictor_with(0.0)  # nothing is that typical: every photo becomes "not sure"
    assert strict.predict(img).verdict == "not_sure" and strict.predict(img).uncertain is True
    assert strict.predict(img).unfamiliar is True and strict.predict(img).to_json()["unfamiliar"] is True
    assert strict.combine([strict.predict(img), strict.predict(img)]).verdict == "not_sure"

    np.savez(root / info["file"], whiten=np.eye(2), means=np.zeros((3, 2)))  # a pack of the earlier format
    with caplog.at_level("WARNING"):
        assert open_predictor("student_int8", root=root, gate=None).typicality is None  # off, and said, not a crash
    assert "older format" in caplog.text and "--models student_int8" in caplog.text


def test_without_a_pack_the_check_is_off(student_artifacts):
    p = open_predictor("student_int8", root=student_artifacts, gate=None)
    assert p.typicality is None and p.typicality_threshold is None
    assert p.predict(Image.new("RGB", (64, 64), (200, 40, 90))).typicality is None


def test_every_shipped_model_has_the_check():
    """The committed artifacts: each model has a fitted check (the INT8 file its features output, the
    ensemble its members' packs), and the production model loads it without torch's help."""
    for name in catalog.names():
        entry = art.model_entry(name)
        assert entry.novelty and entry.novelty["val_pass_rate"] >= entry.novelty["target_val_pass_rate"], name
        assert entry.novelty["target_val_pass_rate"] == PASS_RATE, name  # fitted with the library's operating point
        if entry.format == "ensemble":
            assert set(entry.novelty["members"]) == set(entry.members)
        else:
            assert (art.artifacts_dir() / entry.novelty["file"]).is_file()
    int8 = art.model_entry(catalog.PRODUCTION)
    assert FEATURES_OUTPUT in OnnxSession(art.artifacts_dir() / int8.file).output_names
    assert open_predictor(catalog.PRODUCTION, gate=None).typicality is not None


def test_every_model_gets_a_check_the_ensemble_from_its_members(trained_artifacts, synthetic_root, tmp_path, caplog):
    root = tmp_path / "artifacts"
    shutil.copytree(trained_artifacts, root)
    with pytest.raises(SystemExit, match="members' novelty checks first"):
        fit_novelty("ensemble", synthetic_root, root, pass_rate=0.9, threads=1)
    with pytest.raises(SystemExit, match="no novelty pack to keep"):
        fit_novelty("level1", synthetic_root, root, pass_rate=0.9, threads=1, thresholds_only=True)
    for name in ("level1", "level2", "level3", "ensemble"):
        fit_novelty(name, synthetic_root, root, pass_rate=0.9, threads=1)
    ensemble = art.model_entry("ensemble", root=root).novelty
    assert set(ensemble["members"]) == {"level1", "level2", "level3"} and "file" not in ensemble
    assert all(s["scale"] > 0 for s in ensemble["members"].values())

    ws = Workspace("stratified", synthetic_root, root)
    for name in ("level3", "ensemble"):  # the app's path reproduces what the fit recorded on val
        predictor = open_predictor(name, root=root, gate=None)
        assert predictor.typicality is not None
        val = ws.squares(predictor.preprocess.resize_size, "val")
        preds = predictor.predict_batch(eval_view(predictor.preprocess, val))
        passing = np.mean([p.typicality >= predictor.typicality_threshold for p in preds])
        assert passing == pytest.approx(art.model_entry(name, root=root).novelty["val_pass_rate"])

    img = Image.open(load_index(synthetic_root).path(1)).convert("RGB")
    fitted = (root / "manifest.json").read_text()
    for name in ("level3", "ensemble"):
        assert open_predictor(name, root=root, gate=None, novelty=False).predict(img).typicality is None
        manifest = json.loads(fitted)
        recorded = manifest["models"]["stratified"][name]
        recorded.get("uncertainty", {}).pop("entropy_threshold", None)  # only the novelty check can reject
        recorded["novelty"]["threshold"] = 1e30  # nothing is that typical
        (root / "manifest.json").write_text(json.dumps(manifest))
        strict = open_predictor(name, root=root, gate=None)
        assert strict.predict(img).verdict == "not_sure" and strict.predict(img).uncertain is True
    (root / "manifest.json").write_text(fitted)

    assert with_their_ensembles(["level1"], root) == ["level1", "ensemble"]  # the command refits what depends on it
    assert with_their_ensembles(["ensemble", "level2"], root) == ["level2", "ensemble"]
    assert with_their_ensembles(["student"], root) == ["student"]
    fit_novelty("level1", synthetic_root, root, pass_rate=0.8, threads=1)  # a member re-fitted alone
    with caplog.at_level("WARNING"):
        assert open_predictor("ensemble", root=root, gate=None).typicality is None
    assert "novelty check is recorded but cannot run" in caplog.text and "--models level1 level2 level3 ensemble" in caplog.text
    fit_novelty("ensemble", synthetic_root, root, pass_rate=0.9, threads=1)
    assert open_predictor("ensemble", root=root, gate=None).typicality is not None
    (root / art.model_entry("level2", root=root).novelty["file"]).unlink()  # a member's pack lost
    assert open_predictor("ensemble", root=root, gate=None).typicality is None
