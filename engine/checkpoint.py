"""Checkpoints as plain dicts, written atomically (temp file, fsync, rename)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from engine.atomic import atomic_write_bytes


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save a plain dict atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict onto `device` (weights only: no code runs from the file)."""
    return torch.load(path, map_location=device, weights_only=True)
