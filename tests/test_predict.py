import json
import subprocess
import sys

from flowers_core import predict
from flowers_core.shipped.paths import REPO_ROOT
from flowers_core.training.data import load_index


def test_predict_cli_classifies_and_reports_bad_files(trained_artifacts, synthetic_root, tmp_path, capsys):
    index = load_index(synthetic_root)
    good = index.path(1)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not an image")
    code = predict.main(["--model", "level2", "--artifacts", str(trained_artifacts), str(good), str(bad), str(good)])
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert code == 1 and len(lines) == 3
    ok = lines[0]
    assert set(ok) >= {"path", "class_id", "label", "prob", "entropy", "top5"}
    assert 0 <= ok["class_id"] < 102 and ok["label"] == index.classes[ok["class_id"]]
    assert len(ok["top5"]) == 5 and abs(ok["top5"][0][1] - ok["prob"]) < 1e-6
    assert "uncertain" not in ok and "unfamiliar" not in ok  # only models with a stored threshold report them
    assert ok["verdict"] == "species" and "flower_score" not in ok  # no threshold, no gate: nothing rejects
    assert "error" in lines[1] and "not an image" in lines[1]["error"]
    assert lines[2]["class_id"] == ok["class_id"]


def test_predict_cli_all_good_exits_zero_in_a_fresh_process(trained_artifacts, synthetic_root):
    index = load_index(synthetic_root)
    out = subprocess.run([sys.executable, "-m", "flowers_core.predict", "--model", "ensemble", "--artifacts",
                          str(trained_artifacts), str(index.path(2))], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout.strip())
    assert row["label"] and 0 < row["prob"] <= 1


def test_predict_cli_names_the_command_when_a_model_is_missing(tmp_path, synthetic_root, capsys):
    code = predict.main(["--model", "level1", "--artifacts", str(tmp_path), str(load_index(synthetic_root).path(1))])
    assert code == 2 and "python -m train" in capsys.readouterr().out


def test_the_default_cli_model_answers_without_torch():
    """The predict CLI's default (the INT8 student on the committed artifacts) runs on onnxruntime alone."""
    script = ("import json, sys\n"
              "from flowers_core import predict\n"
              "code = predict.main(sys.argv[1:])\n"
              "print(json.dumps({'code': code, 'torch': 'torch' in sys.modules}))\n")
    example = sorted((REPO_ROOT / "assets" / "examples").glob("*.jpg"))[0]
    proc = subprocess.run([sys.executable, "-c", script, str(example)], capture_output=True, text=True, timeout=120,
                          cwd=REPO_ROOT)
    *answers, result = proc.stdout.strip().splitlines()
    assert json.loads(result) == {"code": 0, "torch": False}, proc.stderr[-2000:]
    answer = json.loads(answers[0])
    assert answer["verdict"] in ("species", "not_sure", "not_a_flower") and "typicality" in answer
