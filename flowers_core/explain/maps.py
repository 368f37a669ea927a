"""Where a model looks: Grad-CAM family overlays, the Level-3 attention map, and LIME superpixels.

Every function takes a ``FlowerNet`` and an RGB PIL image and returns an ``Explanation`` on the
exact centre crop the model classifies (``model_view``). A model shared across app sessions
(``st.cache_resource``) is never mutated and never copied: Grad-CAM needs gradients only from the
class score back to the last stage's feature map, not through the backbone (a deep copy of the model
and a full backward pass made it slow and memory-hungry). LIME classifies its perturbed images in
small batches (``LIME_BATCH``) and reports its progress.
"""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch
from PIL import Image

from ..serve.heatmap import CAM_METHODS, Explanation, colorize, overlay, to_png  # noqa: F401  (drawn torch-free, in serve)
from ..serve.heatmap import normalise as _normalise
from ..serve.heatmap import unit as _unit
from ..serve.lime_map import LIME_BATCH, lime_map  # noqa: F401  (LIME's batch: one definition)
from ..serve.preprocess import Preprocess
from ..training.transforms import normalize, tensor_from_pil


def model_view(img: Image.Image, preprocess: Preprocess) -> np.ndarray:
    """The uint8 centre crop that ``preprocess.array_from_pil`` normalises (same geometry)."""
    return preprocess.eval_crop(img.convert("RGB")).copy()


def _cam_weights(method: str, fmap: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """Per-channel weights [C] of the feature map [C, h, w] for ``method`` (as pytorch-grad-cam defines them)."""
    if method == "Grad-CAM":
        return grads.mean(axis=(1, 2))
    g2 = grads ** 2  # Grad-CAM++ (Chattopadhay et al. 2018), the library's closed form
    alpha = g2 / (2 * g2 + fmap.sum(axis=(1, 2))[:, None, None] * g2 * grads + 1e-6)
    alpha = np.where(grads != 0, alpha, 0)
    return (np.maximum(grads, 0) * alpha).sum(axis=(1, 2))


def _eigen_projection(fmap: np.ndarray) -> np.ndarray:
    """EigenCAM: the centred feature map projected on its first principal component, [h, w]."""
    flat = np.nan_to_num(fmap).reshape(fmap.shape[0], -1).T
    flat = flat - flat.mean(axis=0)
    vt = np.linalg.svd(flat, full_matrices=True)[2]
    return (flat @ vt[0]).reshape(fmap.shape[1:])


def gradcam(model, img: Image.Image, method: str = "Grad-CAM", target: int | None = None,
            versus: int | None = None) -> Explanation:
    """CAM of ``target`` (default: the predicted class) at the model's last backbone stage; with ``versus``, of
    ``target``'s score minus ``versus``'s: what makes the model prefer one species to the other (pytorch-grad-cam's
    ``FinerWeightedTarget`` with one comparison class and alpha 1, less its softmax weighting, which cancels).

    Computed here rather than through pytorch-grad-cam's classes (same formulas and scaling; the tests compare
    the two): the library hooks the model, and importing it takes ~3 s of a cold Explain (scikit-learn, scipy).
    The shared model is neither hooked nor copied: the backbone runs without gradients, and the gradient of the
    class score is taken with respect to its output only, through the head with detached weights (no ``.grad``
    on the shared weights, no backward pass through the backbone)."""
    if method not in CAM_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {CAM_METHODS}")
    pre = model.preprocess
    x = tensor_from_pil(pre, img)
    with torch.no_grad():
        fmap = model.feature_map(x).contiguous()
    with torch.enable_grad():
        fmap.requires_grad_(True)
        weights = {k: v.detach() for k, v in model.head.named_parameters()}
        logits = torch.func.functional_call(model.head, weights, (fmap,))
        if target is None:
            target = int(logits[0].argmax())
        score = logits[0, int(target)] - (logits[0, int(versus)] if versus is not None else 0)
        grads = None if method == "EigenCAM" else torch.autograd.grad(score, fmap)[0][0].numpy()
    activations = fmap.detach()[0].numpy()
    if method == "EigenCAM":
        cam = _eigen_projection(activations)
    else:
        cam = (_cam_weights(method, activations, grads)[:, None, None] * activations).sum(axis=0)
    size = pre.input_size
    heat = _unit(cv2.resize(np.float32(_unit(np.maximum(cam, 0))), (size, size)))
    note = ("EigenCAM does not depend on the species: it shows the strongest pattern the network sees."
            if method == "EigenCAM" else "")
    return Explanation(method, model_view(img, pre), heat, None if method == "EigenCAM" else int(target), note)


@torch.no_grad()
def attention_map(model, img: Image.Image) -> Explanation:
    """Level 3: the attention head's own spatial weights (what its pooling averages over)."""
    if not getattr(model, "attention_available", False):
        raise ValueError("this model has no attention head (only Level 3 has one)")
    pre = model.preprocess
    a = model.head.attention(model.feature_map(tensor_from_pil(pre, img)))  # [1, 1, h, w]
    up = torch.nn.functional.interpolate(a, size=(pre.input_size, pre.input_size), mode="bilinear",
                                         align_corners=False)[0, 0].numpy()
    return Explanation("Attention", model_view(img, pre), _normalise(up), None,
                       f"The model's attention ranges from {float(a.min()):.2f} to {float(a.max()):.2f} over a "
                       f"{a.shape[-2]} × {a.shape[-1]} grid of the photo; the colours stretch that range from blue "
                       "to red.")


def lime(model, img: Image.Image, target: int | None = None, num_samples: int = 150,
         num_features: int = 8, seed: int = 0, progress: Callable[[int, int], None] | None = None) -> Explanation:
    """LIME (``serve.lime_map``) of a torch network on its view of ``img``: the report's LIME."""
    pre = model.preprocess

    @torch.no_grad()
    def classify(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).permute(0, 3, 1, 2)
        return torch.softmax(torch.as_tensor(model(normalize(pre, x.clamp(0, 255)))).float(), -1).numpy()

    return lime_map(classify, model_view(img, pre), target, num_samples, num_features, seed, progress)
