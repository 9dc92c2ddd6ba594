"""The training loop every strategy shares: members step through the same batches, hooks report.

A strategy only decides *which* members a rank trains together and *where* batches come from; the
loop below is the same for all of them, which is what keeps their results identical.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from engine.checkpoint import load_checkpoint, save_checkpoint
from engine.config import RunConfig, TrainConfig
from engine.models import build_member
from engine.seeding import batch_slices, epoch_order

EVAL_BATCH = 2048
CHANNELS_LAST_ENV = "ENS_TUI_CHANNELS_LAST"
"""`1`/`0` forces channels-last weights on or off; unset = on for CPU ranks only (where it was measured to pay)."""


# --------------------------------------------------------------------------- members


@dataclass
class Member:
    """One ensemble member: its model, optimizer, and how far it got."""

    index: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    epochs_done: int = 0
    diverged: bool = False
    started: float = 0.0
    last_val: tuple[float, float] | None = None


def make_optimizer(params: Iterable[torch.Tensor], train: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer over `params`."""
    if train.optimizer == "adam":
        return torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay)
    return torch.optim.SGD(params, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay)


def make_member(
    config: RunConfig, splits_shape: tuple[int, int, int], classes: int, index: int, device: torch.device,
    checkpoint_dir: Path | None = None,
) -> Member:
    """Build member `index` on `device`, resuming from its checkpoint when one exists."""
    model = prefer_layout(build_member(config.model.name, splits_shape, classes, config.seed, index).to(device), device)
    member = Member(index, model, make_optimizer(model.parameters(), config.train))
    if checkpoint_dir is not None:
        path = checkpoint_path(checkpoint_dir, index)
        if path.exists():
            state = load_checkpoint(path, device)
            model.load_state_dict(state["model"])
            member.optimizer.load_state_dict(state["optimizer"])
            member.epochs_done = int(state["epoch"])
            member.diverged = bool(state.get("diverged", False))
    return member


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


def clamp_threads(threads: int, ranks_here: int, warn: Any = None) -> int:
    """Keep `threads x ranks on this host` within the host's cores: oversubscribed ranks only slow each other.

    Sets torch's intra-op threads and returns the number used; `warn(message)` hears about a clamp.
    """
    cores = os.cpu_count() or 1
    bound = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    # A rank that mpiexec pinned to its own cores may use them all; otherwise the ranks share the host.
    allowed = bound if bound < cores else max(1, cores // max(ranks_here, 1))
    used = min(threads, allowed)
    if used < threads and warn is not None:
        warn(f"threads_per_rank = {threads} with {ranks_here} rank(s) on {cores} core(s) would oversubscribe "
             f"the CPU; using {used} thread(s) per rank")
    if used != torch.get_num_threads():
        torch.set_num_threads(used)
    return used


def checkpoint_path(checkpoint_dir: Path, index: int) -> Path:
    return checkpoint_dir / f"member-{index:02d}.pt"


def save_member(member: Member, checkpoint_dir: Path, config: RunConfig) -> Path:
    """Checkpoint as a plain dict: weights, optimizer, epochs done, RNG, config."""
    path = checkpoint_path(checkpoint_dir, member.index)
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


# --------------------------------------------------------------------------- hooks


class Hooks(Protocol):
    """What the loop tells the outside world; the socket reporter is one implementation."""

    def wants_step(self, member: int) -> bool:
        """Whether a step report is due (reading the loss forces a device sync, so ask first)."""
        ...

    def on_member_start(self, member: int) -> None: ...

    def on_step(
        self, member: int, epoch: int, step: int, steps: int, loss: float, samples_per_s: float, fused: int
    ) -> None: ...

    def on_epoch_end(
        self, member: int, epoch: int, train_loss: float, val: tuple[float, float] | None, seconds: float
    ) -> None: ...

    def on_member_done(self, member: Member, seconds: float, checkpoint: Path | None) -> None: ...


# --------------------------------------------------------------------------- batches


class BatchSource(Protocol):
    """Yields the (x, y) batches of one epoch, already on the training device."""

    steps: int

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


class LocalBatches:
    """Batches sliced from in-memory tensors; on CUDA the whole split lives on the device when it fits."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int, device: torch.device) -> None:
        self.x, self.y = place(x, device), place(y, device)
        self.device, self.seed, self.batch_size = device, seed, batch_size
        self.slices = batch_slices(len(y), batch_size)
        self.steps = len(self.slices)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = epoch_order(self.seed, epoch, len(self.y)).to(self.x.device)
        for s in self.slices:
            idx = order[s]
            x, y = self.x[idx], self.y[idx]
            if x.device != self.device:
                # A gathered batch is a fresh, pageable tensor: pin it (PyTorch's caching host allocator
                # makes that cheap and safe to reuse) so the copy really overlaps with compute.
                x, y = x.pin_memory(), y.pin_memory()
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            yield x, y


def place(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a whole tensor to the device when it fits comfortably; else keep it pinned in host memory."""
    if device.type != "cuda":
        return t
    free, _ = torch.cuda.mem_get_info(device)
    if t.numel() * t.element_size() < 0.5 * free:
        return t.to(device)
    return t.pin_memory()


# --------------------------------------------------------------------------- the loop


def train_members(
    members: Sequence[Member], batches: BatchSource, val: tuple[torch.Tensor, torch.Tensor] | None,
    epochs: int, hooks: Hooks, checkpoint_dir: Path | None, config: RunConfig, first_epoch: int | None = None,
) -> None:
    """Train `members` together, batch-major: each batch goes through every live member in turn.

    One member at a time (local, sequential) and all of a rank's members at once (broadcast) are
    both this loop; only the list differs. `first_epoch` lets ranks that share a batch stream (broadcast)
    agree on where to start when resumed members differ.
    """
    start_epoch = first_epoch if first_epoch is not None else min((m.epochs_done for m in members), default=epochs)
    for m in members:
        m.started = time.perf_counter()
        hooks.on_member_start(m.index)
    for epoch in range(start_epoch, epochs):
        active = [m for m in members if m.epochs_done == epoch and not m.diverged]
        loss_sums = {m.index: torch.zeros((), device=_device_of(m)) for m in active}
        seen = 0
        t_epoch = time.perf_counter()
        t_mark, seen_mark = t_epoch, 0
        for step, (x, y) in enumerate(batches.epoch(epoch)):
            for m in active:
                if m.diverged:
                    continue
                m.model.train()
                loss = F.cross_entropy(m.model(x), y)
                m.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                m.optimizer.step()
                loss_sums[m.index] += loss.detach() * len(y)
                if hooks.wants_step(m.index):
                    # Rate of the rank as a whole: every active member sees each sample.
                    now = time.perf_counter()
                    rate = (seen + len(y) - seen_mark) / max(now - t_mark, 1e-9)
                    value = float(loss.detach())
                    hooks.on_step(m.index, epoch, step, batches.steps, value, rate * len(active), len(active))
                    t_mark, seen_mark = now, seen + len(y)
                    # A NaN/inf loss stops the member at once (its epoch loss below confirms it).
                    m.diverged = not math.isfinite(value)
            seen += len(y)
        seconds = time.perf_counter() - t_epoch
        for m in active:
            end_epoch(m, epoch, float(loss_sums[m.index]) / max(seen, 1), val, seconds, hooks, checkpoint_dir, config)
    finish_members(members, hooks, checkpoint_dir)


def end_epoch(
    member: Member, epoch: int, train_loss: float, val: tuple[torch.Tensor, torch.Tensor] | None, seconds: float,
    hooks: Hooks, checkpoint_dir: Path | None, config: RunConfig,
) -> None:
    """Close one member's epoch: divergence check, validation, checkpoint, then the announcement.

    Shared by the batch-major loop and the fused loop so both keep the same contract.
    """
    member.epochs_done = epoch + 1
    member.diverged = member.diverged or not math.isfinite(train_loss)
    member.last_val = evaluate(member.model, *val) if val is not None and not member.diverged else None
    # Checkpoint first: once the epoch is announced, a resume must be able to start after it.
    if checkpoint_dir is not None:
        save_member(member, checkpoint_dir, config)
    hooks.on_epoch_end(member.index, epoch, train_loss, member.last_val, seconds)


def finish_members(members: Sequence[Member], hooks: Hooks, checkpoint_dir: Path | None) -> None:
    """Tell the hooks every member is done, with where its last checkpoint lies."""
    for m in members:
        path = checkpoint_path(checkpoint_dir, m.index) if checkpoint_dir is not None else None
        hooks.on_member_done(m, time.perf_counter() - m.started, path)


def _device_of(member: Member) -> torch.device:
    return next(member.model.parameters()).device


@torch.no_grad()
def predict_probs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax outputs on `x`, in evaluation batches, returned on the CPU as float32."""
    model.eval()
    device = next(model.parameters()).device
    out = [F.softmax(model(x[i : i + EVAL_BATCH].to(device)).float(), dim=1).cpu() for i in range(0, len(x), EVAL_BATCH)]
    return torch.cat(out) if out else torch.empty(0)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean negative log-likelihood) of one model."""
    if len(y) == 0:
        return float("nan"), float("nan")
    probs = predict_probs(model, x)
    y = y.cpu()
    accuracy = float((probs.argmax(1) == y).float().mean())
    nll = float(-torch.log(probs[torch.arange(len(y)), y].clamp_min(1e-12)).mean())
    return accuracy, nll


def member_predictions(model: nn.Module, eval_sets: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Probabilities of one trained member on the test split and every OOD set."""
    return {name: predict_probs(model, x).numpy() for name, x in eval_sets.items()}
