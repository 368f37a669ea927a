"""How far a heatmap can be trusted: does hiding what it marks change the model's answer?

A heatmap claims "these pixels drove the answer". ROAD (RemOve And Debias, Rong et al. 2022, as shipped in
pytorch-grad-cam's ``metrics.road``) tests the claim on the photo itself: the pixels a map marks most are
hidden (filled in from their neighbours by the library's noisy linear imputer, so the hole itself does not look
like a clue) and the model's confidence in the explained class is measured again.

- *most-relevant first*: hide the top share of the map; a faithful map makes the confidence fall a lot;
- *least-relevant first*: hide the bottom share; a faithful map leaves the confidence about where it was;
- *combined* (the library's ``ROADCombined``): the mean over shares of (least-first − most-first) / 2,
  in probability points: higher is more faithful, 0 is a map that ranks the pixels no better than chance.

The same is measured for random maps of the same photo (coarse noise on the model's own feature-map grid,
upsampled the same way as a class map, so both hide blobs of similar size; per-pixel noise would hide scattered
pixels that the imputer restores almost perfectly, an unfairly weak baseline). A map is judged against them.

The sanity check (Adebayo et al. 2018, "Sanity checks for saliency maps"): the rank correlation between a
method's map on the trained model and on the same model with its trained layers re-initialised, from the head
down. A map that barely changes does not depend on what the model learnt.

The library's perturbations (``RemoveMostRelevantFirst`` / ``RemoveLeastRelevantFirst`` with
``NoisyLinearImputer``) build the hidden photos; the model is then run here on all of them in one batch rather
than through ``PerturbationConfidenceMetric``, which classifies the untouched photo again for every share and
every map (the same numbers at several times the cost). Ties in a map (LIME leaves most superpixels at 0) are
broken by a tiny seeded jitter: the library thresholds at a percentile with ``<``, which with ties hides
everything or nothing instead of the share asked for.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from ..serve.road import (  # noqa: F401  (the report's names: one definition, torch-free, in serve.road)
    MARGIN,
    RANDOM_DRAWS,
    SENTENCE_SHARE,
    SHARES,
    Faithfulness,
    RoadCurve,
    centre_blob,
    random_map,
    unique_ranks,
)
from ..training.transforms import normalize


def _road_classes():
    # pytorch-grad-cam's package import pulls scikit-learn and scipy (~3-5 s cold): only when a score is asked for
    from pytorch_grad_cam.metrics.perturbation_confidence import RemoveLeastRelevantFirst, RemoveMostRelevantFirst
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    return RemoveMostRelevantFirst, RemoveLeastRelevantFirst, NoisyLinearImputer


def hidden_views(x: torch.Tensor, heatmap: np.ndarray, shares=SHARES, seed: int = 0) -> torch.Tensor:
    """[2 × len(shares), C, H, W]: ``x`` (one normalised image [1, C, H, W] or [C, H, W]) with the most-marked
    share hidden, for each share, then the least-marked share hidden, for each share (ROAD's imputation)."""
    most_first, least_first, imputer = _road_classes()
    image = (x[0] if x.dim() == 4 else x).detach().cpu().float()
    ranks = unique_ranks(heatmap, seed)
    ranks = (ranks - ranks.min()) / (ranks.max() - ranks.min() or 1.0)  # the library inverts with 1 - map
    mask = torch.from_numpy(ranks)
    out = []
    with torch.random.fork_rng(devices=[]):  # the imputer's noise, seeded, without touching the caller's stream
        torch.manual_seed(seed)
        for order in (most_first, least_first):
            for share in shares:
                out.append(order(100.0 * (1.0 - share), imputer())(image, mask).float())
    return torch.stack(out)


@torch.no_grad()
def confidences(model, batch: torch.Tensor, target: int, temperature: float = 1.0, chunk: int = 8) -> np.ndarray:
    """The model's probability of ``target`` for each image of ``batch`` (softmax of logits / temperature)."""
    out = []
    for i in range(0, len(batch), chunk):
        logits = torch.as_tensor(model(batch[i:i + chunk])).float()
        out.append(torch.softmax(logits / float(temperature), -1)[:, int(target)].numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def edge_map(view: np.ndarray, blur: int = 9) -> np.ndarray:
    """The photo's edges (Sobel magnitude of its grey image, blurred): marks texture, knows no model."""
    grey = cv2.cvtColor(np.ascontiguousarray(view, dtype=np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    mag = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    mag = cv2.GaussianBlur(mag, (blur, blur), 0)
    return mag / (mag.max() or 1.0)


def road_curve(model, x: torch.Tensor, heatmap: np.ndarray, target: int, shares=SHARES, temperature: float = 1.0,
               seed: int = 0) -> RoadCurve:
    conf = confidences(model, hidden_views(x, heatmap, shares, seed), target, temperature)
    k = len(shares)
    return RoadCurve(tuple(shares), conf[:k], conf[k:])


def random_curve(model, x: torch.Tensor, target: int, grid: int, shares=SHARES, temperature: float = 1.0,
                 draws: int = RANDOM_DRAWS, seed: int = 0) -> RoadCurve:
    """The mean ROAD curve of ``draws`` random maps of the same photo (the baseline a map is judged against)."""
    size = x.shape[-1]
    return RoadCurve.mean([road_curve(model, x, random_map(size, grid, seed + 1000 + d), target, shares, temperature,
                                      seed + d) for d in range(draws)])


def view_tensor(model, view: np.ndarray) -> torch.Tensor:
    """The normalised [1, 3, H, W] input of the uint8 crop ``view`` (``explain.Explanation.view``)."""
    return normalize(model.preprocess, torch.from_numpy(np.ascontiguousarray(view)).permute(2, 0, 1)[None])


def feature_grid(model, x: torch.Tensor) -> int:
    """The side of the model's last feature map (the resolution of its class maps)."""
    with torch.no_grad():
        return int(model.feature_map(x).shape[-1])


def score(model, view: np.ndarray, heatmap: np.ndarray, target: int, temperature: float = 1.0,
          shares=SHARES, seed: int = 0, random: RoadCurve | None = None) -> Faithfulness:
    """The faithfulness of ``heatmap`` (for class ``target``) on the crop ``view`` the model saw.

    ``random``: the photo's random-map curve when already measured (it depends on the photo, model and class,
    not on the map: the report shares it between methods)."""
    x = view_tensor(model, view)
    conf = float(confidences(model, x, target, temperature)[0])
    if random is None:
        random = random_curve(model, x, target, feature_grid(model, x), shares, temperature, seed=seed)
    return Faithfulness(int(target), conf, road_curve(model, x, heatmap, target, shares, temperature, seed), random)


# ---------------------------------------------------------------------------------------------
# The model-randomisation sanity check
# ---------------------------------------------------------------------------------------------
@dataclass
class Randomised:
    """A private copy of a FlowerNet with its trained layers re-initialised from the head down."""

    model: torch.nn.Module
    layers: list[str] = field(default_factory=list)  # what was re-initialised, head first


def trained_layers_head_down(model) -> list[tuple[str, torch.nn.Module]]:
    """The head, then the stages after the frozen trunk, last first (Adebayo's cascading order)."""
    layers = [("head", model.head)]
    first = int(getattr(model, "frozen_stages", 0))
    layers += [(f"stages.{i}", model.stages[i]) for i in range(len(model.stages) - 1, first - 1, -1)]
    return layers


def randomised_copy(model, seed: int = 0, depth: int | None = None) -> Randomised:
    """A deep copy of ``model`` (the shared one is never touched) with its ``depth`` top trained layers (all
    when None) re-initialised by their own ``reset_parameters`` (PyTorch's default initialisation)."""
    twin = copy.deepcopy(model).eval()
    chosen = trained_layers_head_down(twin)[:depth]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _, layer in chosen:
            for module in layer.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
    return Randomised(twin, [name for name, _ in chosen])


def rank_correlation(a: np.ndarray, b: np.ndarray, side: int = 56) -> float:
    """Spearman's rank correlation of two heatmaps, compared at ``side`` × ``side`` (they are smooth: more
    pixels add no information, only cost). A constant map ranks nothing: 0 against any other map (Grad-CAM of a
    randomised model is often all 0 after its ReLU: it changed completely), 1 against an equal one."""
    from scipy.stats import spearmanr

    small = [cv2.resize(np.asarray(m, np.float32), (side, side), interpolation=cv2.INTER_AREA).ravel() for m in (a, b)]
    if min(float(np.ptp(s)) for s in small) == 0:
        return 1.0 if np.array_equal(small[0], small[1]) else 0.0
    return float(spearmanr(small[0], small[1]).statistic)
