"""LIME (Ribeiro et al. 2016) for any classifier, without torch: the photo cut into superpixels, random subsets
hidden, a local linear model fitted to the classifier's probability of the explained class; the heat is the
positive weights of the patches that most kept the answer up. The Explain page runs it on the model that answered
(the INT8 student on onnxruntime); ``explain.maps.lime`` runs it on a torch network for the report."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .heatmap import Explanation, normalise
from .words import LIME_NOTE_MARK

# LIME's images per forward pass: its peak memory grows with it (activations of the whole batch), its speed hardly
# does on a CPU. 8 keeps one LIME run near 100 MB above the model.
LIME_BATCH = 8

Classifier = Callable[[np.ndarray], np.ndarray]  # float views [B, H, W, 3] in 0-255 -> probabilities [B, classes]


def lime_map(classify: Classifier, view: np.ndarray, target: int | None = None, num_samples: int = 150,
             num_features: int = 8, seed: int = 0, progress: Callable[[int, int], None] | None = None) -> Explanation:
    """LIME of ``classify`` on the uint8 ``view`` [H, W, 3] the model sees, for class ``target`` (default: its best
    guess). ``progress(done, total)`` after each batch of perturbed images (``num_samples`` in all)."""
    from lime import lime_image  # slow to import (scikit-image): only when a visitor opens LIME

    # lime 0.2 draws a tqdm bar in the server's log on every run (it has no switch): the visitor sees ``progress``
    # on the page instead, and the log stays readable
    lime_image.tqdm = _no_bar
    done = 0

    def batched(batch: np.ndarray) -> np.ndarray:
        return np.concatenate([classify(batch[i:i + LIME_BATCH]) for i in range(0, len(batch), LIME_BATCH)])

    def classify_samples(batch: np.ndarray) -> np.ndarray:
        nonlocal done
        probs = batched(batch)
        done = min(num_samples, done + len(batch))
        if progress is not None:
            progress(done, num_samples)
        return probs

    if target is None:
        target = int(batched(view[None].astype(np.float32)).argmax())
    explainer = lime_image.LimeImageExplainer(random_state=seed)
    # lime builds each batch of perturbed images (float64) before classifying it: its batch_size bounds that too
    result = explainer.explain_instance(view.astype(np.float64), classify_samples, labels=(int(target),),
                                        top_labels=None, hide_color=0, num_samples=num_samples,
                                        batch_size=LIME_BATCH, random_seed=seed)
    weights = sorted(result.local_exp[int(target)], key=lambda t: -t[1])[:num_features]
    heat = np.zeros(result.segments.shape, dtype=np.float32)
    for segment, w in weights:
        if w > 0:
            heat[result.segments == segment] = w
    return Explanation("LIME", view, normalise(heat), int(target),
                       f"The photo cut into {len(np.unique(result.segments))} {LIME_NOTE_MARK}, {num_samples} "
                       f"photos tried; coloured: the up to {num_features} patches that most kept the answer up.")


def _no_bar(iterable, *args, **kwargs):
    return iterable
