"""Builds the Confusions page's "why A and not B" pack (``python -m train.gallery --mistakes``): the Explain page's
Grad-CAM of the fp32 twin of the app's model, at the species each wrong test photo shows and at the one chosen, stored
as small maps (no photo); ``serve.mistakes`` reads it."""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from ..serve.decode import load_image
from ..serve.mistakes import MAP_SIZE
from ..shipped import catalog
from ..shipped import manifest as art
from ..shipped.paths import MISTAKE_MAPS, MISTAKE_MAPS_COMMAND
from ..shipped.splits import SHIPPED_PROTOCOL
from ..training.data import load_index
from ..training.transforms import tensor_from_pil
from ..training.weights import load_model
from . import maps as explain


def order_mistakes(probs: np.ndarray, labels: np.ndarray) -> list[int]:
    """Indices of the wrong rows, grouped by (true, predicted) pair: the most frequent pair first, pairs of
    equal count by their most confident mistake, and the most confident mistake first within a pair."""
    predicted = probs.argmax(-1)
    wrong = np.nonzero(predicted != labels)[0]
    pairs = list(zip(labels[wrong].tolist(), predicted[wrong].tolist()))
    confidence = probs[wrong, predicted[wrong]].tolist()
    counts = Counter(pairs)
    best = {}  # a pair's most confident mistake orders pairs of equal count
    for pair, c in zip(pairs, confidence):
        best[pair] = max(best.get(pair, 0.0), c)
    order = sorted(range(len(wrong)), key=lambda k: (-counts[pairs[k]], -best[pairs[k]], pairs[k], -confidence[k]))
    return [int(wrong[k]) for k in order]


def shrink_map(heat: np.ndarray, size: int = MAP_SIZE) -> np.ndarray:
    """A [H, W] heatmap in [0, 1] -> uint8 [size, size] (area average: no cell lost)."""
    heat = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32)), 0, 1)
    small = Image.fromarray(heat, mode="F").resize((size, size), Image.BOX)
    return np.clip(np.round(np.asarray(small) * 255), 0, 255).astype(np.uint8)


def build_mistake_maps(probs: np.ndarray, image_ids: np.ndarray, labels: np.ndarray,
                       load_photo: Callable[[int], Image.Image],
                       explain_class: Callable[[Image.Image, int], tuple[np.ndarray, np.ndarray]],
                       out_path, details: dict | None = None) -> dict:
    """Write the maps of every mistake in ``probs`` (the app's model's saved test results) to ``out_path``.

    ``load_photo(image_id)`` gives the photo; ``explain_class(photo, class_id)`` gives (heatmap [H, W] in
    [0, 1] of that class, the explained model's probabilities [classes]). Returns the pack's summary."""
    rows = order_mistakes(probs, labels)
    predicted = probs.argmax(-1)
    maps_true, maps_predicted, explained = [], [], []
    for i in rows:
        photo = load_photo(int(image_ids[i]))
        heat_true, p = explain_class(photo, int(labels[i]))
        heat_predicted, _ = explain_class(photo, int(predicted[i]))
        maps_true.append(shrink_map(heat_true))
        maps_predicted.append(shrink_map(heat_predicted))
        explained.append((float(p[labels[i]]), float(p[predicted[i]])))
    rows = np.asarray(rows, dtype=np.int64)
    n_pairs = len({(int(labels[i]), int(predicted[i])) for i in rows})
    summary = {"mistakes": len(rows), "pairs": n_pairs, "map_size": MAP_SIZE, "command": MISTAKE_MAPS_COMMAND,
               **(details or {})}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    empty = np.zeros((0, MAP_SIZE, MAP_SIZE), np.uint8)
    np.savez_compressed(
        out_path, image_ids=np.asarray(image_ids)[rows].astype(np.int32),
        true_ids=np.asarray(labels)[rows].astype(np.int16), predicted_ids=predicted[rows].astype(np.int16),
        p_true=probs[rows, labels[rows]].astype(np.float32) if len(rows) else np.zeros(0, np.float32),
        p_predicted=probs[rows, predicted[rows]].astype(np.float32) if len(rows) else np.zeros(0, np.float32),
        maps_true=np.stack(maps_true) if maps_true else empty,
        maps_predicted=np.stack(maps_predicted) if maps_predicted else empty,
        explained_p=np.asarray(explained, np.float32).reshape(-1, 2), summary=json.dumps(summary))
    return {**summary, "bytes": out_path.stat().st_size}


def build(data_root=None, artifacts_root=None, protocol: str = SHIPPED_PROTOCOL, app_model: str | None = None,
          method: str = "Grad-CAM") -> dict:
    """The pack for the app's model (``catalog.PRODUCTION``), explained through its fp32 twin with ``method``,
    from its saved test results and the dataset's photos (build time: torch and the dataset)."""
    app_model = app_model or catalog.PRODUCTION
    explained = catalog.fp32_twin(app_model) or app_model
    entry = art.model_entry(app_model, protocol, artifacts_root)
    probs, image_ids, labels = art.load_probs(entry.probs["test"], artifacts_root)
    index = load_index(data_root)
    model = load_model(explained, protocol, artifacts_root)

    def explain_class(photo: Image.Image, class_id: int):
        with torch.no_grad():
            p = torch.softmax(model(tensor_from_pil(model.preprocess, photo)).float(), -1)[0].numpy()
        return explain.gradcam(model, photo, method, class_id).heatmap, p

    out = art.artifacts_dir(artifacts_root) / MISTAKE_MAPS.format(protocol=protocol)
    return build_mistake_maps(probs, image_ids, labels, lambda i: load_image(index.path(i)), explain_class, out,
                              {"app_model": app_model, "explained_model": explained, "method": method,
                               "protocol": protocol, "split": "test"})
