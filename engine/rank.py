"""What one rank knows about its place in the run: communicator, device, members, reporter."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from engine.batches import BatchSource, place
from engine.config import RunConfig
from engine.control import ControlReader
from engine.data import Splits, load_ood, load_splits
from engine.evaluation import EvalSets, member_logits
from engine.live import LiveEnsemble
from engine.member import Member, make_member
from engine.reporter import Reporter
from engine.run_folder import RunFolder
from engine.shift import ShiftSets, shift_sample
from engine.trainer import OneByOne, StepperFactory, Trainer

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
    stopped_early: str | None = None
    """Why rank 0's member queue stopped before every member was handed out (set when placement closes)."""
    control: ControlReader | None = None
    """The launcher's requests (stop or restart a member); set by the worker for a rank with a run folder."""

    @property
    def rank(self) -> int:
        return int(self.comm.Get_rank())

    @property
    def size(self) -> int:
        return int(self.comm.Get_size())

    @property
    def folder(self) -> RunFolder | None:
        """The run folder (checkpoints go there); None for a rank that keeps nothing (tests, benchmarks)."""
        return RunFolder(self.run_dir) if self.run_dir is not None else None

    def static_members(self) -> list[int]:
        """Round-robin placement: member i goes to rank i mod size."""
        return list(range(self.rank, self.config.train.members, self.size))

    def make_member(self, index: int, splits: Splits) -> Member:
        """Member `index` on this rank's device, resumed from its checkpoint when the run folder has one; a diverged
        member the user asked to restart starts again from its initial weights at a lower learning rate."""
        member = make_member(self.config, splits.shape, splits.num_classes, index, self.device, self.folder)
        if member.diverged and self.control is not None:
            self.control.poll()
            if (factor := self.control.restarts.get(index)) is not None:
                member = make_member(self.config, splits.shape, splits.num_classes, index, self.device, self.folder,
                                     restart_lr_factor=factor)
                self.reporter.log(f"member {index} restarts from its initial weights at {factor:g} × the learning "
                                  f"rate ({self.config.train.lr * factor:g})")
        return member

    def trainer(self, batches: BatchSource, splits: Splits, stepper: StepperFactory = OneByOne) -> Trainer:
        """The training loop for this rank: its batches, its validation split on its device, its reporter."""
        val = (place(splits.x_val, self.device), place(splits.y_val, self.device))
        return Trainer(self.config, batches, self.reporter, val, self.folder, stepper, self.live_ensemble(splits),
                       self.control)

    def live_ensemble(self, splits: Splits) -> LiveEnsemble | None:
        """Scoring of the ensemble as members end epochs, where asked for and there is a validation split."""
        folder = self.folder
        if folder is None or not self.config.train.live_ensemble or len(splits.y_val) == 0:
            return None
        return LiveEnsemble(folder, splits.y_val.numpy(), self.config.train.epochs, self.reporter.send,
                            seed=self.config.seed)


@dataclass
class Outcome:
    """What a rank hands back after training: its members' logits on every evaluation set, and the data on rank 0."""

    predictions: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    """Member index → set name → (N, K) float32 logits."""
    diverged: dict[int, bool] = field(default_factory=dict)
    marks: dict[int, dict[str, object]] = field(default_factory=dict)
    """Member index → what the report notes about it: {"stopped": True} and/or {"lr_factor": 0.1}."""
    splits: Splits | None = None
    eval_sets: EvalSets | None = None

    def add(self, member: Member, eval_sets: EvalSets) -> None:
        """Score a trained member on the evaluation sets and keep its logits."""
        self.predictions[member.index] = member_logits(member.model, eval_sets)
        self.note(member)

    def note(self, member: Member) -> None:
        """Keep what the report says about a trained member besides its logits: diverged, stopped, restarted."""
        self.diverged[member.index] = member.diverged
        mark = {"stopped": True} if member.stopped else {}
        if member.lr_factor != 1.0:
            mark["lr_factor"] = member.lr_factor
        if mark:
            self.marks[member.index] = mark


def eval_sets_for(splits: Splits, config: RunConfig) -> EvalSets:
    """What every trained member is scored on: the test split, the validation split (where there is one, for
    temperature scaling), each OOD set, and with `[report] shift` the test sample under every corruption."""
    ood = {f"ood:{name}": load_ood(name, splits, config.data, config.seed) for name in config.data.ood}
    fixed = {"test": splits.x_test, **({"val": splits.x_val} if len(splits.y_val) else {}), **ood}
    report = config.report
    shift = ShiftSets(
        splits.x_test, splits.mean, splits.std, shift_sample(len(splits.y_test), report.shift_size, config.seed),
        list(report.corruptions), list(report.severities), config.seed,
    ) if report.shift and len(splits.y_test) else None
    return EvalSets(fixed, shift)


def load_local(config: RunConfig) -> tuple[Splits, EvalSets]:
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
