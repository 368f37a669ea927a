"""Temperature scaling and the softmax's "not sure" rule, fitted on validation (torch's LBFGS)."""
from __future__ import annotations

import numpy as np
import torch

from ..metrics import entropy_threshold, softmax


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature scaling: one scalar T minimising validation NLL (LBFGS on log T)."""
    logits_t, labels_t = torch.as_tensor(logits, dtype=torch.float64), torch.as_tensor(labels)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits_t / log_t.exp(), labels_t)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def entropy_rule(val_logits: np.ndarray, val_labels: np.ndarray, target_accuracy: float) -> tuple[float, float]:
    """The softmax's "not sure" rule, fitted on validation: the temperature, and the largest entropy of the
    temperature-scaled probabilities at which the answers kept reach ``target_accuracy``."""
    t = fit_temperature(val_logits, val_labels)
    return t, entropy_threshold(softmax(val_logits, t), val_labels, target_accuracy)
