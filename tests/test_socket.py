"""The progress socket: real TCP on loopback, a token-checked hello, and nothing a stranger sends gets in."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from engine import events as ev
from engine.run_folder import RunFolder
from ens_tui.launcher import Launcher
from ens_tui.server import Disconnected, EventServer
from tests.conftest import REPO, assert_no_process_left, run_launcher, run_pids, tiny_config

TOKEN = "s3cret-token"


def hello(rank: int = 0, token: str = TOKEN, size: int = 2, members: list[int] | None = None, pid: int = 1) -> bytes:
    return ev.encode(ev.Hello(rank=rank, token=token, size=size, host="h", pid=pid, device="cpu", strategy="local",
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


# --------------------------------------------------------------------------- the token is not enough


def test_a_hello_from_this_machine_must_come_from_the_process_it_names_below_the_spawner() -> None:
    """A stand-in spawner: this test's parent (so this process is a rank below it) or a `sleep` child (so it is not)."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])

    async def judge(spawner: int, pid: int) -> tuple[list[object], dict[str, int]]:
        server = EventServer(TOKEN, size=2, members=2)
        server.spawner_pid = spawner
        endpoint = await server.start()
        _, w = await connect(endpoint)
        w.write(hello(0, pid=pid) + step(0))
        await w.drain()
        items = await collect(server, 1.0)
        w.close()
        await server.close()
        return [getattr(i, "type", None) for i in items], dict(server.dropped)

    try:
        genuine = asyncio.run(judge(os.getppid(), os.getpid()))
        not_below = asyncio.run(judge(sleeper.pid, os.getpid()))
        not_the_owner = asyncio.run(judge(os.getppid(), sleeper.pid))  # below the spawner, but not its socket
        unrelated = asyncio.run(judge(os.getppid(), os.getppid()))  # the spawner itself is no rank
    finally:
        sleeper.kill()
        sleeper.wait()
    assert genuine == (["hello", "step"], {})
    for refused in (not_below, not_the_owner, unrelated):
        assert refused == ([], {"not a rank process": 1})


FORGER = """
import socket, sys
host, port, *payloads = sys.argv[1:]
conns = [socket.create_connection((host, int(port))) for _ in payloads]
for conn, payload in zip(conns, payloads):
    conn.sendall(bytes.fromhex(payload))
for conn in conns:
    conn.settimeout(20)
    while conn.recv(4096):
        pass  # until the launcher hangs up
"""


def forged(rank: int, token: str, pid: int) -> bytes:
    """What a forger holding the token says for `rank`: perfect metrics, and a message that drives the terminal."""
    return b"".join(ev.encode(e) for e in (
        ev.Hello(rank=rank, token=token, size=2, host=socket.gethostname(), pid=pid, device="cpu", strategy="local",
                 members=[rank]),
        ev.Step(rank=rank, member=rank, epoch=0, step=1, steps=10, loss=-1.0, samples_per_s=1.0),
        ev.Epoch(rank=rank, member=rank, epoch=0, epochs=1, train_loss=-1.0, val_accuracy=1.0, seconds=1.0),
        ev.Log(rank=rank, message="forged"),
    )) + b'{"type":"log","rank":%d,"message":"\\u001b]0;pwned\\u0007\\u001b[2Jforged"}\n' % rank


@pytest.mark.mpi
def test_a_forger_holding_the_token_who_connects_before_the_ranks_claims_nothing(tmp_path: Path) -> None:
    """The same user can read the token from mpiexec's environment and race the ranks to their slots."""
    config = tiny_config(tmp_path)
    launcher = Launcher(config)
    seen: list[ev.Event] = []
    claimed_before_ranks: list[int] = []

    async def go() -> None:
        await launcher.start()
        assert launcher.server is not None and launcher.proc is not None
        token = psutil.Process(launcher.proc.pid).environ()[ev.TOKEN_ENV]
        endpoint = json.loads(RunFolder(launcher.run_dir).info.read_text())["endpoint"]
        host, _, port = endpoint.rpartition(":")
        below = [p.pid for p in psutil.Process(launcher.proc.pid).children(recursive=True)]
        # Rank 0 claimed for the forger itself; rank 1 for a real process below mpiexec that holds no such socket.
        forger = await asyncio.create_subprocess_exec(
            sys.executable, "-c", FORGER, host, port, forged(0, token, 0).hex(), forged(1, token, below[0]).hex(),
        )
        await forger.wait()
        claimed_before_ranks.extend(launcher.server.connected)
        assert launcher.server.dropped["not a rank process"] == 2
        async for event in launcher.events():
            seen.append(event)

    asyncio.run(go())
    assert launcher.status == "finished", launcher.reason
    assert claimed_before_ranks == [], "the ranks connected before the forger: the race was not run"
    assert launcher.server is not None and launcher.server.dropped == {"not a rank process": 2}
    hellos = [e for e in seen if isinstance(e, ev.Hello)]
    assert sorted(h.rank for h in hellos) == [0, 1]
    recorded = RunFolder(launcher.run_dir).events.read_text()
    assert "forged" not in recorded and "pwned" not in recorded
    assert not [e for e in seen if isinstance(e, ev.Step) and e.loss < 0]
    assert not [e for e in seen if isinstance(e, ev.Epoch) and e.train_loss < 0]
    assert_no_process_left(run_pids(seen))


# --------------------------------------------------------------------------- text that reaches a terminal


def test_no_text_a_peer_sends_can_drive_the_terminal() -> None:
    raw = "a\x1b[2J\x1b[31mred\x1b[0m\x1b]0;title\x07\x1b]8;;http://x\x1b\\link\rover\x9b1;1Hc1\x7f\x00\x08b"
    for event in (
        ev.decode(json.dumps({"type": "log", "rank": 0, "message": raw + "\nline 2\ttab"})),
        ev.decode(json.dumps({"type": "error", "rank": 0, "message": raw, "traceback": raw + "\n  File x"})),
        ev.decode(json.dumps({"type": "hello", "rank": 0, "token": "t", "size": 1, "host": raw + "\nhost",
                              "pid": 1, "device": raw, "strategy": "local"})),
        ev.decode(json.dumps({"type": "predictions_saved", "rank": 0, "path": raw, "members": [0]})),
        ev.RunDone(status="failed", reason=raw),
    ):
        for name, value in event.model_dump().items():
            if isinstance(value, str):
                assert all(c.isprintable() or c in "\n\t" for c in value), (name, value)
                assert "title" not in value and "[2J" not in value, (name, value)
    log = ev.decode(json.dumps({"type": "log", "rank": 0, "message": raw + "\nline 2\ttab"}))
    assert log.message == "aredlinkoverc1b\nline 2\ttab"
    one_line = ev.decode(json.dumps({"type": "member_start", "rank": 0, "member": 0, "device": "cuda\n:0\tx"}))
    assert one_line.device == "cuda :0 x"
    assert ev.Log(message="plain — ünïcode ✓").message == "plain — ünïcode ✓"


BOOM_PY = """
import os
from torch import nn


class Boom(nn.Module):
    \"\"\"Trains like any model where the launcher probes it; inside a rank its first step fails, loudly.\"\"\"

    def __init__(self, num_classes: int, in_channels: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels * image_size[0] * image_size[1], num_classes)

    def forward(self, x):
        if os.environ.get("ENS_TUI_TOKEN"):
            raise RuntimeError("\\x1b[2J\\x1b]0;pwned\\x07\\x1b[31mboom\\x1b[0m")
        return self.fc(x.flatten(1))
"""


def headless(config_path: Path, *, stray: bool = False) -> subprocess.CompletedProcess[str]:
    """`ens-tui --run-config` as a user runs it; with `stray`, connections that never finish a hello stay open
    to the end (a port scanner, a half-written frame)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop(ev.TOKEN_ENV, None)
    proc = subprocess.Popen([sys.executable, "-m", "ens_tui", "--run-config", str(config_path)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    held: list[socket.socket] = []

    def connect_strays() -> None:
        runs = config_path.parent / "runs"
        while proc.poll() is None:
            for info in runs.glob("*/run.json"):
                try:
                    host, _, port = json.loads(info.read_text())["endpoint"].rpartition(":")
                    conn = socket.create_connection((host, int(port)), timeout=5)
                    conn.sendall(b'{"type": "hello", "tok')
                    held.append(conn)
                except (OSError, ValueError, KeyError):
                    pass
            time.sleep(0.2)

    strays = threading.Thread(target=connect_strays, daemon=True)
    if stray:
        strays.start()
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
    if stray:
        strays.join()
        assert held, "no stray connection was ever open"
    for conn in held:
        conn.close()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.mpi
def test_a_rank_error_full_of_escape_sequences_reaches_no_terminal_raw(tmp_path: Path) -> None:
    (tmp_path / "boom_models.py").write_text(BOOM_PY)
    config = tiny_config(tmp_path, model={"name": "boom_models:Boom", "path": [str(tmp_path)]})
    (tmp_path / "run.toml").write_text(config.to_toml())
    done = headless(tmp_path / "run.toml")
    assert done.returncode != 0
    assert "boom" in done.stdout, done.stdout + done.stderr
    assert "\x1b" not in done.stdout + done.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    recorded = RunFolder(run_dir).events.read_text()
    errors = [e for e in map(ev.decode, recorded.splitlines()) if isinstance(e, ev.Error)]
    assert errors and all("RuntimeError: boom" in e.message for e in errors), errors
    assert "\\u001b" not in recorded  # an ESC, as JSON writes it (the traceback quotes the source's text)


# --------------------------------------------------------------------------- shutting down


def test_closing_the_server_mid_read_is_silent() -> None:
    """Python 3.11's streams print a traceback for every connection handler that ends cancelled."""
    reported: list[dict[str, object]] = []

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: reported.append(context))
        server = EventServer(TOKEN, size=2, members=2)
        endpoint = await server.start()
        _, greeted = await connect(endpoint)
        greeted.write(hello(0) + b'{"type": "st')  # a rank mid-frame
        _, silent = await connect(endpoint)
        silent.write(b'{"type": "hel')  # a stranger mid-hello
        await greeted.drain()
        await silent.drain()
        await collect(server, 0.2)
        late = [(await connect(endpoint))[1] for _ in range(5)]  # accepted just before the close, or not yet
        await server.close()
        for w in (greeted, silent, *late):
            w.close()
        await asyncio.sleep(0.1)

    asyncio.run(scenario())
    assert reported == []


@pytest.mark.mpi
def test_a_headless_run_ends_without_a_traceback_while_strangers_hold_connections(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text(tiny_config(tmp_path).to_toml())
    done = headless(tmp_path / "run.toml", stray=True)
    assert done.returncode == 0, done.stdout + done.stderr
    for noise in ("Traceback", "CancelledError", "Exception in callback", "never retrieved", "destroyed but"):
        assert noise not in done.stderr, done.stderr
