"""What a trained (or training) member answers: logits on the evaluation sets, softmax outputs, and their scores."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.shift import ShiftSets

EVAL_BATCH = 2048
"""Inputs per forward pass when scoring on a GPU: large batches keep it busy."""
EVAL_BATCH_CPU = 512
"""On a CPU, smaller: a seed-cnn scores 6,000 images in 146 ms at 512 and 221 ms at 2048 on one core (the
activations of 512 stay in cache). The logits are the same, bit for bit, at either size (measured on the zoo)."""


class EvalSets(Mapping[str, torch.Tensor]):
    """The inputs every trained member is scored on, by name: test, val, ood:<set>, shift:<corruption>:<severity>.

    The shift sets are built when looked up (see ShiftSets), so iterating scores one at a time and a rank
    never holds them all.
    """

    def __init__(self, fixed: dict[str, torch.Tensor], shift: ShiftSets | None = None) -> None:
        self.fixed, self.shift = fixed, shift

    def __getitem__(self, name: str) -> torch.Tensor:
        if name in self.fixed:
            return self.fixed[name]
        if self.shift is not None and name in self.shift.names:
            return self.shift.build(name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        yield from self.fixed
        if self.shift is not None:
            yield from self.shift.names

    def __len__(self) -> int:
        return len(self.fixed) + (len(self.shift.names) if self.shift is not None else 0)


def eval_batch(device: torch.device) -> int:
    """Inputs per forward pass when scoring on `device`."""
    return EVAL_BATCH_CPU if device.type == "cpu" else EVAL_BATCH


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Raw outputs on `x`, in evaluation batches, returned on the CPU as float32."""
    model.eval()
    device = next(model.parameters()).device
    step = eval_batch(device)
    out = [model(x[i : i + step].to(device)).float().cpu() for i in range(0, len(x), step)]
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def predict_probs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax outputs on `x`, in evaluation batches, returned on the CPU as float32."""
    model.eval()
    device = next(model.parameters()).device
    step = eval_batch(device)
    out = [F.softmax(model(x[i : i + step].to(device)).float(), dim=1).cpu() for i in range(0, len(x), step)]
    return torch.cat(out) if out else torch.empty(0)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean negative log-likelihood) of one model."""
    if len(y) == 0:
        return float("nan"), float("nan")
    return probs_scores(predict_probs(model, x), y)


def probs_scores(probs: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean negative log-likelihood) of softmax outputs against labels."""
    y = y.cpu()
    accuracy = float((probs.argmax(1) == y).float().mean())
    nll = float(-torch.log(probs[torch.arange(len(y)), y].clamp_min(1e-12)).mean())
    return accuracy, nll


def member_logits(model: nn.Module, eval_sets: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Logits of one trained member on every evaluation set (probabilities are their softmax, taken on rank 0)."""
    return {name: predict_logits(model, x).numpy() for name, x in eval_sets.items()}


def members_logits(models: Mapping[int, nn.Module], eval_sets: Mapping[str, torch.Tensor]) -> dict[int, dict[str, np.ndarray]]:
    """`member_logits` of several members, set by set: each set is looked up once for all of them.

    A shift set is built when looked up (`EvalSets`), so scoring K members together builds each one once
    instead of K times; the logits are the same as `member_logits` gives, member by member.
    """
    out: dict[int, dict[str, np.ndarray]] = {index: {} for index in models}
    for name in eval_sets:
        x = eval_sets[name]
        for index, model in models.items():
            out[index][name] = predict_logits(model, x).numpy()
    return out
