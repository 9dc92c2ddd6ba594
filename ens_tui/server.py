"""The progress socket: one TCP connection per rank, newline-delimited JSON events, token-checked.

Nothing a peer sends can crash it: frames that are too large, not JSON, of an unknown type, from
a connection without a valid `hello`, or naming a rank or member out of range are dropped and
counted. Only validated events reach the launcher's queue.

The token alone does not make a rank: anyone who can read mpiexec's environment (its user, root) holds
it. So a hello from this machine must also come from the process it names, a descendant of mpiexec;
otherwise a process started before the ranks could claim their slots and speak for them.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import socket
from collections import Counter
from dataclasses import dataclass

import psutil

from engine import events as ev

HELLO_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Disconnected:
    """A rank's connection closed; `clean` when it said goodbye first."""

    rank: int
    clean: bool


class EventServer:
    """Accepts rank connections and puts validated events (and disconnects) on `queue`."""

    def __init__(self, token: str, size: int, members: int, host: str = "127.0.0.1", port: int = 0) -> None:
        self.token, self.size, self.members = token, size, members
        self.host, self.port = host, port
        self.queue: asyncio.Queue[ev.Event | Disconnected] = asyncio.Queue()
        self.dropped: Counter[str] = Counter()
        self.connected: set[int] = set()
        self.spawner_pid: int | None = None
        """mpiexec's pid once it runs: a hello from this machine must come from one of its descendants."""
        self._spawned: asyncio.Future[int | None] | None = None
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def expect_spawner(self) -> None:
        """Hellos wait for `spawned` from now on: no moment in which the token alone would admit a local rank."""
        self._spawned = asyncio.get_running_loop().create_future()

    def spawned(self, pid: int | None) -> None:
        """mpiexec started as `pid` (None: it could not start, so no hello can come from a rank)."""
        self.spawner_pid = pid
        if self._spawned is not None and not self._spawned.done():
            self._spawned.set_result(pid)

    async def start(self) -> str:
        """Listen; returns the endpoint `host:port` ranks connect to."""
        self._server = await asyncio.start_server(self._accept, self.host, self.port, limit=ev.MAX_FRAME_BYTES)
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def close(self) -> None:
        """Stop listening and end every connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _drop(self, reason: str) -> None:
        self.dropped[reason] += 1

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve each connection in a task of this server's own, tracked from its creation, so close() ends them all.

        A handler task that asyncio.start_server makes itself prints a traceback when it ends cancelled (Python
        3.11), and one accepted just before close() may not have started yet to be found and cancelled.
        """
        task = asyncio.ensure_future(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: writer.close())  # also when cancelled before it began

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rank: int | None = None
        clean = False
        try:
            rank = await self._greet(reader, writer)
            if rank is None:
                return
            while True:
                frame = await _read_frame(reader)
                if frame is None:
                    break
                if frame is _OVERSIZE:
                    self._drop("oversize frame")
                    continue
                event = self._validate(frame, rank)
                if event is not None:
                    clean = clean or event.type == "goodbye"
                    await self.queue.put(event)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            raise
        finally:
            writer.close()
            if rank is not None:
                await self.queue.put(Disconnected(rank, clean))

    async def _greet(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int | None:
        """The first frame must be a valid hello within HELLO_TIMEOUT_S; returns the rank, or None to hang up."""
        try:
            frame = await asyncio.wait_for(_read_frame(reader), HELLO_TIMEOUT_S)
        except TimeoutError:
            self._drop("no hello in time")
            return None
        if frame is None or frame is _OVERSIZE:
            self._drop("bad hello")
            return None
        try:
            hello = ev.decode(frame)
        except ev.FrameError:
            self._drop("bad hello")
            return None
        if not isinstance(hello, ev.Hello) or not hmac.compare_digest(hello.token.encode(), self.token.encode()):
            self._drop("bad token")
            return None
        if hello.rank is None or hello.rank >= self.size or hello.size != self.size:
            self._drop("rank out of range")
            return None
        if not await self._from_a_rank(hello, writer):
            self._drop("not a rank process")
            return None
        if hello.rank in self.connected:
            self._drop("duplicate hello")
            return None
        if any(m >= self.members for m in hello.members):
            self._drop("member out of range")
            return None
        self.connected.add(hello.rank)
        await self.queue.put(hello)
        return hello.rank

    async def _from_a_rank(self, hello: ev.Hello, writer: asyncio.StreamWriter) -> bool:
        """Whether a hello from this machine comes from the process it names, below mpiexec.

        Without a spawner (the server on its own) or from another machine, the token is all there is to check.
        """
        spawner = await asyncio.shield(self._spawned) if self._spawned is not None else self.spawner_pid
        peer, ours = writer.get_extra_info("peername"), writer.get_extra_info("sockname")
        if self._spawned is not None and spawner is None:
            return False
        if spawner is None or not peer or not ours:
            return True
        return await asyncio.to_thread(_local_rank_check, tuple(peer[:2]), tuple(ours[:2]), hello.pid, spawner)

    def _validate(self, frame: bytes, rank: int) -> ev.Event | None:
        try:
            event = ev.decode(frame)
        except ev.FrameError:
            self._drop("invalid frame")
            return None
        if isinstance(event, ev.Hello | ev.RankSilent | ev.Straggler | ev.RunDone) or event.rank != rank:
            self._drop("frame not allowed from a rank")
            return None
        member = getattr(event, "member", None)
        if member is not None and member >= self.members:
            self._drop("member out of range")
            return None
        listed = [*event.members, *event.finished] if isinstance(event, ev.Ensemble) else (
            event.members if isinstance(event, ev.PredictionsSaved) else [])
        if any(m >= self.members for m in listed):
            self._drop("member out of range")
            return None
        return event


def _local_rank_check(peer: tuple[str, int], ours: tuple[str, int], pid: int, spawner: int) -> bool:
    """True for a remote peer; for a local one, whether process `pid` descends from `spawner` and holds the connection.

    Reads /proc (the process's ancestry and sockets): run it in a thread, once per hello.
    """
    try:
        if not _is_local(peer[0]):
            return True
        proc = psutil.Process(pid)
        if not any(p.pid == spawner for p in proc.parents()):
            return False
        connections = proc.net_connections if hasattr(proc, "net_connections") else proc.connections  # psutil < 6
        return any(c.laddr and c.raddr and _same(c.laddr, peer) and _same(c.raddr, ours)
                   for c in connections(kind="inet"))
    except (psutil.Error, ValueError):
        return False


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address itself: an IPv6 scope dropped, an IPv4-mapped IPv6 address as the IPv4 one."""
    address = ipaddress.ip_address(host.split("%", 1)[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


def _same(a: tuple[str, int], b: tuple[str, int]) -> bool:
    return a[1] == b[1] and _address(a[0]) == _address(b[0])


def _is_local(host: str) -> bool:
    """Whether `host` is one of this machine's addresses (loopback included)."""
    address = _address(host)
    if address.is_loopback or address.is_unspecified:
        return True
    return any(_address(a.address) == address for addrs in psutil.net_if_addrs().values() for a in addrs
               if a.family in (socket.AF_INET, socket.AF_INET6))


_OVERSIZE = b"<oversize>"


async def _read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next newline-terminated frame; None at EOF; _OVERSIZE for a frame over the limit (skipped)."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError:
        return None  # EOF, possibly mid-frame: a torn last frame is not an event
    except asyncio.LimitOverrunError as err:
        # Discard through the end of the oversized line, however long it is.
        await reader.readexactly(err.consumed)
        while True:
            try:
                await reader.readuntil(b"\n")
                break
            except asyncio.LimitOverrunError as more:
                await reader.readexactly(more.consumed)
        return _OVERSIZE
    return line
