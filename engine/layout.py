"""Memory layout of a member's weights: channels-last where it was measured to pay."""

from __future__ import annotations

import os

import torch
from torch import nn

CHANNELS_LAST_ENV = "ENS_TUI_CHANNELS_LAST"
"""`1`/`0` forces channels-last weights on or off; unset = on for CPU ranks only (where it was measured to pay)."""


def use_channels_last(device: torch.device) -> bool:
    """Channels-last conv weights: about 2x faster seed-cnn training with oneDNN on CPU (see bench/README.md).

    Not measured on CUDA yet, so off there unless ENS_TUI_CHANNELS_LAST=1 asks for it.
    """
    wanted = os.environ.get(CHANNELS_LAST_ENV, "")
    if wanted in ("0", "1"):
        return wanted == "1"
    return device.type == "cpu"


def prefer_layout(model: nn.Module, device: torch.device) -> nn.Module:
    """Give a model with convolutions channels-last weights where that pays; results only change by float noise."""
    if use_channels_last(device) and any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model = model.to(memory_format=torch.channels_last)
    return model
