"""The typed manifest entry and the catalogue of shipped models."""
import json

from flowers_core.shipped import catalog
from flowers_core.shipped import manifest as art

RUNTIME_OF_FORMAT = {"safetensors": "torch", "ensemble": "ensemble", "onnx": "onnx"}  # manifest ``format`` -> ``runtime``


def test_a_manifest_entry_round_trips_and_keeps_what_it_does_not_type():
    recorded = {"name": "level9", "level": 9, "protocol": "stratified", "format": "safetensors",
                "preprocess": {"input_size": 224}, "weights": "models/level9.safetensors", "arch": "efficientnet_lite0",
                "head": "linear", "frozen_stages": 7, "train_config": {"lr": 0.01}, "best_epoch": 3,
                "metrics": {"val": {"top1": 0.5}, "test": {"top1": 0.4}}}
    entry = art.ModelEntry.from_dict(recorded)
    assert entry.details == {"train_config": {"lr": 0.01}, "best_epoch": 3}
    assert entry.top1("test") == 0.4 and entry.top1("train") is None
    assert entry.own_file() == "models/level9.safetensors" and entry.temperature == 1.0
    assert entry.entropy_threshold is None and entry.novelty is None
    assert entry.to_dict() == recorded  # None and empty typed fields are not written


def test_record_model_writes_the_entry_under_its_protocol(tmp_path):
    entry = art.ModelEntry(name="level1", level=1, protocol="official", format="onnx", preprocess={}, file="m.onnx")
    art.record_model(entry, tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["models"]["official"]["level1"] == entry.to_dict()
    assert art.model_entry("level1", "official", tmp_path) == entry
    assert art.model_files("level1", "official", tmp_path) == ["m.onnx"]


def test_the_catalogue_answers_every_list_the_code_needs():
    assert catalog.NAMES[0] == "level1" and catalog.PRODUCTION in catalog.NAMES and catalog.TEACHER in catalog.NAMES
    assert catalog.names(levels=(1, 2, 3)) == ["level1", "level2", "level3"]
    assert catalog.names(runtimes=("onnx",)) == [catalog.PRODUCTION]
    assert catalog.names(runtimes=("torch",), highest_first=True)[0] == catalog.fp32_twin(catalog.PRODUCTION)
    assert catalog.int8_twin(catalog.fp32_twin(catalog.PRODUCTION)) == catalog.PRODUCTION
    assert catalog.int8_twin("level1") is None and catalog.fp32_twin("level1") == "level1"
    assert all(catalog.produced_by(m).startswith("python -m train.") for m in catalog.NAMES)


def test_the_committed_manifest_runs_each_model_as_the_catalogue_says():
    """The catalogue declares how a model runs; the manifest records the file training wrote: they must agree."""
    for protocol, models in art.read_manifest().get("models", {}).items():
        for name, recorded in models.items():
            assert RUNTIME_OF_FORMAT[recorded["format"]] == catalog.get(name).runtime, (protocol, name)
