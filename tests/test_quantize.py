"""Level-5 INT8: the static QDQ model quantises convolutions and the classifier, agrees with its
fp32 twin, and the exported file reloads and predicts in a fresh process without training code."""
import copy
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from flowers_core.serve.decode import load_image
from flowers_core.serve.runtime import OnnxSession
from flowers_core.shipped import manifest as art
from flowers_core.training.data import load_index
from flowers_core.training.models import create_model
from flowers_core.training.onnx_edits import quantised_op_counts
from flowers_core.training.quantise import (
    OUTPUT_NAME,
    TRUNK_OUTPUT,
    U8S8_PAIR_LIMIT,
    _LogitsAndTrunk,
    export_onnx,
    quantise_onnx_static,
    quantised_trunk,
    u8s8_pair_bound,
)
from flowers_core.training.recipes import STUDENT
from flowers_core.training.transforms import tensor_from_pil
from flowers_core.training.weights import OnnxClassifier


def _synthetic_batch(index, preprocess, ids):
    return torch.cat([tensor_from_pil(preprocess, load_image(index.path(i))) for i in ids])


def test_int8_quantises_every_conv_and_the_classifier(student_artifacts):
    entry = art.model_entry("student_int8", "stratified", student_artifacts)
    ops = quantised_op_counts(student_artifacts / entry.file)
    assert ops["Conv"]["total"] > 30 and ops["Conv"]["int8"] == ops["Conv"]["total"]
    linear = ops.get("Gemm", ops.get("MatMul"))
    assert linear["int8"] == linear["total"] >= 1
    graph = onnx.load(str(student_artifacts / entry.file)).graph
    int8_inits = [t for t in graph.initializer if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)]
    assert len(int8_inits) >= ops["Conv"]["total"]  # the weights are stored as 8-bit integers


def test_static_int8_top1_agrees_with_fp32_on_a_confident_model(synthetic_root, tmp_path):
    """The synthetic student is barely trained (near-uniform logits: any noise flips its argmax), so
    agreement is checked on an ImageNet Lite0 whose head is set in closed form to the class means of
    the batch's features: real margins, as a trained model has."""
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", "linear", 102, input_size=64).eval()
    index = load_index(synthetic_root)
    ids = list(range(1, 97))
    batch = _synthetic_batch(index, model.preprocess, ids)
    labels = torch.as_tensor(index.label_of(ids))
    with torch.no_grad():
        feats = model.feature_map(batch).mean((2, 3))
        centred = feats - feats.mean(0)
        weight = torch.zeros(102, feats.shape[1])
        for c in labels.unique():
            weight[c] = torch.nn.functional.normalize(centred[labels == c].mean(0), dim=0)
        model.head.fc.weight.copy_(weight * 20)
        model.head.fc.bias.copy_(-(weight * 20) @ feats.mean(0))
        fp32_pred = model(batch).argmax(-1)
    assert (fp32_pred == labels).float().mean() > 0.5  # the fp32 reference is a real classifier
    calib = _synthetic_batch(index, model.preprocess, range(100, 164))  # other images
    # u8u8: full-range u8s8 kernels saturate on AVX2-only CPUs, so this check would depend on the machine
    int8 = quantise_onnx_static(export_onnx(model, tmp_path / "fp32.onnx", 64), tmp_path / "int8.onnx", calib,
                                types="u8u8")
    int8_pred = OnnxClassifier(int8, threads=1)(batch).argmax(-1)
    agree = (int8_pred == fp32_pred).float().mean().item()
    assert agree >= 0.9, agree


def test_the_quantised_trunk_is_the_int8_files_and_does_not_depend_on_the_trained_layers(synthetic_root, tmp_path):
    """``quantised_trunk`` gives what the INT8 file's first trained layer reads: exposing the trunk's output
    leaves the quantised network's logits unchanged, and training the layers after the trunk does not change
    the trunk's quantisation (so features taken before training are those of the file made after it)."""
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", "linear", 102, input_size=64).eval()
    index = load_index(synthetic_root)
    calib = _synthetic_batch(index, model.preprocess, range(1, 33))
    batch = _synthetic_batch(index, model.preprocess, range(40, 48))
    config = STUDENT.quantization_trials[0]
    trunk = quantised_trunk(model, calib, config, tmp_path / "a", threads=1)(batch)

    both = OnnxSession(quantise_onnx_static(
        export_onnx(_LogitsAndTrunk(model), tmp_path / "both.onnx", 64, output_names=(OUTPUT_NAME, TRUNK_OUTPUT)),
        tmp_path / "both_int8.onnx", calib, **config), threads=1).outputs(batch.numpy())
    shipped_way = quantise_onnx_static(export_onnx(model, tmp_path / "one.onnx", 64), tmp_path / "one_int8.onnx", calib,
                                       **config)
    assert np.array_equal(both[OUTPUT_NAME], OnnxSession(shipped_way, threads=1)(batch.numpy()))
    assert np.array_equal(both[TRUNK_OUTPUT], trunk.numpy())

    retrained = copy.deepcopy(model)
    with torch.no_grad():
        for p in [*retrained.stages[retrained.frozen_stages:].parameters(), *retrained.head.parameters()]:
            p.mul_(1.5).add_(0.01)
    assert torch.equal(quantised_trunk(retrained, calib, config, tmp_path / "b", threads=1)(batch), trunk)
    with torch.no_grad():
        fp32 = model.trunk()(batch)
    assert trunk.shape == fp32.shape
    assert 0 < ((trunk - fp32).norm() / fp32.norm()).item() < 0.5  # quantised: near the fp32 trunk, not equal
    assert not list(tmp_path.glob("[ab]/*.onnx"))  # the session holds the model; no file is left behind


def test_onnx_export_matches_the_torch_model(tmp_path):
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", "linear", 102, pretrained=False, input_size=32).eval()
    path = export_onnx(model, tmp_path / "m.onnx", 32)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(OnnxClassifier(path, threads=1)(x), model(x), atol=1e-4)


def test_exported_student_reloads_in_a_fresh_process_without_training_code(student_artifacts, synthetic_root):
    entry = art.model_entry("student_int8", "stratified", student_artifacts)
    image = str(load_index(synthetic_root).path(3))
    # only onnxruntime + the shared preprocessing: the file is self-contained
    script = (
        "import json, sys, numpy as np, onnxruntime as ort\n"
        "from flowers_core.serve.decode import load_image\n"
        "from flowers_core.serve.preprocess import Preprocess\n"
        "p = json.loads(sys.argv[3])\n"
        "pre = Preprocess(input_size=p['input_size'], mean=tuple(p['mean']), std=tuple(p['std']))\n"
        "s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
        "x = pre.array_from_pil(load_image(sys.argv[2]))\n"
        "out = s.run(None, {s.get_inputs()[0].name: x})[0]\n"
        "assert 'timm' not in sys.modules  # no network-building code was needed\n"
        "print(json.dumps({'shape': list(out.shape), 'argmax': int(out.argmax())}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(student_artifacts / entry.file), image,
                           json.dumps(entry.preprocess)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads(proc.stdout)
    assert row["shape"] == [1, 102]
    cli = subprocess.run([sys.executable, "-m", "flowers_core.predict", "--model", "student", "--artifacts",
                          str(student_artifacts), image], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr[-2000:]
    pred = json.loads(cli.stdout)
    assert pred["class_id"] == row["argmax"] and isinstance(pred["uncertain"], bool)


def test_ptq_trials_are_portable_across_x86_cpus(synthetic_root, tmp_path):
    """The trials run on one CPU; full-range u8s8 is exact only where VNNI exists and saturates on
    AVX2-only CPUs (an int16 pair of products), so every u8s8 configuration train.level5 may ship keeps each
    pair of weight codes within the bound, and the 8-bit one does use more than 7 bits where it may."""
    from onnx import numpy_helper

    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", "linear", 102, input_size=64).eval()
    calib = _synthetic_batch(load_index(synthetic_root), model.preprocess, range(1, 17))
    fp32 = export_onnx(model, tmp_path / "fp32.onnx", 64)
    full_range = quantise_onnx_static(fp32, tmp_path / "full.onnx", calib, types="u8s8", reduce_range=False)
    assert u8s8_pair_bound(full_range) > U8S8_PAIR_LIMIT  # the check sees what saturates
    widened = [t for t in STUDENT.quantization_trials if t.get("saturation_free_8bit")]
    assert widened
    for i, trial in enumerate(STUDENT.quantization_trials):
        if trial["types"] != "u8s8":
            continue
        path = quantise_onnx_static(fp32, tmp_path / f"trial{i}.onnx", calib, **trial)
        assert u8s8_pair_bound(path) <= U8S8_PAIR_LIMIT, trial
    graph = onnx.load(str(tmp_path / f"trial{STUDENT.quantization_trials.index(widened[0])}.onnx")).graph
    codes = [numpy_helper.to_array(i) for i in graph.initializer if i.data_type == onnx.TensorProto.INT8]
    depthwise = [c for c in codes if c.ndim == 4 and c.shape[1] == 1]
    pointwise = [c for c in codes if c.ndim == 4 and c.shape[1] > 1 and c.shape[2:] == (1, 1)]
    assert depthwise and all(np.abs(c.astype(int)).max() == 127 for c in depthwise)  # full 8-bit
    assert max(np.abs(c.astype(int)).max() for c in pointwise) > 64  # wider than 7-bit somewhere
    with pytest.raises(ValueError):
        quantise_onnx_static(fp32, tmp_path / "bad.onnx", calib, types="u8u8", saturation_free_8bit=True)


def test_the_shipped_int8_file_records_that_it_cannot_saturate(student_artifacts):
    entry = art.model_entry("student_int8", "stratified", student_artifacts)
    q = entry.quantization
    assert q["u8s8_pair_bound"] == u8s8_pair_bound(student_artifacts / entry.file) <= q["u8s8_pair_limit"]


def test_the_backend_comparison_of_the_recorded_student_rebuilds_its_int8_file(student_artifacts, synthetic_root,
                                                                              tmp_path):
    """`train.level5 --compare-only`: the comparison's ONNX QDQ row is the shipped INT8 file remade from its
    recorded calibration and configuration, so it answers as the shipped file does on the same images."""
    import shutil

    from flowers_core.training.levels import Workspace
    from flowers_core.training.student_int8 import compare_shipped_int8_backends

    root = tmp_path / "artifacts"
    shutil.copytree(student_artifacts, root)
    compare_shipped_int8_backends("stratified", Workspace("stratified", synthetic_root, artifacts_root=root), root,
                                  threads=1, iters=2,
                                  backends=("fp32_torch", "onnx_qdq", "onnx_qdq_trunk_only", "onnx_qdq_trained_only"))
    comparison = art.read_manifest(root)["quantization_comparison"]["stratified"]
    rows = {r["backend"]: r for r in comparison["rows"]}
    int8 = art.model_entry("student_int8", "stratified", root)
    assert rows["onnx_qdq"]["config"] == int8.quantization["config"]
    n = comparison["n_images"]
    int8_answers, ids, labels = (a[:n] for a in art.load_probs(int8.probs["val"], root))
    fp32_probs = art.load_probs(art.model_entry("student", "stratified", root).probs["val"], root)[0][:n]
    fp32_answers, int8_answers = fp32_probs.argmax(1), int8_answers.argmax(1)
    # the tiny student is near chance: a few of its recorded top-2 probabilities are equal as stored, and there the
    # recorded argmax need not be the one the comparison's fresh fp32 logits give
    top2 = np.sort(fp32_probs, 1)[:, -2:]
    tied = top2[:, 0] == top2[:, 1]
    assert tied.mean() < 0.1
    assert rows["onnx_qdq"]["accuracy"] == pytest.approx((int8_answers == labels).mean(), abs=1e-6)
    assert rows["fp32_torch"]["accuracy"] == pytest.approx((fp32_answers == labels).mean(), abs=tied.mean() + 1e-6)
    agree_untied = ((int8_answers == fp32_answers) & ~tied).mean()
    assert agree_untied - 1e-6 <= rows["onnx_qdq"]["agreement_with_fp32"] <= agree_untied + tied.mean() + 1e-6
    assert rows["fp32_torch"]["agreement_with_fp32"] == 1.0
    assert "onnx_qdq" in (root / "reports" / "quantization.md").read_text()
    # the two partial files split the network between them: the trunk's convolutions, the trained ones and the classifier
    whole, trunk, trained = (rows[b]["int8_ops"] for b in ("onnx_qdq", "onnx_qdq_trunk_only", "onnx_qdq_trained_only"))
    assert whole["Conv"]["int8"] == whole["Conv"]["total"] == trunk["Conv"]["int8"] + trained["Conv"]["int8"]
    assert trunk["Conv"]["int8"] > trained["Conv"]["int8"] > 0
    linear = [ops.get("Gemm", ops.get("MatMul")) for ops in (trunk, trained)]
    assert linear[0]["int8"] == 0 and linear[1]["int8"] == linear[1]["total"] == 1
    assert all("error" not in r for r in rows.values())
