"""The app's path timed stage by stage: the same answer as the app, every stage counted, honest percentiles."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from flowers_core.serve import stages
from flowers_core.serve.gallery import examples

REPO = Path(__file__).resolve().parent.parent


def test_summary_states_its_run_count_and_keeps_p99_for_enough_runs():
    few = stages.summarise(range(1, 21), warmup=3)
    assert few["runs"] == 20 and few["warmup"] == 3
    assert few["p50_ms"] == 10.5 and few["p90_ms"] == pytest.approx(18.1) and few["p99_ms"] is None
    many = stages.summarise(range(1, stages.P99_MIN_RUNS + 1))
    assert many["p99_ms"] == pytest.approx(99.01) and many["max_ms"] == 100
    assert stages.summarise([])["runs"] == 0 and stages.summarise([])["p50_ms"] is None


@pytest.fixture(scope="module")
def app_model():
    from flowers_core.serve.predictor import Predictor
    from flowers_core.shipped import manifest as art

    try:
        return Predictor("student_int8", root=REPO / "artifacts", threads=1)
    except (art.ArtifactMissing, FileNotFoundError):
        pytest.skip("the shipped INT8 student is not in this copy")


def test_staged_path_gives_the_apps_answer_and_times_every_stage(app_model):
    from flowers_core.serve.decode import load_image

    photos = [Path(e["file"]).read_bytes() for e in examples()][:3]
    if not photos:
        pytest.skip("no example photos shipped")
    for data in photos:
        probs, times = stages.staged_predict(app_model, data)
        expected = app_model.predict(load_image(data))
        assert np.allclose(probs, expected.probs, atol=1e-6), "the staged path is the app's path"
        assert list(times) == list(stages.STAGES) and all(ms >= 0 for ms in times.values())
        assert times["decode"] > 0 and times["classify"] > 0
        if app_model.gate is not None:
            assert times["flower gate"] > 0

    calls = []
    kept = stages.time_stages(app_model, photos, runs=4, warmup=2, progress=lambda i, n: calls.append((i, n)))
    assert all(len(v) == 4 for v in kept.values()), "warm-up runs are not kept"
    assert calls[-1] == (6, 6)
    assert np.allclose(kept["total"], np.sum([kept[s] for s in stages.STAGES], axis=0))


def test_a_torch_model_is_refused_with_a_reason():
    class Torchy:  # a torch model's backend has no ONNX session
        name, backend = "level1", SimpleNamespace(session=None)

    with pytest.raises(ValueError, match="ONNX model with class maps"):
        stages.staged_predict(Torchy(), b"")


def test_stored_median_only_from_a_like_machine():
    """A stored run is used only when it matches the live one on CPU model, INT8 instructions and threads (the
    wider property test is in tests/test_sentences.py)."""
    a2 = {"cpu": "A", "int8_isa": "avx2", "threads": 2}
    a512 = {"cpu": "A", "int8_isa": "avx512_vnni", "threads": 2}
    report = {"environment": a2, "models": [{"model": "m", "p50_ms": 6.0}],
              "other_cpus": [{"environment": a512, "models": [{"model": "m", "p50_ms": 2.0}]}]}
    assert stages.stored_median(report, "m", dict(a512)) == (2.0, a512), "same name, other instructions: not AVX2's"
    assert stages.stored_median(report, "m", a512 | {"threads": 1}) == (None, {}), "1 thread is not 2"
    assert stages.stored_median(report, "m", {"cpu": "C", "int8_isa": "avx2", "threads": 2}) == (None, {})
    assert stages.stored_median(report, "x", a2) == (None, {}) and stages.stored_median(None, "m", a2) == (None, {})
    assert stages.machine(1)["int8_isa"] in (*stages.INT8_ISAS, "other")
