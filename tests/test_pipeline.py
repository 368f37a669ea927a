import json

import numpy as np

from flowers_core import artifacts as art


def test_levels_train_and_record_everything(trained_artifacts):
    manifest = art.read_manifest(trained_artifacts)
    models = manifest["models"]["stratified"]
    assert set(models) >= {"level1", "level2", "level3", "ensemble"}
    assert len(manifest["classes"]) == 102
    for name in ("level1", "level2", "level3"):
        entry = models[name]
        assert (trained_artifacts / entry["weights"]).is_file()
        log = [json.loads(l) for l in (trained_artifacts / entry["log"]).read_text().splitlines()]
        assert len(log) >= 1 and {"train_loss", "val_acc"} <= set(log[0])
        probs, ids, labels = art.load_probs(entry["probs"]["test"], trained_artifacts)
        assert probs.shape == (len(ids), 102) and np.allclose(probs.sum(1), 1, atol=1e-2)
        assert 0 <= entry["metrics"]["test"]["top1"] <= 1
    split = json.loads((trained_artifacts / "splits" / "stratified.json").read_text())
    assert {len(v) for v in split.values()} and sum(len(v) for v in split.values()) == 1020


def test_saved_weights_reload_to_the_same_predictions(trained_artifacts):
    import torch

    model = art.load_model("level3", root=trained_artifacts)
    x = torch.randn(2, 3, 32, 32)
    again = art.load_model("level3", root=trained_artifacts)
    assert torch.allclose(model(x), again(x), atol=1e-5)
