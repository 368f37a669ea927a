"""The three-way verdict, the flower gate's signal and threshold, and a tiny gate end to end
(a small stand-in for the ImageNet network: same export, INT8 and manifest path as `python -m train.gate`)."""
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import TEST_INPUT_SIZE
from flowers_core import predict
from flowers_core.bench.int8_portability import rescore_gate
from flowers_core.metrics import pass_threshold
from flowers_core.open_model import open_predictor
from flowers_core.serve.answer import verdict
from flowers_core.serve.decode import load_image
from flowers_core.serve.gate import FlowerGate, flower_classes, flower_score, has_gate
from flowers_core.serve.preprocess import Preprocess
from flowers_core.shipped import manifest as art
from flowers_core.shipped import paths
from flowers_core.training.data import load_index
from flowers_core.training.fits import build_gate, fit_gate
from flowers_core.training.quantise import u8s8_pair_bound


def test_verdict_has_three_outcomes_and_the_gate_decides_first():
    assert verdict(0.1, 0.9, flower_score=0.5, flower_threshold=0.05) == "species"
    assert verdict(2.0, 0.9, flower_score=0.5, flower_threshold=0.05) == "not_sure"
    assert verdict(0.1, 0.9, flower_score=0.01, flower_threshold=0.05) == "not_a_flower"
    assert verdict(2.0, 0.9, flower_score=0.01, flower_threshold=0.05) == "not_a_flower"
    assert verdict(0.9, 0.9, flower_score=0.05, flower_threshold=0.05) == "species"  # thresholds are inclusive


def test_a_missing_signal_or_threshold_never_rejects():
    assert verdict(4.0) == "species"
    assert verdict(4.0, None, 0.0, None) == "species"
    assert verdict(0.1, 0.9, None, 0.05) == "species"


def test_flower_classes_carry_the_requested_mass_most_first():
    probs = np.array([[0.5, 0.3, 0.15, 0.05], [0.3, 0.5, 0.15, 0.05]])  # mean 0.4, 0.4, 0.15, 0.05
    assert flower_classes(probs, 0.5) == [0, 1]
    assert flower_classes(probs, 0.8) == [0, 1]
    assert flower_classes(probs, 0.81) == [0, 1, 2]
    assert flower_classes(probs, 0.1) == [0]


def test_flower_score_is_the_softmax_mass_on_the_classes():
    logits = np.log(np.array([[0.7, 0.2, 0.1]]))
    assert flower_score(logits, [0, 2])[0] == pytest.approx(0.8)
    assert flower_score(logits, [])[0] == 0


def test_threshold_lets_the_requested_share_of_validation_flowers_through():
    scores = np.random.default_rng(0).random(1000)
    for rate in (0.9, 0.99, 1.0):
        t = pass_threshold(scores, rate)
        assert (scores >= t).mean() >= rate and t in scores
    assert pass_threshold(scores, 1.0) == scores.min()


def test_fit_gate_derives_classes_from_train_and_the_threshold_from_val():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(200, 10))
    train[:, 3] += 4  # class 3 carries most of the training mass
    val = rng.normal(size=(100, 10))
    val[:, 3] += 4
    fitted = fit_gate(train, val, mass=0.5, pass_rate=0.95)
    assert fitted["classes"] == [3]
    assert fitted["val_pass_rate"] >= 0.95
    assert fitted["threshold"] == pytest.approx(np.quantile(flower_score(val, [3]), 0.05, method="lower"))


class TinyImageNet(nn.Module):
    """A stand-in for the 1000-way ImageNet classifier: bright red images score high on classes 0-9."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 1000)
        with torch.no_grad():
            self.fc.weight.zero_(), self.fc.bias.zero_()
            self.fc.weight[:10, 0] = 4.0

    def forward(self, x):
        return self.fc(self.pool(x).flatten(1))


@pytest.fixture(scope="module")
def gated_artifacts(trained_artifacts, tmp_path_factory):
    """A copy of the synthetic artifacts with a tiny INT8 flower gate (red = flower)."""
    root = tmp_path_factory.mktemp("gated") / "artifacts"
    shutil.copytree(trained_artifacts, root)
    pre = Preprocess(TEST_INPUT_SIZE)
    g = torch.Generator().manual_seed(0)
    squares = torch.randint(0, 80, (64, 3, pre.resize_size, pre.resize_size), dtype=torch.uint8, generator=g)
    squares[:, 0] = 255  # the "flowers": red
    entry = build_gate(TinyImageNet(), squares[:48], squares[48:], pre, root, mass=0.3, pass_rate=0.9, calibration=16)
    return root, entry


def test_build_gate_records_a_loadable_int8_gate(gated_artifacts):
    root, entry = gated_artifacts
    assert has_gate(root) and art.gate_record(root) == entry
    assert set(entry.classes) <= set(range(10)) and entry.val_pass_rate >= 0.9
    assert {"threshold", "how_chosen", "file", "preprocess", "alternatives_val", "int8_vs_fp32_val"} <= set(entry.to_dict())
    # exact on every x86 CPU: no int16 pair of u8s8 products can saturate
    assert entry.details["u8s8_pair_bound"] == u8s8_pair_bound(root / entry.file) <= entry.details["u8s8_pair_limit"]
    gate = FlowerGate(root)
    red, grey = Image.new("RGB", (50, 40), (255, 20, 20)), Image.new("RGB", (50, 40), (60, 60, 60))
    scores = gate.score_images([red, grey])
    assert scores[0] > scores[1] and gate.passes(scores).tolist() == [True, False]


def test_predictor_gives_each_verdict(gated_artifacts, synthetic_root):
    root, _ = gated_artifacts
    p = open_predictor("level1", "stratified", root)
    assert p.gate is not None and open_predictor("level1", "stratified", root, gate=None).gate is None
    grey = Image.new("RGB", (50, 40), (60, 60, 60))
    assert p.predict(grey).verdict == "not_a_flower"
    red = Image.new("RGB", (50, 40), (255, 20, 20))
    pred = p.predict(red)
    assert pred.flower_score >= p.flower_threshold
    assert pred.verdict == ("species" if p.threshold is None else ("not_sure" if pred.uncertain else "species"))
    probs = np.full(102, 1 / 102)  # uniform: as unsure as it gets
    p.threshold = 1.0
    assert p.describe(probs, flower_score=1.0).verdict == "not_sure"
    assert p.describe(np.eye(102)[5], flower_score=1.0).verdict == "species"


def test_predict_cli_reports_the_verdict_and_the_flower_score(gated_artifacts, synthetic_root, capsys):
    root, _ = gated_artifacts
    code = predict.main(["--model", "ensemble", "--artifacts", str(root), str(load_index(synthetic_root).path(1))])
    row = json.loads(capsys.readouterr().out)
    assert code == 0 and row["verdict"] in ("species", "not_sure", "not_a_flower")
    assert 0 <= row["flower_score"] <= 1
    if row["flower_score"] < art.read_manifest(root)["gate"]["threshold"]:
        assert row["verdict"] == "not_a_flower"


def test_realworld_scores_a_trial_folder_with_the_gate_of_another(gated_artifacts, trained_artifacts, photo_root,
                                                                     tmp_path):
    """`--gate-from`: the models of a trial run (no gate of their own) measured with the shipped gate."""
    from flowers_core.bench import realworld

    gated, entry = gated_artifacts
    assert not has_gate(trained_artifacts)
    out = tmp_path / "trial.json"
    realworld.main(["--models", "level1", "--data-root", str(photo_root), "--artifacts", str(trained_artifacts),
                    "--gate-from", str(gated), "--threads", "1", "--output", str(out)])
    result = json.loads(out.read_text())
    assert result["gate"]["threshold"] == entry.threshold
    not_flowers = result["models"][0]["verdicts"]["not_flower"]
    assert not_flowers["not_a_flower"] > 0  # the synthetic non-flowers are blue: the tiny gate turns them away
    assert not (trained_artifacts / paths.REALWORLD.path).exists()  # --output: the trial folder is left alone
    with pytest.raises(FileNotFoundError, match="no flower gate"):  # a wrong folder is an error, not 'no gate'
        realworld.run(["level1"], photo_root, trained_artifacts, limit=2, gate_root=tmp_path)


def test_the_gates_recorded_pass_rate_is_checked_on_the_validation_images(gated_artifacts, synthetic_root):
    root, entry = gated_artifacts
    row = rescore_gate(synthetic_root, root, threads=1)
    assert row["pass_rate_recorded"] == entry.val_pass_rate and row["median_score_recorded"] == entry.val_score_median
    index, gate = load_index(synthetic_root), FlowerGate(root)
    ids = art.read_split("stratified", root)["val"]
    assert row["n"] == len(ids)
    with_app_path = gate.score_images([load_image(index.path(i)) for i in ids])  # the upload path, from the JPEGs
    assert row["pass_rate_now"] == gate.passes(with_app_path).mean()
    assert row["median_score_now"] == pytest.approx(float(np.median(with_app_path)), abs=1e-4)
