"""Dynamic placement: members reach ranks from rank 0's queue as ranks free up; static stays round-robin.

The queue bodies run on COMM_SELF under pytest and on two real mpiexec ranks (`python -m mpi4py
tests/engine/test_placement.py` runs them on COMM_WORLD). The real worker with dynamic placement runs in
tests/engine/test_fused.py (fused) and tests/test_strategies.py (local, whose default placement is dynamic).
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from mpi4py import MPI

from engine.config import RunConfig, parse_config
from engine.placement import MemberQueue, Placement, announced_members
from engine.rank import RankContext
from engine.reporter import Reporter, Sink

REPO = Path(__file__).resolve().parents[2]
MPIEXEC = str(Path(sys.executable).parent / "mpiexec")


def config(members: int, ranks: int, strategy: str = "local", placement: str = "dynamic") -> RunConfig:
    return parse_config(
        {
            "data": {"dataset": "digits", "limit": 160, "ood": ["noise"]},
            "train": {"members": members, "epochs": 1, "batch_size": 32},
            "parallel": {"strategy": strategy, "placement": placement, "ranks": [{"count": ranks, "device": "cpu"}]},
        },
        "test",
    )


def context(comm: MPI.Comm, cfg: RunConfig) -> RankContext:
    import torch

    return RankContext(comm, cfg, torch.device("cpu"), Reporter(Sink(stream=io.BytesIO()), comm.Get_rank()))


def test_queue_grants_guided_chunks() -> None:
    """Large grants first, the tail split finely; never more than asked for, every member exactly once."""
    queue = MemberQueue(10, ranks=2)
    grants = [queue.take(8) for _ in range(6)]
    assert grants[0] == [0, 1, 2, 3, 4] and grants[1] == [5, 6, 7]
    assert sum(grants, []) == list(range(10)) and grants[-1] == []
    assert MemberQueue(4, ranks=2).take(1) == [0]


def test_announced_members() -> None:
    assert announced_members(context(MPI.COMM_SELF, config(3, 1, "sequential"))) == [0, 1, 2]
    assert announced_members(context(MPI.COMM_SELF, config(3, 1, placement="static"))) == [0, 1, 2]


# --------------------------------------------------------------------------- bodies for COMM_SELF and COMM_WORLD


def check_every_member_placed_once(comm: MPI.Comm) -> None:
    cfg = config(7, comm.Get_size(), "fused")
    with Placement(context(comm, cfg), chunk=3) as placement:
        mine = list(placement.chunks())
    assert all(1 <= len(c) <= 3 for c in mine)
    everyone = comm.allgather(sum(mine, []))
    assert sorted(sum(everyone, [])) == list(range(7))


def check_a_busy_rank_gets_no_more_members(comm: MPI.Comm) -> None:
    """Rank 1 stays busy with its first member until rank 0 has drained the queue: the free rank takes the rest.

    'Busy' is a wait for rank 0's word on a side channel, not a sleep, so the outcome is the same on any machine.
    """
    cfg = config(12, comm.Get_size())
    ctx = context(comm, cfg)
    two = comm.Get_size() == 2
    if two:
        # Rank 0 speaks on the side channel while its dispenser thread serves the queue.
        assert MPI.Query_thread() == MPI.THREAD_MULTIPLE
    side = comm.Dup()
    busy_until_told = ctx.rank == 1
    with Placement(ctx) as placement:
        mine: list[int] = []
        for chunk in placement.chunks():
            mine += chunk
            if busy_until_told:
                side.recv(source=0)  # "the queue is dry": only now does rank 1 ask again
                busy_until_told = False
        if ctx.rank == 0 and two:
            side.send("the queue is dry", dest=1)
    if busy_until_told:
        side.recv(source=0)  # rank 0 was quick enough to take every member
    side.Free()
    counts = comm.allgather(len(mine))
    assert sum(counts) == 12
    if two:
        assert counts[1] <= 1, counts


def check_static_is_round_robin(comm: MPI.Comm) -> None:
    cfg = config(5, comm.Get_size(), placement="static")
    ctx = context(comm, cfg)
    with Placement(ctx, chunk=2) as placement:
        mine = sum(placement.chunks(), [])
    assert mine == list(range(comm.Get_rank(), 5, comm.Get_size()))


BODIES = [check_every_member_placed_once, check_a_busy_rank_gets_no_more_members, check_static_is_round_robin]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: b.__name__)
def test_on_comm_self(body) -> None:  # noqa: ANN001
    body(MPI.COMM_SELF)


@pytest.mark.mpi
@pytest.mark.timeout(180)
def test_queue_bodies_on_two_real_ranks() -> None:
    done = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "mpi4py", __file__], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


if __name__ == "__main__":
    for body in BODIES:
        body(MPI.COMM_WORLD)
