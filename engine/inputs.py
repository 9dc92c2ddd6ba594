"""From raw images to a member's input: one conversion for training data, OOD sets, predict and export.

Raw images are uint8 (0–255) or float in [0, 1], (N, C, H, W). They are converted to the run's channel
count, resized to its (H, W) with antialiased bilinear interpolation, and normalised with the training
split's mean and std. Every function here is TorchScript-compatible, so an exported ensemble applies the
very same conversion without ens-tui.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 0–255 → float32 [0, 1]; float images are taken to be in [0, 1] already, and keep their dtype."""
    if images.is_floating_point():
        return images
    return images.to(torch.float32) / 255.0


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] with C of 1, 2 (gray + alpha), 3 or 4 (RGBA) → `channels` (1 or 3); alpha is dropped."""
    c = images.shape[1]
    if c == 2 or c == 4:
        images = images[:, : c - 1]
        c = c - 1
    if c == channels:
        return images
    if channels == 1:  # ITU-R 601 luma, as PIL's convert("L")
        return 0.299 * images[:, 0:1] + 0.587 * images[:, 1:2] + 0.114 * images[:, 2:3]
    return images.expand(-1, channels, -1, -1)


def resize(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Antialiased bilinear resize to (height, width); images already that size are returned as they are."""
    if images.shape[2] == height and images.shape[3] == width:
        return images
    return F.interpolate(images, size=[height, width], mode="bilinear", align_corners=False, antialias=True).clamp(0.0, 1.0)


def conform(images: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
    """Raw images (N, C, H, W) → float [0, 1] with the run's channels and size (not yet normalised)."""
    return resize(to_channels(to_unit(images), channels), height, width)


def prepare(images: torch.Tensor, channels: int, height: int, width: int, mean: float, std: float) -> torch.Tensor:
    """Raw images → exactly what the members were trained on."""
    return (conform(images, channels, height, width) - mean) / std
