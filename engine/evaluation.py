"""What a trained (or training) member predicts: softmax outputs in evaluation batches, and their scores."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

EVAL_BATCH = 2048


@torch.no_grad()
def predict_probs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax outputs on `x`, in evaluation batches, returned on the CPU as float32."""
    model.eval()
    device = next(model.parameters()).device
    out = [F.softmax(model(x[i : i + EVAL_BATCH].to(device)).float(), dim=1).cpu() for i in range(0, len(x), EVAL_BATCH)]
    return torch.cat(out) if out else torch.empty(0)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean negative log-likelihood) of one model."""
    if len(y) == 0:
        return float("nan"), float("nan")
    probs = predict_probs(model, x)
    y = y.cpu()
    accuracy = float((probs.argmax(1) == y).float().mean())
    nll = float(-torch.log(probs[torch.arange(len(y)), y].clamp_min(1e-12)).mean())
    return accuracy, nll


def member_predictions(model: nn.Module, eval_sets: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Probabilities of one trained member on the test split and every OOD set."""
    return {name: predict_probs(model, x).numpy() for name, x in eval_sets.items()}
