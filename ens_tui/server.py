"""The progress socket: one TCP connection per rank, newline-delimited JSON events, token-checked.

Nothing a peer sends can crash it: frames that are too large, not JSON, of an unknown type, from
a connection without a valid `hello`, or naming a rank or member out of range are dropped and
counted. Only validated events reach the launcher's queue.
"""

from __future__ import annotations

import asyncio
import hmac
from collections import Counter
from dataclasses import dataclass

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
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        """Listen; returns the endpoint `host:port` ranks connect to."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=ev.MAX_FRAME_BYTES)
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _drop(self, reason: str) -> None:
        self.dropped[reason] += 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        rank: int | None = None
        clean = False
        try:
            rank = await self._greet(reader)
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
            self._tasks.discard(task)
            writer.close()
            if rank is not None:
                await self.queue.put(Disconnected(rank, clean))

    async def _greet(self, reader: asyncio.StreamReader) -> int | None:
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
        if hello.rank in self.connected:
            self._drop("duplicate hello")
            return None
        if any(m >= self.members for m in hello.members):
            self._drop("member out of range")
            return None
        self.connected.add(hello.rank)
        await self.queue.put(hello)
        return hello.rank

    def _validate(self, frame: bytes, rank: int) -> ev.Event | None:
        try:
            event = ev.decode(frame)
        except ev.FrameError:
            self._drop("invalid frame")
            return None
        if isinstance(event, ev.Hello | ev.RunDone) or event.rank != rank:
            self._drop("frame not allowed from a rank")
            return None
        member = getattr(event, "member", None)
        if member is not None and member >= self.members:
            self._drop("member out of range")
            return None
        if isinstance(event, ev.PredictionsSaved) and any(m >= self.members for m in event.members):
            self._drop("member out of range")
            return None
        return event


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
