"""The latency benchmark runs end to end with a tiny iteration count (no timing assertions)."""
import json
import re
import subprocess
import sys

import numpy as np
import torch

from flowers_core.bench.latency import benchmark_models, table
from flowers_core.results import latency
from flowers_core.training.timing import measure


def test_measure_reports_percentiles_and_calls_progress():
    calls = []
    out = measure(lambda x: x * 2, torch.ones(1, 3, 4, 4), iters=5, warmup=2, threads=1,
                  progress=lambda i, n: calls.append((i, n)))
    assert out["iters"] == 5 and calls[-1] == (5, 5) and len(calls) == 5
    assert 0 <= out["min_ms"] <= out["p50_ms"] <= out["p90_ms"] <= out["p95_ms"]
    assert len(out["times_ms"]) == 5 and out["warmup"] == 2, "the raw timings, warm-up calls left out"
    assert out["p50_ms"] == np.percentile(out["times_ms"], 50)


def test_latency_cli_writes_json(student_artifacts, tmp_path):
    out = tmp_path / "latency.json"
    proc = subprocess.run([sys.executable, "-m", "flowers_core.bench.latency", "--models", "level1", "ensemble", "student",
                           "student_int8", "--iters", "2", "--warmup", "1", "--batch", "2", "--threads", "1", "--rounds", "2",
                           "--artifacts", str(student_artifacts), "--output", str(out), "--json",
                           "--quiet-wait-s", "0", "--busy-ok"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["environment"]["threads"] == 1 and result["environment"]["cpu"]
    assert set(result["environment"]["quiet"]) >= {"quiet", "load_before", "load_after", "waited_s"}, "says which"
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


def _record(isa: str, date: str, p50: float, threads: int = 2) -> dict:
    return {"environment": {"cpu": f"cpu-{isa}", "int8_isa": isa, "date": date, "threads": threads},
            "protocol": "stratified",
            "models": [{"model": "student_int8", "p50_ms": p50, "p95_ms": p50 + 1, "p50_with_check_ms": p50 + 0.5,
                        "throughput_img_s": 100.0, "size_bytes": 1},
                       {"model": "level1", "error": "not recorded"}]}


def test_each_kind_of_cpu_keeps_its_latest_record(tmp_path):
    from flowers_core.bench.latency import keep_other_cpus
    from flowers_core.results import latency

    vnni = keep_other_cpus(None, _record("avx512_vnni", "2026-11-25", 1.6))
    assert vnni["other_cpus"] == []
    avx2 = keep_other_cpus(vnni, _record("avx2", "2026-12-03", 2.4))
    assert [r["environment"]["int8_isa"] for r in avx2["other_cpus"]] == ["avx512_vnni"]
    kept = avx2["other_cpus"][0]["models"]
    assert kept == [{"model": "student_int8", "p50_ms": 1.6, "p95_ms": 2.6, "p50_with_check_ms": 2.1,
                     "throughput_img_s": 100.0}]  # timings only, no failed rows
    again = keep_other_cpus(avx2, _record("avx2", "2026-12-04", 2.2))  # same kind again: replaced, the other kept
    assert [r["environment"]["date"] for r in again["other_cpus"]] == ["2026-11-25"]
    back = keep_other_cpus(again, _record("avx512_vnni", "2026-12-05", 1.5))
    assert [r["environment"]["date"] for r in back["other_cpus"]] == ["2026-12-04"]  # the older VNNI record is gone
    assert keep_other_cpus(again, _record("avx_vnni", "2026-12-06", 1.0, threads=1))["other_cpus"] == []  # not comparable
    three = keep_other_cpus(back, _record("avx_vnni", "2026-12-06", 1.0))
    assert [r["environment"]["date"] for r in three["other_cpus"]] == ["2026-12-05", "2026-12-04"]  # newest first

    (tmp_path / "latency.json").write_text(json.dumps(back))
    table = latency.latency_other_cpus(tmp_path)
    assert list(table["model"]) == ["student_int8"]
    assert list(table.iloc[0, 1:]) == [1.5, 2.2]
    assert "avx2" in table.columns[2] and "2026-12-04" in table.columns[2]
    assert latency.latency_p50_per_cpu("student_int8", tmp_path) == {"avx512_vnni": 1.5, "avx2": 2.2}
    assert latency.latency_p50_per_cpu("level1", tmp_path) == {}  # failed rows have no timing
    (tmp_path / "latency.json").write_text(json.dumps(vnni))
    assert latency.latency_other_cpus(tmp_path).empty


def test_the_summary_shows_every_kind_of_cpu(tmp_path):
    from flowers_core.bench.latency import keep_other_cpus
    from flowers_core.results.common import to_markdown

    full = {"p95_ms": 2.0, "p50_with_check_ms": None, "throughput_img_s": 100.0, "size_bytes": 1_000_000,
            "model_peak_mb": 50.0, "rounds": 1}
    older = _record("avx512_vnni", "2026-11-25", 1.6)
    newer = _record("avx2", "2026-12-03", 2.4)
    for record in (older, newer):
        record["models"] = [{**full, **record["models"][0]}]
    (tmp_path / "latency.json").write_text(json.dumps(keep_other_cpus(keep_other_cpus(None, older), newer)))
    text = "\n".join(to_markdown(latency.latency_section(tmp_path)))
    assert "INT8 instructions: avx2" in text  # the newest record's table
    assert "p50 (ms) on cpu-avx512_vnni, avx512_vnni, 2026-11-25" in text
    assert re.search(r"\| L5 student \(INT8\) +\| 2\.4 +\| 1\.6 +\|", text)  # newest CPU first, then the other
