"""Which rank trains which member: round-robin up front, or from a queue as ranks free up.

`static` is the seed's split: member i goes to rank i mod size, decided before anyone starts. On a
mixed setup (CPU×2 + GPU×1) that makes the fast rank wait for the slow ones. `dynamic` keeps one queue
of member indices on rank 0; each rank takes work when it is free, so a fast device simply takes more.

The queue needs no MPI progress from rank 0's training loop: a small dispenser thread on rank 0 polls
for requests (`Iprobe` on a private duplicate communicator, a few ms apart, so it costs no core) and
answers each with the next member indices. Rank 0 itself takes from the same queue under a lock,
without messages. Requests ask for a chunk (fused ranks train several members at once); grants follow
guided self-scheduling: at most ceil(remaining / ranks), so early grants are large and the tail is
split finely — fused ranks get big chunks, and no rank is left holding the last long piece of work.

The protocol cannot deadlock: a rank only ever waits for the reply to its own request, the dispenser
always replies (an empty list once the queue is dry), and it exits after every other rank has been told
that the queue is dry. The one reply it defers is a flagged straggler's (engine.control), and only while
the queue holds members and some unflagged rank still asks for work, which then takes them.

The dispenser calls MPI from a second thread, which only an MPI initialised with THREAD_MULTIPLE allows
(mpi4py asks for it; the mpich wheel grants it). Where the MPI grants less (`MPI.Query_thread()`), the
run is served without a thread: placement falls back to `static`, and rank 0 says so in the log.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from engine.control import ControlReader, RestartMember, Stragglers

if TYPE_CHECKING:
    from mpi4py import MPI

    from engine.rank import RankContext

REQUEST_TAG = 71
REPLY_TAG = 72
POLL_S = 0.005
WAIT_S = 0.2
"""How often a flagged straggler on rank 0 asks its own queue again."""


def wants_dynamic(ctx: RankContext) -> bool:
    """Whether the config asks for a member queue (local and fused on more than one rank)."""
    parallel = ctx.config.parallel
    return parallel.placement == "dynamic" and parallel.strategy in ("local", "fused") and ctx.size > 1


def threads_may_call_mpi() -> bool:
    """Whether this MPI lets a second thread make MPI calls (the dispenser does)."""
    from mpi4py import MPI

    return MPI.Query_thread() == MPI.THREAD_MULTIPLE


def uses_dynamic(ctx: RankContext) -> bool:
    """Whether this run hands members out from a queue: asked for, and the MPI allows the dispenser thread."""
    return wants_dynamic(ctx) and threads_may_call_mpi()


def placement_warning(ctx: RankContext) -> str | None:
    """Why a dynamic placement that was asked for runs static, or None."""
    if not wants_dynamic(ctx) or threads_may_call_mpi():
        return None
    from mpi4py import MPI

    levels = {MPI.THREAD_SINGLE: "SINGLE", MPI.THREAD_FUNNELED: "FUNNELED", MPI.THREAD_SERIALIZED: "SERIALIZED"}
    level = levels.get(MPI.Query_thread(), str(MPI.Query_thread()))
    return (f"placement = 'dynamic' needs MPI_THREAD_MULTIPLE for rank 0's member queue, but this MPI gives "
            f"THREAD_{level}; members are placed round-robin (static) instead")


def announced_members(ctx: RankContext) -> list[int]:
    """What `hello` can promise up front: the static share, or nothing when the queue decides."""
    if ctx.config.parallel.strategy == "sequential":
        return list(range(ctx.config.train.members))
    return [] if uses_dynamic(ctx) else ctx.static_members()


Judge = Callable[[], "str | None"]
"""Why no further member is worth handing out (`train.stop_when_nll_gain_below`), or None."""


class MemberQueue:
    """Rank 0's queue of member indices, shared by its own training loop and the dispenser thread.

    Before each grant it reads the launcher's requests (engine.control): a restarted member goes to the front
    and is granted alone (members trained together share one learning rate), and a straggler is granted nothing
    while it is flagged and a rank that is not still asks for work.
    """

    def __init__(self, members: int, ranks: int, judge: Judge | None = None, control: ControlReader | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.pending: deque[int] = deque(range(members))
        self.ranks = ranks
        self.judge = judge
        self.control = control
        self.log = log or (lambda message: None)
        self.asking: set[int] = set(range(ranks))
        """Ranks not yet told that the queue is dry."""
        self.restarted: set[int] = set()
        self.stopped: str | None = None
        """Why the queue stopped handing out members before it was empty."""
        self.lock = threading.Lock()

    def take(self, wanted: int, rank: int = 0) -> list[int] | None:
        """Up to `wanted` members, never more than a fair share of what is left (guided self-scheduling); an
        empty list once the queue is dry; None when `rank` must wait (a flagged straggler)."""
        with self.lock:
            self._read_requests()
            if self.pending and self.judge is not None and (why := self.judge()):
                self.stopped = why
                self.pending.clear()
            if self.pending and self.control is not None and rank in self.control.stragglers and \
                    self.asking - self.control.stragglers:
                return None
            if self.pending and self.pending[0] in self.restarted:
                return [self.pending.popleft()]
            share = max(1, math.ceil(len(self.pending) / self.ranks))
            n = min(max(wanted, 1), share, len(self.pending))
            granted = [self.pending.popleft() for _ in range(n)]
            if not granted:
                self.asking.discard(rank)
            return granted

    def _read_requests(self) -> None:
        if self.control is None:
            return
        for request in self.control.poll():
            if isinstance(request, RestartMember) and request.member not in self.pending:
                self.pending.appendleft(request.member)
                self.restarted.add(request.member)
                self.log(f"member {request.member} is queued again, to restart from its initial weights at "
                         f"{request.lr_factor:g} × the learning rate")
            elif isinstance(request, Stragglers):
                flagged = ", ".join(map(str, request.ranks)) or "none"
                self.log(f"member queue: ranks flagged as stragglers now: {flagged} (no new members while flagged)")

    def unserved_restarts(self) -> list[int]:
        """Restarts asked for after every rank had been told the queue was dry (nobody will train them)."""
        with self.lock:
            self._read_requests()
            return [m for m in self.pending if m in self.restarted]


class Dispenser(threading.Thread):
    """Rank 0's thread that answers other ranks' requests until each has heard that the queue is dry."""

    def __init__(self, comm: MPI.Comm, queue: MemberQueue) -> None:
        super().__init__(name="member-dispenser", daemon=True)
        self.comm, self.queue = comm, queue
        self.error: BaseException | None = None

    def run(self) -> None:
        from mpi4py import MPI

        try:
            remaining = self.comm.Get_size() - 1
            status = MPI.Status()
            parked: dict[int, int] = {}
            """Requests not answered yet (a straggler's), by rank: how many members it wants."""
            while remaining:
                if not self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=REQUEST_TAG, status=status):
                    if parked:
                        remaining -= self._serve(parked)
                    time.sleep(POLL_S)
                    continue
                source = status.Get_source()
                parked[source] = self.comm.recv(source=source, tag=REQUEST_TAG)
                remaining -= self._serve(parked)
        except BaseException as err:  # noqa: BLE001 - surfaced by the main thread in `close`
            self.error = err

    def _serve(self, parked: dict[int, int]) -> int:
        """Answer every request the queue lets through; returns how many ranks were told that it is dry."""
        dry = 0
        for source, wanted in list(parked.items()):
            granted = self.queue.take(wanted, source)
            if granted is None:
                continue
            del parked[source]
            self.comm.send(granted, dest=source, tag=REPLY_TAG)
            dry += not granted
        return dry


class Placement:
    """Iterate over the chunks of members this rank should train; the same API for static and dynamic."""

    def __init__(self, ctx: RankContext, chunk: int = 1) -> None:
        self.ctx, self.chunk = ctx, max(1, chunk)
        self.dynamic = uses_dynamic(ctx)
        self.comm: MPI.Comm | None = None
        self.queue: MemberQueue | None = None
        self.dispenser: Dispenser | None = None
        if self.dynamic:
            # A private communicator keeps the queue's messages apart from the strategy's collectives.
            self.comm = ctx.comm.Dup()
            if ctx.rank == 0:
                self.queue = self._queue()
                self.dispenser = Dispenser(self.comm, self.queue)
                self.dispenser.start()
        elif ctx.size == 1:
            # One rank takes every member in order: its own queue, so it can stop at "enough" and restart too.
            self.queue = self._queue()

    def _queue(self) -> MemberQueue:
        folder = self.ctx.folder
        return MemberQueue(self.ctx.config.train.members, self.ctx.size, stop_judge(self.ctx),
                           ControlReader(folder) if folder is not None else None, self.ctx.reporter.log)

    @property
    def stopped(self) -> str | None:
        """Why this run's queue stopped handing out members early (rank 0), or None."""
        return self.queue.stopped if self.queue is not None else None

    def chunks(self) -> Iterator[list[int]]:
        """Member indices in chunks of at most `chunk`; dynamic chunks arrive as this rank asks for them."""
        if not self.dynamic and self.queue is None:
            mine = self.ctx.static_members()
            for i in range(0, len(mine), self.chunk):
                yield mine[i : i + self.chunk]
            return
        while True:
            got = self._request()
            if not got:
                return
            yield got

    def _request(self) -> list[int]:
        if self.queue is not None:
            while (granted := self.queue.take(self.chunk, self.ctx.rank)) is None:
                time.sleep(WAIT_S)
            return granted
        assert self.comm is not None
        self.comm.send(self.chunk, dest=0, tag=REQUEST_TAG)
        return list(self.comm.recv(source=0, tag=REPLY_TAG))

    def close(self) -> None:
        """Wait for the dispenser (it ends once every rank has drained the queue) and free the communicator."""
        if self.dispenser is not None:
            self.dispenser.join()
            if self.dispenser.error is not None:
                raise RuntimeError(f"member dispenser failed: {self.dispenser.error!r}") from self.dispenser.error
        self.ctx.stopped_early = self.stopped
        if self.queue is not None and (late := self.queue.unserved_restarts()):
            self.ctx.reporter.log(f"member{'s' if len(late) > 1 else ''} {', '.join(map(str, late))} not restarted: "
                                  "the request came after every rank had finished its members", "warning")
        if self.comm is not None:
            self.comm.Free()
            self.comm = None

    def __enter__(self) -> Placement:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()


def stop_judge(ctx: RankContext) -> Judge | None:
    """`train.stop_when_nll_gain_below` as a question the queue asks before each grant (rank 0 only)."""
    threshold, folder = ctx.config.train.stop_when_nll_gain_below, ctx.folder
    if threshold <= 0 or folder is None or ctx.rank != 0:
        return None
    from engine.live import worth_more

    def judge() -> str | None:
        why = worth_more(folder, ctx.config.train.epochs, threshold, seed=ctx.config.seed)
        if why:
            ctx.reporter.log(f"no further members are handed out: {why}", "info")
        return why

    return judge


def ranks_on_host(comm: MPI.Comm) -> int:
    """How many ranks of `comm` share this rank's host (collective)."""
    import socket

    hosts = comm.allgather(socket.gethostname())
    return hosts.count(hosts[comm.Get_rank()])
