import numpy as np

from flowers_core import metrics
from flowers_core.training import calibration


def test_metrics_on_a_known_case():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    labels = np.array([0, 1, 1, 2])
    m = metrics.classification_metrics(probs, labels, num_classes=3)
    assert m["top1"] == 0.75 and m["n"] == 4
    assert m["confusion"][1] == [1, 1, 0]
    assert m["per_class_acc"] == [1.0, 0.5, 1.0]
    assert 0 < m["macro_f1"] < 1


def test_ece_zero_when_calibrated_and_positive_when_overconfident():
    labels = np.array([0, 0, 1, 1])
    perfect = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert metrics.expected_calibration_error(perfect, labels) == 0.0
    wrong = np.array([[0.99, 0.01]] * 4)
    assert metrics.expected_calibration_error(wrong, labels) > 0.4


def test_entropy_threshold_reaches_target_selective_accuracy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 10)) * 3
    probs = metrics.softmax(logits)
    # confident predictions are right more often, as with a real classifier
    labels = np.where(rng.random(500) < probs.max(-1), logits.argmax(-1), (logits.argmax(-1) + 1) % 10)
    t = metrics.entropy_threshold(probs, labels, 0.9)
    keep = metrics.entropy(probs) <= t
    assert (probs[keep].argmax(-1) == labels[keep]).mean() >= 0.9
    curve = metrics.coverage_accuracy(probs, labels)
    assert curve[-1]["coverage"] == 1.0
    assert 0 < keep.mean() < 1
    # an unreachable target rejects everything rather than pretending
    assert metrics.entropy_threshold(probs, (labels + 1) % 10, 0.99) == 0.0


def test_temperature_scaling_recovers_overconfidence():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(size=(2000, 5)) * 2
    labels = np.array([rng.choice(5, p=p) for p in metrics.softmax(true_logits)])
    t = calibration.fit_temperature(true_logits * 3, labels)
    assert 2.0 < t < 4.5


def test_error_correlation():
    labels = np.array([0, 1, 2, 3])
    a = np.array([0, 0, 2, 0])
    assert metrics.error_correlation(a, a, labels) == 1.0
