"""Seeds that make results independent of strategy, rank count and placement.

Member *i*'s initial weights depend only on (run seed, i); the batch order of an epoch only on
(run seed, epoch), or on (run seed, i, epoch) under `train.data_order = "per-member"`. Everything else
(which rank, which device, fused or not) changes speed, not results.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def derive_seed(seed: int, *parts: int | str) -> int:
    """A 63-bit seed for (seed, parts…), stable across processes and Python versions."""
    words = [seed] + [p if isinstance(p, int) else zlib.crc32(p.encode()) for p in parts]
    return int(np.random.SeedSequence(words).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)


def member_seed(seed: int, member: int) -> int:
    """The seed member `member` is initialised from."""
    return derive_seed(seed, "member", member)


def epoch_order(seed: int, epoch: int, n: int, member: int | None = None) -> torch.Tensor:
    """The shuffled sample order of `epoch`: the one every member shares, or member `member`'s own.

    A function of position alone, so a resumed member continues in the order it was trained in.
    """
    parts = ("epoch", epoch) if member is None else ("member-epoch", member, epoch)
    return torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, *parts)))


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Positions of each batch in an epoch's order; the last batch may be short."""
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
