"""The latency benchmark runs end to end with a tiny iteration count (no timing assertions)."""
import json
import subprocess
import sys

import numpy as np
import torch

from _level5 import student_artifacts  # noqa: F401  (fixture)
from flowers_core.bench.latency import benchmark_models, table
from flowers_core.timing import measure


def test_measure_reports_percentiles_and_calls_progress():
    calls = []
    out = measure(lambda x: x * 2, torch.ones(1, 3, 4, 4), iters=5, warmup=2, threads=1,
                  progress=lambda i, n: calls.append((i, n)))
    assert out["iters"] == 5 and calls[-1] == (5, 5) and len(calls) == 5
    assert 0 <= out["min_ms"] <= out["p50_ms"] <= out["p95_ms"]


def test_latency_cli_writes_json(student_artifacts, tmp_path):
    out = tmp_path / "latency.json"
    proc = subprocess.run([sys.executable, "-m", "flowers_core.bench.latency", "--models", "level1", "ensemble", "student",
                           "student_int8", "--iters", "2", "--warmup", "1", "--batch", "2", "--threads", "1", "--rounds", "2",
                           "--artifacts", str(student_artifacts), "--output", str(out), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["environment"]["threads"] == 1 and result["environment"]["cpu"]
    assert result["environment"]["int8_isa"] in ("avx512_vnni", "avx_vnni", "avx2", "other")
    rows = {r["model"]: r for r in result["models"]}
    assert set(rows) == {"level1", "ensemble", "student", "student_int8"}
    for r in rows.values():
        assert "error" not in r, r
        assert r["p50_ms"] > 0 and r["throughput_img_s"] > 0 and r["size_bytes"] > 0 and r["peak_rss_mb"] > 0
        assert r["rounds"] == 2 and r["p50_ms"] == round(float(np.median(r["p50_ms_rounds"])), 3)
    assert all(r["p50_with_check_ms"] is None for r in rows.values())  # no novelty check fitted in these artifacts
    assert rows["student_int8"]["format"] == "onnx"
    assert rows["ensemble"]["size_bytes"] > rows["level1"]["size_bytes"]
    assert "speedup_vs_ensemble" in rows["student_int8"]


def test_missing_models_are_reported_not_raised(tmp_path):
    rows = benchmark_models(["student_int8"], root=tmp_path, iters=1)
    assert rows[0]["model"] == "student_int8" and "train.level5" in rows[0]["error"]
    assert "not available" in table(rows)
