"""One ensemble member: its model, its optimizer, and how far it got.

Member *i* starts from weights seeded by (run seed, i), so what it becomes does not depend on which
rank, device or strategy trains it; a checkpoint (see `engine.checkpoint`) lets it continue later.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from engine.checkpoint import restore_member
from engine.config import RunConfig, TrainConfig
from engine.layout import prefer_layout
from engine.models import build_member
from engine.run_folder import RunFolder


@dataclass
class Member:
    """One ensemble member and its training state."""

    index: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    epochs_done: int = 0
    diverged: bool = False
    started: float = 0.0
    last_val: tuple[float, float] | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def make_optimizer(params: Iterable[torch.Tensor], train: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer over `params`."""
    if train.optimizer == "adam":
        return torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay)
    return torch.optim.SGD(params, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay)


def make_member(
    config: RunConfig, shape: tuple[int, int, int], classes: int, index: int, device: torch.device,
    folder: RunFolder | None = None,
) -> Member:
    """Build member `index` on `device`, resuming from its checkpoint in `folder` when there is one."""
    model = prefer_layout(build_member(config.model, shape, classes, config.seed, index).to(device), device)
    member = Member(index, model, make_optimizer(model.parameters(), config.train))
    if folder is not None:
        restore_member(member, folder, device)
    return member
