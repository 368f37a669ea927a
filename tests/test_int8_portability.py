"""The INT8 file re-scored on this CPU against its recording: agreement found, a changed recording caught,
and each kind of CPU keeps its rows in the report."""
import json
import shutil

import numpy as np

from flowers_core.bench import int8_portability
from flowers_core.bench.int8_portability import merge, rescore
from flowers_core.results import levels
from flowers_core.results.common import to_markdown
from flowers_core.shipped import manifest as art
from flowers_core.shipped import paths


def test_the_recorded_file_computes_its_saved_probabilities_here(student_artifacts, synthetic_root):
    rows = {r["split"]: r for r in rescore("student_int8", "stratified", synthetic_root, student_artifacts, threads=1)}
    assert set(rows) == {"val", "test"}
    for r in rows.values():
        assert r["top1_agreement"] == 1.0 and r["top1_now"] == r["top1_recorded"]
        assert r["max_prob_difference"] <= 1e-3  # the saved probabilities are fp16


def test_a_file_that_computes_otherwise_is_caught(student_artifacts, synthetic_root, tmp_path):
    root = tmp_path / "artifacts"
    shutil.copytree(student_artifacts, root)
    rel = art.model_entry("student_int8", "stratified", root).probs["test"]
    with np.load(root / rel) as z:
        saved = dict(z)
    saved["probs"] = np.roll(saved["probs"], 1, axis=1)  # what a file that lost its top-1 everywhere would show
    np.savez(root / rel, **saved)
    test = next(r for r in rescore("student_int8", "stratified", synthetic_root, root, threads=1) if r["split"] == "test")
    assert test["top1_agreement"] < 0.1 and test["max_prob_difference"] > 0.1


def test_each_kind_of_cpu_keeps_its_rows_and_the_readme_shows_them(student_artifacts, synthetic_root,
                                                                   tmp_path, monkeypatch):
    root = tmp_path / "artifacts"
    shutil.copytree(student_artifacts, root)
    report = paths.INT8_PORTABILITY.file(root)
    for isa in ("avx2", "avx512_vnni", "avx2"):
        monkeypatch.setattr(int8_portability, "int8_isa", lambda isa=isa: isa)
        int8_portability.main(["--data-root", str(synthetic_root), "--artifacts", str(root), "--threads", "1"])
    runs = json.loads(report.read_text())["runs"]
    assert [r["int8_isa"] for r in runs] == ["avx2", "avx512_vnni"]  # the second avx2 run replaced the first
    assert all({row["split"] for row in r["rows"]} == {"val", "test"} for r in runs)
    assert merge(None, {"int8_isa": "avx2", "rows": []})["runs"] == [{"int8_isa": "avx2", "rows": []}]
    text = "\n".join(to_markdown(levels.int8_portability_lines(root)))
    assert "(avx2)" in text and "(avx512_vnni)" in text and "100.00%" in text
