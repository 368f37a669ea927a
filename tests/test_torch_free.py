"""The app's common paths never load torch: a fresh process classifies, opens Explain's first map and its check,
compares every model and runs the live latency measurement, and holds no torch module at the end (torch is ~337 MB
resident and the CUDA build maps more; a free host's memory is 2.7 GB). Only a method that needs gradients loads it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowers_core.results import common

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")

COMMON_PATH = """
import json, sys
from streamlit.testing.v1 import AppTest
seen = {}
def torch_now():
    return sorted(m for m in ("torch", "torchvision", "timm", "pytorch_grad_cam") if m in sys.modules)
at = AppTest.from_file(sys.argv[1], default_timeout=300).run()
at.button(key="classify_ex_0").click().run()
seen["classify"] = torch_now()
at.switch_page("app_pages/explain.py").run()
seen["explain"] = torch_now()
maps = [c.value for c in at.caption if c.value.startswith("Class activation map")]
checks = [m.value for m in at.markdown if "this map marks most" in m.value]
at.switch_page("app_pages/compare.py").run()
seen["compare"] = torch_now()
at.switch_page("app_pages/latency.py").run()
at.button(key="lat_run").click().run()
seen["latency"] = torch_now()
runs_on = sorted({str(v) for t in at.table for v in t.value.get("runs on", [])})
at.switch_page("app_pages/explain.py").run()
at.toggle(key="explain_more").set_value(True).run()
seen["gradients"] = torch_now()
print(json.dumps({"exceptions": [e.message for e in at.exception], "seen": seen, "maps": len(maps),
                  "checks": len(checks), "runs_on": runs_on}))
"""


@pytest.mark.slow
def test_the_common_paths_never_load_torch(app_artifacts):
    if not all(common.has_weights(m, app_artifacts) for m in ("student_int8", "ensemble")):
        pytest.skip("the shipped INT8 student and ensemble are needed")
    env = {**os.environ, "FLOWERS_ARTIFACTS": str(app_artifacts)}
    proc = subprocess.run([sys.executable, "-c", COMMON_PATH, APP], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["exceptions"] == [], result
    seen = result["seen"]
    assert seen["classify"] == seen["explain"] == seen["compare"] == seen["latency"] == [], seen
    assert result["checks"] >= 1, "Explain's first map comes with its check"
    assert result["runs_on"] == ["onnxruntime"], result["runs_on"]
    assert "torch" in seen["gradients"], "the methods that need gradients load torch when asked for"


PACKAGE_FACE = """
import json, sys
import flowers_core
heavy = sorted(m for m in ("torch", "onnxruntime") if m in sys.modules)
import flowers_core.shipped.paths
heavy_paths = sorted(m for m in ("torch", "onnxruntime") if m in sys.modules)
import flowers_core.open_model
import flowers_core.serve.predictor
face = [flowers_core.open_predictor is flowers_core.open_model.open_predictor,
        flowers_core.Predictor is flowers_core.serve.predictor.Predictor]
from flowers_core import Predictor, open_predictor
face.append(open_predictor is flowers_core.open_model.open_predictor and Predictor is flowers_core.Predictor)
print(json.dumps({"heavy": heavy, "heavy_paths": heavy_paths, "face": face, "torch": "torch" in sys.modules}))
"""


def test_the_package_face_is_lazy():
    """``import flowers_core`` (and its paths module) loads neither torch nor onnxruntime; ``open_predictor`` and
    ``Predictor`` are the package's face, the very objects of ``open_model`` and ``serve.predictor``."""
    proc = subprocess.run([sys.executable, "-c", PACKAGE_FACE], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [] and result["heavy_paths"] == [], result
    assert result["face"] == [True, True, True], result
    assert result["torch"] is False, "opening the face does not import torch"
