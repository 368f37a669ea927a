"""Level-5 fixture shared by test_distill/test_quantize/test_latency: the student distilled from
the synthetic ensemble of ``conftest.trained_artifacts`` (run once per session)."""
from __future__ import annotations

from dataclasses import replace

import pytest

_RESULT: dict = {}


def run_tiny_student(root, data_root):
    from flowers_core.distill import STUDENT, run_student
    from flowers_core.pipeline import Workspace

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
