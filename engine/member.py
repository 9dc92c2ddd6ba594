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
from engine.config import ModelConfig, RunConfig, TrainConfig
from engine.layout import prefer_layout, use_channels_last
from engine.models import MODELS, build_member
from engine.run_folder import RunFolder


@dataclass
class Member:
    """One ensemble member and its training state."""

    index: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    epochs_done: int = 0
    diverged: bool = False
    stopped: bool = False
    """Stopped by the user before its last epoch (engine.control); done, with what it learned."""
    lr_factor: float = 1.0
    """Below 1 after a restart: the run's learning rate (and schedule) times this."""
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
    folder: RunFolder | None = None, restart_lr_factor: float | None = None,
) -> Member:
    """Build member `index` on `device`, resuming from its checkpoint in `folder` when there is one.

    `restart_lr_factor`: a diverged member trained again from its initial weights at that fraction of the
    learning rate; its diverged checkpoint is not read (the restart's first epoch replaces it).
    """
    model = member_layout(build_member(config.model, shape, classes, config.seed, index).to(device), config.model,
                          shape, device)
    factor = restart_lr_factor or 1.0
    member = Member(index, model, make_optimizer(model.parameters(), scaled(config.train, factor)), lr_factor=factor)
    if folder is not None and restart_lr_factor is None:
        restore_member(member, folder, device, config)
    return member


def scaled(train: TrainConfig, lr_factor: float) -> TrainConfig:
    """The training settings of a member whose learning rate is `lr_factor` times the run's."""
    return train if lr_factor == 1.0 else train.model_copy(update={"lr": train.lr * lr_factor})


def member_layout(model: nn.Module, config: ModelConfig, shape: tuple[int, int, int], device: torch.device) -> nn.Module:
    """`prefer_layout`, kept only where the model still runs in it.

    Your own model may flatten conv activations with `view`, which channels-last tensors refuse (`reshape`
    would do); such a model keeps the default layout: slower on CPU, the same results. The zoo is known to run.
    """
    model = prefer_layout(model, device)
    if config.name in MODELS or not (use_channels_last(device) and any(isinstance(m, nn.Conv2d) for m in model.modules())):
        return model
    training = model.training
    dtype = next(model.parameters(), torch.empty(0)).dtype
    try:
        with torch.no_grad():
            model.eval()(torch.zeros((2, *shape), device=device, dtype=dtype))
    except Exception:  # noqa: BLE001 — any failure in channels-last means: stay contiguous
        model = model.to(memory_format=torch.contiguous_format)
    finally:
        model.train(training)
    return model
