"""The robustness benchmark: every shift keeps the image format, and the CLI scores every model × shift."""
import json

import torch

from _level5 import student_artifacts  # noqa: F401  (fixture)
from flowers_core.bench import robustness


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
