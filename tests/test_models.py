import pytest
import torch

from flowers_core.training.models import ARCHS, AttentionHead, Ensemble, WeightsUnavailable, create_model, load_by_order


def test_lite0_offline_imagenet_weights_load_by_order():
    pretrained = create_model("efficientnet_lite0", pretrained=True)
    scratch = create_model("efficientnet_lite0", pretrained=False)
    a = pretrained.stages[0][0].weight
    b = scratch.stages[0][0].weight
    assert a.shape == b.shape and not torch.allclose(a, b)


def test_load_by_order_fails_loudly_on_mismatch():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4))
    with pytest.raises(ValueError, match="shape mismatch"):
        load_by_order(model, {"a": torch.zeros(4, 2), "b": torch.zeros(4)})
    with pytest.raises(ValueError, match="count mismatch"):
        load_by_order(model, {"a": torch.zeros(4, 3)})


def test_torchvision_models_without_weights_give_a_clear_error(monkeypatch):
    import torchvision.models as tvm

    def no_network(*a, **k):
        raise OSError("no internet")

    monkeypatch.setattr(tvm, "get_model", lambda name, weights=None: no_network() if weights else None)
    with pytest.raises(WeightsUnavailable, match="resnet50"):
        create_model("resnet50", pretrained=True)


def test_trunk_split_is_consistent_with_full_forward():
    model = create_model("efficientnet_lite0", pretrained=False, input_size=64).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        full = model(x)
        split = model.forward_from_trunk(model.trunk()(x))
    assert full.shape == (2, 102)
    assert torch.allclose(full, split, atol=1e-5)


def test_frozen_trunk_keeps_weights_and_bn_statistics():
    model = create_model("efficientnet_lite0", pretrained=False, input_size=32)
    model.freeze_trunk()
    model.train()
    assert not any(p.requires_grad for p in model.trunk().parameters())
    assert all(p.requires_grad for p in model.trainable().parameters())
    assert not any(m.training for m in model.trunk().modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert model.head.training and model.stages[-1].training


def test_attention_head_exposes_a_map_in_unit_interval():
    head = AttentionHead(8, 5)
    fmap = torch.randn(2, 8, 4, 4)
    att = head.attention(fmap)
    assert att.shape == (2, 1, 4, 4) and (att > 0).all() and (att < 1).all()
    assert head(fmap).shape == (2, 5)
    # pooling is attention-weighted: a map focused on one cell reproduces that cell's features
    with torch.no_grad():
        head.score.weight.zero_()
        head.score.bias.fill_(-30)
    assert torch.allclose(head.attention(fmap), torch.full_like(att, torch.sigmoid(torch.tensor(-30.0)).item()))


def test_ensemble_averages_probabilities():
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    out = Ensemble([a, b])(x)
    expected = (a(x).softmax(-1) + b(x).softmax(-1)) / 2
    assert torch.allclose(out.softmax(-1), expected, atol=1e-6)


def test_ensemble_runs_a_shared_frozen_trunk_once():
    torch.manual_seed(0)
    a = create_model("efficientnet_lite0", "linear", 5, pretrained=False, input_size=32).eval()
    b = create_model("efficientnet_lite0", "attention", 5, pretrained=False, input_size=32).eval()
    c = create_model("efficientnet_lite0", "linear", 5, pretrained=False, input_size=32).eval()  # other trunk weights
    b.trunk().load_state_dict(a.trunk().state_dict())
    ens = Ensemble([a, b, c]).eval()
    assert ens.trunk_source == [0, 0, 2]
    calls = []
    for m in (a, b, c):
        m.stages[0].register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = ens(x)
        expected = sum(m(x).softmax(-1) for m in (a, b, c)) / 3
    assert torch.allclose(out.softmax(-1), expected, atol=1e-5)
    assert len(calls) == 2 + 3  # ensemble: the shared trunk once + c's; then the reference: 3


def test_registry_lists_the_documented_architectures():
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "resnet50",
            "mobilenet_v3_large"} <= set(ARCHS)


@pytest.mark.parametrize("head", ["linear", "attention"])
def test_logits_and_features_are_the_forward_and_what_the_classifier_reads(head):
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", head, 5, pretrained=False, input_size=32).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        logits, features = model.logits_and_features(x)
        fmap = model.feature_map(x)
        expected = (fmap.mean((2, 3)) if head == "linear"
                    else (fmap * model.head.attention(fmap)).sum((2, 3)) / model.head.attention(fmap).sum((2, 3)))
        assert torch.allclose(logits, model(x), atol=1e-5)
        assert torch.allclose(features, expected, atol=1e-5)
        assert torch.allclose(model.head.fc(features), logits, atol=1e-5)


def test_the_ensemble_gives_its_vote_and_every_members_features():
    torch.manual_seed(0)
    a = create_model("efficientnet_lite0", "linear", 5, pretrained=False, input_size=32).eval()
    b = create_model("efficientnet_lite0", "attention", 5, pretrained=False, input_size=32).eval()
    c = create_model("efficientnet_lite0", "linear", 5, pretrained=False, input_size=32).eval()  # its own trunk
    b.trunk().load_state_dict(a.trunk().state_dict())  # a shared trunk: its pass is shared too
    ens = Ensemble([a, b, c], temperatures=[0.5, 2.0, 1.0]).eval()
    assert ens.shares_trunk == [True, True, False]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        vote, features = ens.logits_and_member_features(x)
        assert torch.allclose(vote, ens(x), atol=1e-6)
        assert len(features) == 3
        for member, f in zip((a, b, c), features):
            assert torch.allclose(f, member.logits_and_features(x)[1], atol=1e-5)
