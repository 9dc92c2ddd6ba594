"""The progress socket: real TCP on loopback, a token-checked hello, and nothing a stranger sends gets in."""

from __future__ import annotations

import asyncio
import json

import pytest

from engine import events as ev
from engine.run_folder import RunFolder
from ens_tui.server import Disconnected, EventServer
from tests.conftest import assert_no_process_left, run_launcher, run_pids, tiny_config

TOKEN = "s3cret-token"


def hello(rank: int = 0, token: str = TOKEN, size: int = 2, members: list[int] | None = None) -> bytes:
    return ev.encode(ev.Hello(rank=rank, token=token, size=size, host="h", pid=1, device="cpu", strategy="local",
                              members=members or [rank]))


def step(rank: int = 0, member: int = 0) -> bytes:
    return ev.encode(ev.Step(rank=rank, member=member, epoch=0, step=1, steps=10, loss=1.0, samples_per_s=5.0))


async def connect(endpoint: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, _, port = endpoint.rpartition(":")
    return await asyncio.open_connection(host, int(port))


async def collect(server: EventServer, seconds: float = 0.3) -> list[object]:
    out: list[object] = []
    end = asyncio.get_running_loop().time() + seconds
    while (left := end - asyncio.get_running_loop().time()) > 0:
        try:
            out.append(await asyncio.wait_for(server.queue.get(), left))
        except TimeoutError:
            break
    return out


def test_a_rank_with_the_token_gets_through_and_strangers_do_not() -> None:
    async def scenario() -> None:
        server = EventServer(TOKEN, size=2, members=2)
        endpoint = await server.start()
        _, good = await connect(endpoint)
        good.write(hello(0) + step(0) + ev.encode(ev.Goodbye(rank=0)))
        _, wrong = await connect(endpoint)
        wrong.write(hello(1, token="guess") + step(1))
        await good.drain()
        await wrong.drain()
        good.close()
        items = await collect(server)
        types = [getattr(i, "type", None) for i in items]
        assert types == ["hello", "step", "goodbye", None]
        assert items[-1] == Disconnected(0, clean=True)
        assert server.dropped["bad token"] == 1
        await server.close()

    asyncio.run(scenario())


def test_garbage_is_dropped_and_counted_without_harming_the_connection() -> None:
    async def scenario() -> None:
        server = EventServer(TOKEN, size=2, members=2)
        endpoint = await server.start()
        _, w = await connect(endpoint)
        w.write(hello(0))
        w.write(b"not json\n")
        w.write(b'{"type": "teleport", "rank": 0}\n')
        w.write(b"x" * (ev.MAX_FRAME_BYTES + 10) + b"\n")
        w.write(step(0, member=7))  # member out of range
        w.write(step(1, member=0))  # pretends to be another rank
        w.write(hello(0))  # a second hello on the same connection
        w.write(step(0, member=1))
        await w.drain()
        items = await collect(server)
        assert [getattr(i, "type", None) for i in items] == ["hello", "step"]
        assert sum(server.dropped.values()) == 6
        # A second connection claiming an already connected rank is refused.
        _, dup = await connect(endpoint)
        dup.write(hello(0))
        await dup.drain()
        await collect(server, 0.2)
        assert server.dropped["duplicate hello"] == 1
        await server.close()

    asyncio.run(scenario())


def test_a_silent_connection_is_closed_after_the_hello_timeout() -> None:
    async def scenario() -> None:
        server = EventServer(TOKEN, size=1, members=1)
        endpoint = await server.start()
        reader, _ = await connect(endpoint)
        closed = await asyncio.wait_for(reader.read(), timeout=5)
        assert closed == b""
        assert server.dropped["no hello in time"] == 1
        await server.close()

    asyncio.run(scenario())


@pytest.mark.mpi
def test_a_rogue_client_during_a_real_run_changes_nothing(tmp_path) -> None:
    """Two genuine ranks train while a stranger without the token connects and sends frames."""
    rogue_sent: list[int] = []

    async def on_event(event: ev.Event, launcher) -> None:
        if isinstance(event, ev.Hello) and not rogue_sent:
            endpoint = json.loads(RunFolder(launcher.run_dir).info.read_text())["endpoint"]
            _, w = await connect(endpoint)
            w.write(hello(0, token="0" * 64) + step(0) + b"junk\n")
            await w.drain()
            w.close()
            rogue_sent.append(1)

    config = tiny_config(tmp_path)
    events, launcher = run_launcher(config, on_event=on_event)
    assert rogue_sent and launcher.status == "finished"
    assert launcher.server.dropped["bad token"] >= 1
    assert sum(isinstance(e, ev.Hello) for e in events) == 2
    assert_no_process_left(run_pids(events))
