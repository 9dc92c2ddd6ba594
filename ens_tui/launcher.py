"""The launcher: the one API both front ends drive.

It validates the setup, creates the run folder, opens the progress socket, starts
`mpiexec -n N python -m mpi4py -m engine.worker` in its own process group, yields every accepted
event, notices a rank that vanished or an mpiexec that exited, and leaves no process behind on any
exit path. It knows MPI only as a command line; it never imports torch or mpi4py.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil

from engine import events as ev
from engine.config import RunConfig
from engine.events import ENDPOINT_ENV, TOKEN_ENV
from engine.preflight import setup_problem
from ens_tui.rundir import EventLog, RunDirError, check_resumable, create_run_dir, read_run_info, write_run_info
from ens_tui.server import Disconnected, EventServer

MPIEXEC_ENV = "ENS_TUI_MPIEXEC"
VANISHED_GRACE_S = 3.0
STOP_GRACE_S = 3.0

__all__ = ["LaunchError", "Launcher", "find_mpiexec", "setup_problem"]


class LaunchError(RuntimeError):
    """The run cannot start; the message says why in one line."""


def find_mpiexec(explicit: str | None = None) -> str:
    """--mpiexec, then $ENS_TUI_MPIEXEC, then the mpich wheel's beside this Python, then PATH."""
    for candidate in (explicit, os.environ.get(MPIEXEC_ENV)):
        if candidate:
            found = shutil.which(candidate)
            if not found:
                raise LaunchError(f"mpiexec {candidate!r} not found or not executable")
            return found
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    found = shutil.which("mpiexec")
    if found:
        return found
    raise LaunchError("no mpiexec found: `pip install mpich`, or pass --mpiexec PATH (or set ENS_TUI_MPIEXEC)")


def kill_tree(pid: int, sig: int = signal.SIGKILL, *, descendants: bool = True) -> None:
    """Signal a process group and, while its leader still runs, every descendant psutil can see.

    Descendants are only looked up while `pid` is alive: once reaped, the number may belong to a stranger.
    """
    family: list[psutil.Process] = []
    if descendants:
        try:
            parent = psutil.Process(pid)
            family = [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for proc in family:
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


class Launcher:
    """Runs one config on MPI ranks and streams its events."""

    def __init__(
        self, config: RunConfig, *, mpiexec: str | None = None, bind: str = "127.0.0.1",
        hostfile: str | None = None, run_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.mpiexec = mpiexec
        self.bind, self.hostfile = bind, hostfile
        self.run_dir: Path = run_dir if run_dir is not None else Path()
        self._given_run_dir = run_dir is not None
        self.status = "pending"
        self.reason = ""
        self.returncode: int | None = None
        self.server: EventServer | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self._stop_requested = False
        self._started = 0.0

    # ------------------------------------------------------------------ start
    async def start(self) -> Path:
        """Validate, create runs/<id>/, open the socket, spawn mpiexec. Raises LaunchError."""
        problem = setup_problem(self.config)
        if problem:
            raise LaunchError(problem)
        mpiexec = find_mpiexec(self.mpiexec)
        try:
            if self._given_run_dir:
                check_resumable(self.run_dir)
            else:
                self.run_dir = create_run_dir(self.config)
        except (OSError, RunDirError) as err:
            raise LaunchError(str(err)) from None
        self.run_dir = self.run_dir.resolve()
        token = secrets.token_hex(32)
        size = self.config.parallel.world_size
        self.server = EventServer(token, size, self.config.train.members, host=self.bind)
        endpoint = await self.server.start()
        command = [mpiexec, "-n", str(size)]
        if self.hostfile:
            command += ["-hostfile", self.hostfile]
        command += [sys.executable, "-m", "mpi4py", "-m", "engine.worker", "--run-dir", str(self.run_dir)]
        env = dict(os.environ)
        env.update({
            TOKEN_ENV: token, ENDPOINT_ENV: endpoint, "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": str(self.config.parallel.threads_per_rank),
        })
        self._log = open(self.run_dir / "mpiexec.log", "ab")  # noqa: SIM115
        self._events = EventLog(self.run_dir)
        self._started = time.time()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *command, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=self._log,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )
        except OSError as err:
            await self.server.close()
            self._log.close()
            self._events.close()
            if self._given_run_dir:
                write_run_info(self.run_dir, status="failed", reason=f"cannot start {mpiexec}: {err.strerror}")
            else:
                shutil.rmtree(self.run_dir)  # nothing ran: a refused launch leaves no folder behind
            raise LaunchError(f"cannot start {mpiexec}: {err.strerror}") from None
        self.status = "running"
        resumes = read_run_info(self.run_dir).get("resumes", -1) + 1 if self._given_run_dir else 0
        write_run_info(
            self.run_dir, status="running", endpoint=endpoint, started=self._started, ended=None, pid=self.proc.pid,
            launcher_pid=os.getpid(), command=command, ranks=size, reason="", resumes=resumes,
        )
        return self.run_dir

    # ------------------------------------------------------------------ events
    async def events(self) -> AsyncIterator[ev.Event]:
        """Every accepted event in order, then one RunDone; cleans up however the loop is left."""
        assert self.server is not None and self.proc is not None, "call start() first"
        server, proc = self.server, self.proc
        exited = asyncio.ensure_future(proc.wait())
        deadline: float | None = None
        goodbyes: set[int] = set()
        try:
            while True:
                getter = asyncio.ensure_future(server.queue.get())
                done, _ = await asyncio.wait({getter, exited}, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    item = getter.result()
                    if isinstance(item, Disconnected):
                        if item.clean:
                            goodbyes.add(item.rank)
                        elif not self._stop_requested:
                            self._fail(f"rank {item.rank} vanished (its connection dropped without a goodbye)")
                            deadline = deadline or time.monotonic() + VANISHED_GRACE_S
                        continue
                    if isinstance(item, ev.Error):
                        where = f"rank {item.rank}" if item.rank is not None else "launcher"
                        self._fail(f"{where}: {item.message}")
                        deadline = deadline or time.monotonic() + VANISHED_GRACE_S
                    self._events.append(item)
                    yield item
                    continue
                getter.cancel()
                if exited.done():
                    # Let the last frames in flight arrive, then decide how it ended.
                    async for event in self._drain(server):
                        yield event
                    break
                if deadline is not None and time.monotonic() > deadline:
                    kill_tree(proc.pid)
                    deadline = None
        finally:
            await self._shutdown(exited)
        self.returncode = proc.returncode
        if self._stop_requested:
            self.status, self.reason = "interrupted", self.reason or "stopped by the user"
        elif self.status != "failed" and proc.returncode == 0 and len(goodbyes) == self.config.parallel.world_size:
            self.status = "finished"
        else:
            self._fail(self.reason or f"mpiexec exited with code {proc.returncode}: {self._log_tail()}")
        ended = time.time()
        write_run_info(self.run_dir, status=self.status, ended=ended, returncode=proc.returncode, reason=self.reason,
                       dropped_frames=dict(server.dropped))
        done = ev.RunDone(status=self.status, reason=self.reason, returncode=proc.returncode,  # type: ignore[arg-type]
                          seconds=ended - self._started)
        self._events.append(done)
        self._events.close()
        yield done

    async def _drain(self, server: EventServer) -> AsyncIterator[ev.Event]:
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            try:
                item = await asyncio.wait_for(server.queue.get(), timeout=max(end - time.monotonic(), 0.01))
            except TimeoutError:
                return
            if isinstance(item, ev._Event):
                if isinstance(item, ev.Error):
                    self._fail(f"rank {item.rank}: {item.message}")
                self._events.append(item)
                yield item

    def _log_tail(self, lines: int = 3) -> str:
        """The last lines mpiexec printed: the only clue when ranks die before they can report."""
        try:
            text = (self.run_dir / "mpiexec.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:]) if text else "no output (see mpiexec.log)"

    def _fail(self, reason: str) -> None:
        if self.status != "failed":
            self.status, self.reason = "failed", reason

    # ------------------------------------------------------------------ stop
    async def stop(self) -> None:
        """Interrupt: SIGTERM to the whole group, SIGKILL after a grace period; the run ends `interrupted`."""
        self._stop_requested = True
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        kill_tree(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
        except TimeoutError:
            kill_tree(proc.pid, signal.SIGKILL)

    async def _shutdown(self, exited: asyncio.Future[int]) -> None:
        """Whatever happened, no rank outlives the launcher and the socket is closed."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            kill_tree(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(exited), STOP_GRACE_S)
            except TimeoutError:
                kill_tree(proc.pid, signal.SIGKILL)
                await exited
        if proc is not None:
            kill_tree(proc.pid, signal.SIGKILL, descendants=False)  # stragglers still in the group
        if self.server is not None:
            await self.server.close()
        self._log.close()
