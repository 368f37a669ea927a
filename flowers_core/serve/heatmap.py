"""Heatmaps without torch: the ``Explanation`` every map is drawn from, its colours and overlay, and the answering
model's own map, read from the INT8 student's ONNX file.

The INT8 file outputs its **class activation maps** (``localise.CLASS_MAPS_OUTPUT``: the classifier's weights of
each class applied at every cell of the last feature map, ``[B, classes, h, w]``; the localisation stage crops
around them). For a classifier that reads the global average of that feature map through one linear layer, the
map of class c is the last layer's Grad-CAM: Grad-CAM weighs channel k by the mean gradient of the score over the
cells, which is ``W[c, k] / (h·w)``, so ``Σ_k weight_k · A_k = (W[c] · A) / (h·w)``, the class map up to a scale
that the normalisation removes (Zhou et al. 2016; Selvaraju et al. 2017, §3.1). ``class_activation_map`` draws it
the way ``explain.maps.gradcam`` and pytorch-grad-cam draw Grad-CAM (ReLU, min-max, bilinear up to the view) and a
test checks the two agree; ``bench.explanations --first-map`` measures the INT8 map against pytorch-grad-cam's
``GradCAM`` of the fp32 twin on test images."""
from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from .localise import CLASS_MAPS_OUTPUT
from .preprocess import Preprocess

FIRST_MAP = "Class activation map"  # the method name of the answering model's own map
CAM_METHODS = ("Grad-CAM", "Grad-CAM++", "EigenCAM")  # the gradient methods (``explain.maps.gradcam``: torch)


@dataclass
class Explanation:
    method: str
    view: np.ndarray  # uint8 [H, W, 3]: the crop the model saw
    heatmap: np.ndarray  # float32 [H, W] in [0, 1]
    target: int | None  # class explained (None: class-agnostic, e.g. EigenCAM / attention)
    note: str = ""

    def overlay(self, opacity: float = 0.5) -> np.ndarray:
        return overlay(self.view, self.heatmap, opacity)

    def colored(self) -> np.ndarray:
        return colorize(self.heatmap)


def unit(cam: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] with pytorch-grad-cam's epsilon (a flat map becomes all 0)."""
    cam = cam - cam.min()
    return cam / (1e-7 + cam.max())


def normalise(heat: np.ndarray) -> np.ndarray:
    heat = np.nan_to_num(np.asarray(heat, dtype=np.float32))
    lo, hi = float(heat.min()), float(heat.max())
    return (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)


def upsampled(cam: np.ndarray, size: int) -> np.ndarray:
    """A feature-grid map [h, w] as a heatmap of the ``size`` × ``size`` view: ReLU, min-max, bilinear, min-max (the
    steps and order of ``explain.maps.gradcam`` and pytorch-grad-cam's ``scale_cam_image``)."""
    return unit(cv2.resize(np.float32(unit(np.maximum(cam, 0))), (size, size)))


def colorize(heat: np.ndarray) -> np.ndarray:
    """[H, W] in [0, 1] -> uint8 RGB with the JET colormap (blue = low, red = high)."""
    bgr = cv2.applyColorMap(np.uint8(255 * np.clip(heat, 0, 1)), cv2.COLORMAP_JET)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def overlay(view: np.ndarray, heat: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """Blend the coloured heatmap over the image; ``opacity`` 0 = image only, 1 = heatmap only."""
    opacity = float(np.clip(opacity, 0.0, 1.0))
    blend = (1 - opacity) * view.astype(np.float32) + opacity * colorize(heat).astype(np.float32)
    return np.clip(blend, 0, 255).astype(np.uint8)


def to_png(arr: np.ndarray, scale: int = 1) -> bytes:
    im = Image.fromarray(arr)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def class_maps(session, views: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    """The class activation maps ``[B, classes, h, w]`` of uint8 views ``[B, H, W, 3]`` from an ONNX session that
    outputs them (the INT8 student's)."""
    batch = np.ascontiguousarray(preprocess.normalize_array(np.asarray(views).transpose(0, 3, 1, 2)))
    return session.outputs(batch, [CLASS_MAPS_OUTPUT])[CLASS_MAPS_OUTPUT]


def class_activation_map(session, view: np.ndarray, preprocess: Preprocess, target: int,
                         note: str = "") -> Explanation:
    """The map of class ``target`` on the uint8 ``view`` the model saw, drawn as Grad-CAM is (``upsampled``)."""
    cam = class_maps(session, view[None], preprocess)[0, int(target)]
    return Explanation(FIRST_MAP, view, upsampled(cam, view.shape[0]), int(target), note)
