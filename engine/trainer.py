"""The one training loop every strategy runs: members step through the batches together, hooks report.

A strategy only says *which* members a rank trains and *where* its batches come from; how a batch
trains a group of members is a pluggable stepper — one member after another (`OneByOne`) or K members
as one vectorized step (`engine.vectorized.StackedMembers`). Everything else — epochs, divergence,
validation, checkpoints, the events — is this loop, so every strategy keeps the same contract.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
import torch.nn.functional as F

from engine.batches import BatchSource
from engine.checkpoint import save_member
from engine.config import RunConfig, TrainConfig
from engine.control import ControlReader
from engine.evaluation import predict_probs, probs_scores
from engine.live import LiveEnsemble
from engine.member import Member, scaled
from engine.run_folder import RunFolder

if TYPE_CHECKING:
    from pathlib import Path

# --------------------------------------------------------------------------- hooks


class Hooks(Protocol):
    """What the loop tells the outside world; the socket reporter is one implementation."""

    def wants_step(self, member: int) -> bool:
        """Whether the group `member` leads should report this step (reading the losses forces a device sync,
        so ask first); every member of the group then reports, with the rank's rate over one shared window."""
        ...

    def on_member_start(self, member: int) -> None: ...

    def on_step(
        self, member: int, epoch: int, step: int, steps: int, loss: float, samples_per_s: float, fused: int
    ) -> None: ...

    def on_epoch_end(
        self, member: int, epoch: int, train_loss: float, val: tuple[float, float] | None, seconds: float
    ) -> None: ...

    def on_member_done(self, member: Member, seconds: float, checkpoint: Path | None) -> None: ...


# --------------------------------------------------------------------------- steppers


class Stepper(Protocol):
    """Trains a fixed group of members on one batch at a time."""

    members: list[Member]

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimizer step of every member on (x, y), or member j on (x[j], y[j]) when the batch is per member
        (labels (K, B)); the members' losses, detached, shape (K,)."""
        ...

    def write_back(self) -> None:
        """Leave every member's own model and optimizer holding its trained state (before checkpoints)."""
        ...

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """The optimizers that step the members (the learning-rate schedule sets their `lr`)."""
        ...


StepperFactory = Callable[[Sequence[Member], TrainConfig], Stepper]


class OneByOne:
    """Each member steps on the batch in turn: the plain path (local, sequential, broadcast)."""

    def __init__(self, members: Sequence[Member], train: TrainConfig | None = None) -> None:
        self.members = list(members)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        losses = []
        per_member = y.dim() == 2
        for j, m in enumerate(self.members):
            m.model.train()
            loss = F.cross_entropy(m.model(x[j]), y[j]) if per_member else F.cross_entropy(m.model(x), y)
            m.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            m.optimizer.step()
            losses.append(loss.detach())
        # One member (local, sequential): a view, not a stacking kernel, on every step.
        return losses[0].unsqueeze(0) if len(losses) == 1 else torch.stack(losses)

    def write_back(self) -> None:
        """Nothing to do: the members train in place."""

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [m.optimizer for m in self.members]


def learning_rate(train: TrainConfig, epoch: int, step: int, steps: int) -> float:
    """The learning rate of `step` of `epoch`: a function of the position alone, so a resume continues the
    schedule exactly where the interrupted run was."""
    if train.schedule == "constant":
        return train.lr
    progress = (epoch * steps + step) / max(train.epochs * steps, 1)
    return train.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


# --------------------------------------------------------------------------- the loop


@dataclass
class Trainer:
    """Everything the loop needs besides the members; a strategy builds one per rank.

    `first_epoch` lets ranks that share one batch stream (broadcast) agree where to start when their
    resumed members differ.
    """

    config: RunConfig
    batches: BatchSource
    hooks: Hooks
    val: tuple[torch.Tensor, torch.Tensor] | None = None
    folder: RunFolder | None = None
    stepper: StepperFactory = OneByOne
    live: LiveEnsemble | None = None
    """Where each member's validation probabilities go at the end of an epoch (`ensemble` events)."""
    control: ControlReader | None = None
    """The user's requests to stop a member, read when a step is reported (a `stat`, a few times a second)."""

    @property
    def epochs(self) -> int:
        return self.config.train.epochs

    def train(self, members: Sequence[Member], first_epoch: int | None = None) -> None:
        """Train `members` together, batch-major, to the configured epochs; each batch trains every live member."""
        start = first_epoch if first_epoch is not None else min((m.epochs_done for m in members), default=self.epochs)
        for m in members:
            m.started = time.perf_counter()
            self.hooks.on_member_start(m.index)
        for epoch in range(start, self.epochs):
            active = [m for m in members if m.epochs_done == epoch and not m.diverged and not m.stopped]
            if active or self.batches.collective:
                self._epoch(epoch, active)
        for m in members:
            checkpoint = self.folder.checkpoint(m.index) if self.folder is not None else None
            self.hooks.on_member_done(m, time.perf_counter() - m.started, checkpoint)

    def _epoch(self, epoch: int, active: list[Member]) -> None:
        """One pass over the batches for the `active` members, then each member's end of epoch."""
        live = list(active)
        train = self._train(live)
        stepper = self.stepper(live, train) if live else None
        # Each active member's summed loss, one tensor for all (one add per step, whatever the group's size);
        # `where` places the live members' losses in it once some have stopped, and `seen_until` keeps how many
        # samples a member that stopped mid-epoch had seen.
        loss_sums = torch.zeros(len(active), device=active[0].device) if active else torch.zeros(0)
        where: torch.Tensor | None = None
        seen_until: dict[int, int] = {}
        seen = 0
        t_epoch = time.perf_counter()
        t_mark, seen_mark = t_epoch, 0
        # Per-member batches stack a row for each active member; once one stops, `rows` are the live ones'.
        per_member = self.config.train.data_order == "per-member"
        rows: list[int] | None = None
        batches = self.batches.epoch(epoch, [m.index for m in active]) if per_member else self.batches.epoch(epoch)
        for step, (x, y) in enumerate(batches):
            if stepper is None:
                continue  # a collective source: this rank still takes part in every batch's broadcast
            if self.config.train.schedule != "constant":
                lr = learning_rate(train, epoch, step, self.batches.steps)
                for optimizer in stepper.optimizers():
                    for group in optimizer.param_groups:
                        group["lr"] = lr
            if rows is not None:
                x, y = x[rows], y[rows]
            losses = stepper.step(x, y)
            size = y.shape[-1]
            if where is None:
                loss_sums += losses * size
            else:
                loss_sums.index_add_(0, where, losses * size)
            seen += size
            # The group reports together, on its first member's clock: one measuring window per rank, never
            # one that a member due earlier already emptied (which read as 0 samples/s).
            if not self.hooks.wants_step(live[0].index):
                continue
            values = losses.tolist()  # one device sync for every member that reports
            now = time.perf_counter()
            # Rate of the rank as a whole: every live member sees each sample.
            rate = (seen - seen_mark) / max(now - t_mark, 1e-9) * len(live)
            for m, value in zip(live, values, strict=True):
                self.hooks.on_step(m.index, epoch, step, self.batches.steps, value, rate, len(live))
            t_mark, seen_mark = now, seen
            # A NaN/inf loss stops its member at once, and so does the user (engine.control); the rest go on
            # without it (a diverged member's epoch loss confirms it).
            if self.control is not None:
                self.control.poll()
            stops = self.control.stops if self.control is not None else set()
            for m, v in zip(live, values, strict=True):
                m.diverged = m.diverged or not math.isfinite(v)
                m.stopped = m.stopped or m.index in stops
            if any(m.diverged or m.stopped for m in live):
                stepper.write_back()
                live = [m for m in live if not (m.diverged or m.stopped)]
                going = [j for j, m in enumerate(active) if not (m.diverged or m.stopped)]
                rows = going if per_member else None
                stepper = self.stepper(live, train) if live else None
                seen_until.update((j, seen) for j in range(len(active)) if j not in going and j not in seen_until)
                where = torch.tensor(going, dtype=torch.long, device=loss_sums.device)
        if stepper is not None:
            stepper.write_back()
        seconds = time.perf_counter() - t_epoch
        for j, m in enumerate(active):
            self._end_epoch(m, epoch, float(loss_sums[j]) / max(seen_until.get(j, seen), 1), seconds)

    def _train(self, members: Sequence[Member]) -> TrainConfig:
        """The settings a group steps with: the run's, at the group's learning-rate factor (a restarted member
        is trained alone, so a group shares one)."""
        factors = {m.lr_factor for m in members}
        if len(factors) > 1:
            raise RuntimeError(f"members {[m.index for m in members]} trained together have different learning rates")
        return scaled(self.config.train, factors.pop() if factors else 1.0)

    def _end_epoch(self, member: Member, epoch: int, train_loss: float, seconds: float) -> None:
        """Close one member's epoch: divergence check, validation, checkpoint, then the announcement."""
        member.epochs_done = epoch + 1
        member.diverged = member.diverged or not math.isfinite(train_loss)
        scored = self.val is not None and len(self.val[1]) > 0 and not member.diverged
        probs = predict_probs(member.model, self.val[0]) if scored else None
        member.last_val = probs_scores(probs, self.val[1]) if probs is not None else None
        # Checkpoint first: once the epoch is announced, a resume must be able to start after it.
        if self.folder is not None:
            save_member(member, self.folder, self.config)
        self.hooks.on_epoch_end(member.index, epoch, train_loss, member.last_val, seconds)
        if self.live is not None:
            # A stopped member is as done as one that ran every epoch: it counts among the finished.
            done = self.epochs if member.stopped else member.epochs_done
            self.live.member_epoch(member.index, done, probs.numpy() if probs is not None else None)
