"""Where a rank's training batches come from; every source yields an epoch's (x, y) on the training device.

Under `train.data_order = "shared"` the batch order depends only on (run seed, epoch): every member sees
the same batches. Under "per-member" member i's order depends only on (run seed, i, epoch), and a batch
stacks one row per member: x (K, B, ...), y (K, B). Either way a member sees the same batches on every strategy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import torch

from engine.seeding import batch_slices, epoch_order


class BatchSource(Protocol):
    """Yields the (x, y) batches of one epoch, already on the training device."""

    steps: int
    collective: bool
    """Every rank must walk every epoch (the batches come from a collective such as `Bcast`)."""

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The shared stream. A source that serves `train.data_order = "per-member"` (`LocalBatches`) also takes
        `members` and stacks their own batches; broadcast serves only the shared one."""
        ...


class LocalBatches:
    """Batches sliced from in-memory tensors; on CUDA the whole split lives on the device when it fits."""

    collective = False

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int, device: torch.device) -> None:
        self.x, self.y = place(x, device), place(y, device)
        self.device, self.seed, self.batch_size = device, seed, batch_size
        self.slices = batch_slices(len(y), batch_size)
        self.steps = len(self.slices)

    def epoch(self, epoch: int, members: Sequence[int] | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The shared stream; or, given `members`, each one's own order stacked (row j is `members[j]`'s batch)."""
        n = len(self.y)
        order = epoch_order(self.seed, epoch, n) if members is None else \
            torch.stack([epoch_order(self.seed, epoch, n, m) for m in members])
        order = order.to(self.x.device)
        for s in self.slices:
            idx = order[..., s]
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
