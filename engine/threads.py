"""How many CPU threads a rank computes with, and whether its kernels must be deterministic.

The thread count is part of a result: float reductions split over another number of threads add up
in another order. Ranks normally share the host's cores (never oversubscribing them); a deterministic
run instead gives every rank exactly `threads_per_rank`, whatever the strategy or rank count, and
asks torch for deterministic kernels — so every strategy trains bit-identical members.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from engine.config import ParallelConfig


def host_cores() -> tuple[int, int]:
    """(cores of the host, cores this process may run on)."""
    cores = os.cpu_count() or 1
    bound = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return cores, bound


def clamp_threads(threads: int, ranks_here: int, warn: Callable[[str], object] | None = None) -> int:
    """Keep `threads x ranks on this host` within the host's cores: oversubscribed ranks only slow each other.

    Sets torch's intra-op threads and returns the number used; `warn(message)` hears about a clamp.
    """
    cores, bound = host_cores()
    # A rank that mpiexec pinned to its own cores may use them all; otherwise the ranks share the host.
    allowed = bound if bound < cores else max(1, cores // max(ranks_here, 1))
    used = min(threads, allowed)
    if used < threads and warn is not None:
        warn(f"threads_per_rank = {threads} with {ranks_here} rank(s) on {cores} core(s) would oversubscribe "
             f"the CPU; using {used} thread(s) per rank")
    _set_threads(used)
    return used


def set_compute_mode(parallel: ParallelConfig, ranks_here: int, warn: Callable[[str], object] | None = None) -> int:
    """Threads (and kernel determinism) for this rank, before it builds anything; returns the threads used."""
    if not parallel.deterministic:
        return clamp_threads(parallel.threads_per_rank, ranks_here, warn)
    cores, _ = host_cores()
    if parallel.threads_per_rank * ranks_here > cores and warn is not None:
        warn(f"deterministic: {ranks_here} rank(s) × {parallel.threads_per_rank} thread(s) oversubscribe "
             f"{cores} core(s); kept, since the thread count is part of the result")
    # cuBLAS reads this when its first handle is made; set before any CUDA work.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    _set_threads(parallel.threads_per_rank)
    return parallel.threads_per_rank


def _set_threads(n: int) -> None:
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
