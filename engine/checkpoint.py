"""Checkpoints as plain dicts (weights, optimizer, epochs done, RNG, config, fingerprint), written atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from engine.atomic import atomic_write_bytes
from engine.fingerprint import RETRAIN, CheckpointFileError, changes, fingerprint, read_head, stored_fingerprint
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
    path.parent.mkdir(exist_ok=True)  # never `parents`: a run folder deleted mid-run must fail the run, not reappear
    save_checkpoint(
        path,
        {
            "member": member.index,
            "model": member.model.state_dict(),
            "optimizer": member.optimizer.state_dict(),
            "epoch": member.epochs_done,
            "diverged": member.diverged,
            "stopped": member.stopped,
            "lr_factor": member.lr_factor,
            "rng": torch.get_rng_state(),
            "config": config.model_dump(mode="json"),
            "fingerprint": fingerprint(config),
        },
    )
    return path


class CheckpointError(ValueError):
    """A member's checkpoint that cannot continue this run, said in one line naming the file (no traceback)."""


def restore_member(member: Member, folder: RunFolder, device: torch.device, config: RunConfig) -> bool:
    """Load the member's last checkpoint from the run folder, if it has one; returns whether it did.

    Raises CheckpointError for a file that does not load, or that was trained with other settings (a state
    dict of another model never reaches `load_state_dict`).
    """
    path = folder.checkpoint(member.index)
    if not path.exists():
        return False
    name = path.relative_to(folder.path)
    try:
        state = load_checkpoint(path, device)
    except Exception:  # noqa: BLE001 — torch's reasons (and its weights_only advice) say nothing useful here
        try:
            read_head(path)
            why = "cannot be loaded"
        except CheckpointFileError as err:
            why = str(err)
        raise CheckpointError(f"{name} {why}; {RETRAIN}") from None
    trained = stored_fingerprint(state) if isinstance(state, dict) else None
    if trained is not None and (changed := changes(trained, fingerprint(config))):
        raise CheckpointError(f"{name} was trained with other settings: {', '.join(changed.values())}; "
                              f"restore those values in config.toml or {RETRAIN}")
    try:
        member.model.load_state_dict(state["model"])
        member.optimizer.load_state_dict(state["optimizer"])
        member.epochs_done = int(state["epoch"])
    except (KeyError, TypeError, ValueError, RuntimeError):
        raise CheckpointError(f"{name} does not fit model {config.model.name} (did its code change?); "
                              f"{RETRAIN}") from None
    member.diverged = bool(state.get("diverged", False))
    member.stopped = bool(state.get("stopped", False))
    member.lr_factor = float(state.get("lr_factor", 1.0))
    return True
