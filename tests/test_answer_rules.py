"""The rules chosen by ``flowers_core.bench.answer_rules``, on tiny synthetic answers."""
import json

import numpy as np
import pytest

from flowers_core.bench import answer_rules as ar
from flowers_core.serve.answer import AGREEMENT_MIN_OVERLAP
from flowers_core.serve.predictor import Predictor
from flowers_core.shipped import manifest as art
from flowers_core.shipped.paths import ANSWER_RULES


def test_overlap_matrix_is_every_pairs_bhattacharyya_overlap():
    probs = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    m = ar.overlap_matrix(probs)
    assert m[0, 0] == pytest.approx(1) and m[0, 1] == pytest.approx(np.sqrt(0.5)) and m[0, 2] == pytest.approx(0)


def test_pair_split_rates_count_same_and_different_pairs():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8]])
    keys = np.array([0, 0, 1, 0])  # the last photo of species 0 looks like species 1
    rates = ar.pair_split_rates(ar.overlap_matrix(probs), keys, (0.5, 0.95))
    assert rates["pairs_same"] == 3 and rates["pairs_different"] == 3
    assert rates["split"]["0.5"] == {"same": 0.0, "different": 0.0}  # every overlap here is >= 0.6
    # same: 0.99, 0.71, 0.80; different: 0.60, 0.71, 0.99
    assert rates["split"]["0.95"] == {"same": pytest.approx(2 / 3), "different": pytest.approx(2 / 3)}
    assert ar.chosen_overlap(rates) == 0.5


def test_the_gate_is_the_highest_threshold_meeting_the_targets():
    group = np.array(["known"] * 100 + ["not_flower"] * 100 + ["unknown"] * 10)
    form = np.array(["flower"] * 100 + [""] * 110)
    scores = np.r_[np.linspace(0.01, 1, 100), np.linspace(0, 0.2, 100), np.full(10, 0.5)]
    verdicts = np.array(["species"] * 100 + ["not_sure"] * 200 + ["not_sure"] * 10)[:210]
    verdicts[110] = "species"  # a non-flower scored 0.02 that the model would name
    low, high = (ar.gate_outcomes(scores, verdicts, group, form, t) for t in (0.005, 0.05))
    assert low["flowering_not_a_flower"] == 0 and low["non_flower_named"] == 0.01
    assert high["flowering_not_a_flower"] == 0.04 and high["non_flower_named"] == 0.0  # 0.2 > 0.05: rejected
    assert ar.chosen_gate([low, high]) is low, "4% of flowers refused misses the target"
    assert ar.chosen_gate([high]) is None


def test_recording_keeps_the_previous_threshold(tmp_path):
    art.write_manifest({"gate": {"threshold": 0.05, "name": "g"}}, tmp_path)
    result = {"date": "d", "gate": {"how_chosen": "h", "chosen": {"threshold": 0.02, "val_pass_rate_clean": 1.0,
                                                                   "val_pass_rate_shifted": 0.998}}}
    ar.record_gate_threshold(result, tmp_path)
    ar.record_gate_threshold(result, tmp_path)  # twice: the first threshold stays the one kept
    gate = art.read_manifest(tmp_path)["gate"]
    assert gate["threshold"] == 0.02 and gate["threshold_before"] == 0.05
    assert gate["threshold_choice"]["val_pass_rate_shifted"] == 0.998


def test_the_shipped_rules_are_the_reports_choices():
    """The committed report's choices are what ships: the gate's threshold in the manifest, the agreement bound in
    ``inference``."""
    report = ANSWER_RULES.read_or_none()
    if report is None:
        pytest.skip("no answer_rules report in artifacts/")
    assert report["agreement"]["chosen"] == AGREEMENT_MIN_OVERLAP
    gate = art.gate_record()
    assert gate is not None and gate.threshold == pytest.approx(report["gate"]["chosen"]["threshold"])
    assert json.dumps(report)  # plain JSON
    assert Predictor  # the run time reads the same manifest
