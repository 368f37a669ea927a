"""The robustness benchmark: every shift keeps the image format, and the CLI scores every model × shift."""
import json
import shutil

import numpy as np
import torch

from flowers_core.bench import robustness
from flowers_core.results import robustness as robustness_results
from flowers_core.serve.localise import LocaliseRule
from flowers_core.shipped import manifest as art
from flowers_core.shipped import paths
from flowers_core.training.onnx_edits import add_class_map_output


def test_shifts_keep_shape_and_dtype_and_change_the_pixels():
    torch.manual_seed(0)
    squares = torch.randint(0, 256, (3, 3, 40, 40), dtype=torch.uint8)
    for name, shift in robustness.shifts(40).items():
        out = shift(squares)
        assert out.shape == squares.shape and out.dtype == torch.uint8, name
        assert torch.equal(out, squares) == name.startswith("clean"), name
        assert torch.equal(shift(squares), out), f"{name} is not deterministic"


def test_cli_scores_every_model_and_shift(student_artifacts, synthetic_root, tmp_path):
    out = tmp_path / "robustness.json"
    robustness.main(["--models", "student_int8", "level1", "--data-root", str(synthetic_root), "--artifacts",
                     str(student_artifacts), "--limit", "12", "--threads", "1", "--output", str(out)])
    result = json.loads(out.read_text())
    assert result["n_images"] == 12
    assert len(result["rows"]) == 2 * len(robustness.shifts(32))
    for row in result["rows"]:
        assert 0 <= row["top1"] <= 1
        assert ("flagged_not_sure" in row) == (row["model"] == "student_int8")  # only it stores a threshold


def test_a_localising_model_is_scored_with_its_stage_and_its_whole_photo_answers(student_artifacts, synthetic_root, tmp_path):
    """Shipped with the localisation stage, the student answers as in the app and its whole-photo answers (the same
    pass) are the rows a run without the stage gives."""
    root = tmp_path / "artifacts"
    shutil.copytree(student_artifacts, root)
    entry = art.model_entry("student_int8", "stratified", root)
    add_class_map_output(art.model_file(entry, root), np.zeros((2, 3, 32, 32), np.float32))

    def rows(name: str) -> dict:
        robustness.main(["--models", "student_int8", "level1", "--data-root", str(synthetic_root), "--artifacts", str(root),
                         "--limit", "12", "--threads", "1"])
        shutil.copy(root / paths.ROBUSTNESS.path, tmp_path / name)
        return {(r["model"], r["shift"]): r for r in json.loads((tmp_path / name).read_text())["rows"]}

    plain = rows("plain.json")
    rule = LocaliseRule(threshold=0.9, margin=0.0, min_side=0.3, max_side=1.0, combine="crop")
    art.update_manifest(root, localise={"rule": rule.to_dict(), "shipped": True, "models": ["student_int8"]})
    localised = rows("localised.json")
    for (model, shift), row in localised.items():
        if model == "level1":  # not shipped with the stage
            assert "whole_photo" not in row and row == {**plain[(model, shift)], "seconds": row["seconds"]}
            continue
        before = {k: v for k, v in plain[(model, shift)].items() if k not in ("model", "shift", "seconds")}
        assert row["whole_photo"] == before and 0 <= row["crop_used"] <= 1
    table = robustness_results.robustness_localised(root).set_index("shift")  # RESULTS.md's before/after table
    assert list(table.columns) == ["L5 student (INT8): whole photo", "L5 student (INT8): localised"]
    assert [table.loc[shift, "L5 student (INT8): localised"] for shift in robustness.shifts(32)] == \
        [localised[("student_int8", shift)]["top1"] for shift in robustness.shifts(32)]
