"""What one rank knows about its place in the run: communicator, device, members, reporter."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from engine.config import RunConfig
from engine.data import Splits, load_ood, load_splits
from engine.reporter import Reporter

if TYPE_CHECKING:
    from mpi4py import MPI


@dataclass
class RankContext:
    """Everything a strategy needs; built once per rank by the worker (or by a test on COMM_SELF)."""

    comm: MPI.Comm
    config: RunConfig
    device: torch.device
    reporter: Reporter
    run_dir: Path | None = None

    @property
    def rank(self) -> int:
        return int(self.comm.Get_rank())

    @property
    def size(self) -> int:
        return int(self.comm.Get_size())

    @property
    def checkpoint_dir(self) -> Path | None:
        if self.run_dir is None:
            return None
        path = self.run_dir / "checkpoints"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def static_members(self) -> list[int]:
        """Round-robin placement: member i goes to rank i mod size."""
        return list(range(self.rank, self.config.train.members, self.size))


@dataclass
class Outcome:
    """What a rank hands back after training: its members' predictions, and the data on rank 0."""

    predictions: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    diverged: dict[int, bool] = field(default_factory=dict)
    splits: Splits | None = None
    eval_sets: dict[str, torch.Tensor] | None = None


def eval_sets_for(splits: Splits, config: RunConfig) -> dict[str, torch.Tensor]:
    """The inputs every trained member is scored on: the test split and each OOD set."""
    sets = {"test": splits.x_test}
    for name in config.data.ood:
        sets[f"ood:{name}"] = load_ood(name, splits, config.data, config.seed)
    return sets


def load_local(config: RunConfig) -> tuple[Splits, dict[str, torch.Tensor]]:
    """Each rank reading the data itself (local, sequential, fused)."""
    splits = load_splits(config.data, config.seed)
    return splits, eval_sets_for(splits, config)


def resolve_device(spec: str, rank_devices: list[str], rank: int) -> torch.device:
    """Turn a config device into a torch device for this rank; refuse CUDA that is not there."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(f"rank {rank} is configured for {spec!r}, but torch sees no CUDA device here")
    count = torch.cuda.device_count()
    if spec == "cuda":
        # Spread plain "cuda" ranks over the GPUs there are; on one GPU they share it (the seed's GPU×2).
        nth = sum(1 for d in rank_devices[:rank] if d in ("cuda", "auto"))
        return torch.device("cuda", nth % count)
    index = int(spec.split(":")[1])
    if index >= count:
        raise RuntimeError(f"rank {rank} is configured for {spec!r}, but only {count} CUDA device(s) exist")
    return torch.device("cuda", index)


def member_args(ctx: RankContext, splits: Splits) -> dict[str, Any]:
    """Arguments `make_member` needs, the same for every member of the rank."""
    return {
        "config": ctx.config, "splits_shape": splits.shape, "classes": splits.num_classes, "device": ctx.device,
        "checkpoint_dir": ctx.checkpoint_dir,
    }
