"""Checkpoints as plain dicts (weights, optimizer, epochs done, RNG, config), written atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from engine.atomic import atomic_write_bytes
from engine.run_folder import RunFolder

if TYPE_CHECKING:
    from engine.config import RunConfig
    from engine.member import Member


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save a plain dict atomically (temp file, fsync, rename)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict onto `device` (weights only: no code runs from the file)."""
    return torch.load(path, map_location=device, weights_only=True)


def save_member(member: Member, folder: RunFolder, config: RunConfig) -> Path:
    """Member's checkpoint in the run folder; a resume continues from its `epoch`."""
    path = folder.checkpoint(member.index)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        path,
        {
            "member": member.index,
            "model": member.model.state_dict(),
            "optimizer": member.optimizer.state_dict(),
            "epoch": member.epochs_done,
            "diverged": member.diverged,
            "rng": torch.get_rng_state(),
            "config": config.model_dump(mode="json"),
        },
    )
    return path


def restore_member(member: Member, folder: RunFolder, device: torch.device) -> bool:
    """Load the member's last checkpoint from the run folder, if it has one; returns whether it did."""
    path = folder.checkpoint(member.index)
    if not path.exists():
        return False
    state = load_checkpoint(path, device)
    member.model.load_state_dict(state["model"])
    member.optimizer.load_state_dict(state["optimizer"])
    member.epochs_done = int(state["epoch"])
    member.diverged = bool(state.get("diverged", False))
    return True
