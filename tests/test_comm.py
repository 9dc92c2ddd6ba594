"""Engine functions take `comm`: the same bodies run on COMM_SELF under pytest and on COMM_WORLD under mpiexec.

`python -m tests.test_comm` runs every body on COMM_WORLD; the last test does that with `mpiexec -n 2`.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from mpi4py import MPI

from engine.batches import LocalBatches
from engine.config import RunConfig, parse_config
from engine.rank import load_local
from engine.strategies.broadcast import BroadcastBatches, share_splits
from ens_tui.launcher import find_mpiexec
from tests.conftest import REPO

CONFIG: RunConfig = parse_config({"data": {"dataset": "digits", "limit": 200, "ood": ["invert"]},
                                  "train": {"batch_size": 24}}, "test")


def check_every_rank_receives_rank_zero_data(comm: MPI.Comm) -> None:
    reference, reference_sets = load_local(CONFIG)  # what rank 0 loads; used here only to compare
    loaded = (reference, reference_sets) if comm.Get_rank() == 0 else (None, None)
    splits, sets, n_train = share_splits(comm, *loaded)
    assert n_train == len(reference.y_train)
    assert torch.equal(splits.x_val, reference.x_val) and torch.equal(splits.y_test, reference.y_test)
    assert sets.keys() == reference_sets.keys()
    assert all(torch.equal(sets[k], reference_sets[k]) for k in sets)
    assert splits.shape == reference.shape and splits.classes == reference.classes


def check_broadcast_batches_equal_local_batches(comm: MPI.Comm) -> None:
    reference, _ = load_local(CONFIG)
    splits, _, n_train = share_splits(comm, *(load_local(CONFIG) if comm.Get_rank() == 0 else (None, None)))
    local = LocalBatches(reference.x_train, reference.y_train, 24, CONFIG.seed, torch.device("cpu"))
    shipped = BroadcastBatches(comm, splits, n_train, 24, CONFIG.seed, torch.device("cpu"))
    assert shipped.steps == local.steps
    for epoch in (0, 1):
        for (x1, y1), (x2, y2) in zip(local.epoch(epoch), shipped.epoch(epoch), strict=True):
            assert torch.equal(x1, x2) and torch.equal(y1, y2)


BODIES = [check_every_rank_receives_rank_zero_data, check_broadcast_batches_equal_local_batches]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_broadcast_batches_on_cuda_are_never_overwritten_in_flight() -> None:
    """Every batch reaches the GPU intact although one pinned host buffer receives them all."""
    reference, _ = load_local(CONFIG)
    cuda = torch.device("cuda")
    splits, _, n_train = share_splits(MPI.COMM_SELF, *load_local(CONFIG))
    local = LocalBatches(reference.x_train, reference.y_train, 24, CONFIG.seed, torch.device("cpu"))
    shipped = BroadcastBatches(MPI.COMM_SELF, splits, n_train, 24, CONFIG.seed, cuda)
    # Hold on to every device batch without syncing: a copy still reading the buffer when the next batch
    # is written into it would show up as a batch equal to its successor.
    received = list(shipped.epoch(0))
    torch.cuda.synchronize()
    for (x1, y1), (x2, y2) in zip(local.epoch(0), received, strict=True):
        assert torch.equal(x1, x2.cpu()) and torch.equal(y1, y2.cpu())


@pytest.mark.parametrize("body", BODIES, ids=lambda b: b.__name__)
def test_on_comm_self(body) -> None:
    body(MPI.COMM_SELF)


@pytest.mark.mpi
def test_the_same_bodies_on_two_real_ranks() -> None:
    done = subprocess.run([find_mpiexec(), "-n", "2", sys.executable, "-m", "mpi4py", "-m", "tests.test_comm"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ok") == 2 * len(BODIES)


if __name__ == "__main__":
    for body in BODIES:
        body(MPI.COMM_WORLD)
        print(f"rank {MPI.COMM_WORLD.Get_rank()}: {body.__name__} ok", flush=True)
