"""UI test helpers: a recorded run folder, a deterministic setup checker, and a fake launcher that replays a
recorded event stream over a real local TCP socket (no torch, no MPI)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine import events as ev
from engine.config import RunConfig
from engine.run_folder import RunFolder
from ens_tui import rundir

FIXTURES = Path(__file__).parent / "fixtures"
RECORDED_RUN = FIXTURES / "recorded-run"
"""A real 2-rank run (4 members, 3 epochs on digits) recorded by the launcher; checkpoints and predictions left out."""
REPO = Path(__file__).resolve().parents[2]


def no_cuda(config: RunConfig) -> str | None:
    """The setup check of a machine without a GPU, whatever machine the tests run on."""
    if any(d.startswith("cuda") for d in config.parallel.rank_devices()):
        return "needs CUDA: no NVIDIA GPU found"
    return None


class ReplayLauncher:
    """Stands in for ens_tui.launcher.Launcher: a 'rank' task sends the recorded frames over a real socket.

    `hold_after` pauses the sender after that many frames until `release()` (a run that is still training);
    RunDone is never sent over the wire, the launcher makes it itself, as the real one does.
    """

    def __init__(self, recorded: Path, out_dir: Path, *, hold_after: int | None = None, delay: float = 0.0) -> None:
        self.recorded = recorded
        self.out_dir = out_dir
        self.run_dir = out_dir
        self.hold_after = hold_after
        self.delay = delay
        self.stopped = False
        self.started = False
        self._gate = asyncio.Event()
        self._frames = [e for e in rundir.read_events(recorded) if not isinstance(e, ev.RunDone)]
        self._final = next((e for e in rundir.read_events(recorded) if isinstance(e, ev.RunDone)), None)
        self._server: asyncio.Server | None = None
        self._sender: asyncio.Task[None] | None = None
        self._last_t = 0.0
        self._connected: asyncio.Queue[asyncio.StreamReader] = asyncio.Queue()

    async def start(self) -> Path:
        self.started = True
        self.run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(RunFolder(self.recorded).config, RunFolder(self.run_dir).config)

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._connected.put(reader)

        self._server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self._sender = asyncio.create_task(self._send(port))
        return self.run_dir

    async def _send(self, port: int) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i, event in enumerate(self._frames):
                if self.hold_after is not None and i == self.hold_after:
                    await self._gate.wait()
                writer.write(ev.encode(event))
                await writer.drain()
                if self.delay:
                    await asyncio.sleep(self.delay)
        finally:
            writer.close()

    def release(self) -> None:
        """Let a held sender go on."""
        self._gate.set()

    async def events(self) -> AsyncIterator[ev.Event]:
        reader = await self._connected.get()
        while not self.stopped:
            line = await reader.readline()
            if not line:
                break
            event = ev.decode(line)
            self._last_t = event.t
            if isinstance(event, ev.ReportSaved):
                recorded, out = RunFolder(self.recorded), RunFolder(self.run_dir)
                for source, target in ((recorded.report_json, out.report_json), (recorded.report_md, out.report_md)):
                    if source.exists():
                        shutil.copy(source, target)
            yield event
        if self._server is not None:
            self._server.close()
        if self.stopped:
            # Stamped on the recording's clock, as if the run had been stopped right after the last frame.
            yield ev.RunDone(status="interrupted", reason="stopped by the user", t=self._last_t + 0.5)
        else:
            yield self._final or ev.RunDone(status="finished")

    async def stop(self, reason: str = "stopped by the user") -> None:
        self.stopped = True
        if self._sender is not None:
            self._sender.cancel()
        self._gate.set()


@pytest.fixture
def recorded_run() -> Path:
    """A finished 2-rank run folder (events.jsonl, config.toml, report.json)."""
    return RECORDED_RUN


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from the repository root, so listed paths (./configs) and titles are the same on every machine."""
    monkeypatch.chdir(REPO)
    return REPO
