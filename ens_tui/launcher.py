"""The launcher: the one API both front ends drive.

It validates the setup, creates the run folder, opens the progress socket, starts
`mpiexec -n N python -m mpi4py -m engine.worker` in its own process group, yields every accepted
event, notices a rank that vanished or an mpiexec that exited, and leaves no process behind on any
exit path. It knows MPI only as a command line; it never imports torch or mpi4py.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psutil

from engine import events as ev
from engine.atomic import atomic_write_text
from engine.config import RunConfig
from engine.control import Request, Stragglers, append
from engine.events import ENDPOINT_ENV, TOKEN_ENV
from engine.fingerprint import fingerprint, resume_problem
from engine.preflight import setup_problem
from engine.run_folder import RunFolder
from ens_tui.rundir import (
    EventLog,
    Extension,
    RunDirError,
    RunLock,
    check_resumable,
    create_run_dir,
    plan_extension,
    read_run_info,
    write_run_info,
)
from ens_tui.server import Disconnected, EventServer
from ens_tui.stragglers import StragglerWatch

MPIEXEC_ENV = "ENS_TUI_MPIEXEC"
VANISHED_GRACE_S = 3.0
STOP_GRACE_S = 3.0
DRAIN_S = 3.0
"""After mpiexec exits, how long frames still in flight may take to arrive (ends early once every rank hung up)."""
SILENT_NOTICE_S = 10.0
"""A rank unheard for this long is shown as silent (again every as many seconds), well before its stall timeout."""
TICK_S = 0.5
STOP_SIGNALS: dict[int, str] = {
    signal.SIGINT: "stopped by the user", signal.SIGTERM: "terminated (SIGTERM)",
    signal.SIGHUP: "the terminal hung up (SIGHUP)",
}
"""Both front ends end the run `interrupted` on each, every rank stopped; they exit 128 + the signal, as a shell."""
BAD_TERMINATION = re.compile(r"BAD TERMINATION.*?PID (?P<pid>\d+) RUNNING AT (?P<host>\S+).*?EXIT CODE: (?P<code>\d+)",
                             re.DOTALL)
"""What mpich's hydra prints about the first rank that died; later cleanup messages name the others."""
EXIT_STRING = re.compile(r"EXIT STRING: (?P<text>.+)")

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


def mpiexec_command(mpiexec: str, config: RunConfig, run_dir: Path | str, hostfile: str | None = None) -> list[str]:
    """The one command line that starts a run's ranks: the launcher runs it, `--dry-run` prints it."""
    command = [mpiexec, *config.parallel.mpiexec_args, "-n", str(config.parallel.world_size)]
    if hostfile:
        command += ["-hostfile", hostfile]
    return command + [sys.executable, "-m", "mpi4py", "-m", "engine.worker", "--run-dir", str(run_dir)]


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
        hostfile: str | None = None, run_dir: Path | None = None, progress: Callable[[str], None] | None = None,
        extend: bool = False,
    ) -> None:
        self.config = config
        self.progress = progress
        """Receives progress lines of the checks before launch (decoding your image folder, say)."""
        self.mpiexec = mpiexec
        self.bind, self.hostfile = bind, hostfile
        self.run_dir: Path = run_dir if run_dir is not None else Path()
        self._given_run_dir = run_dir is not None
        self._extend = extend
        """`run_dir` is a finished run that grows to `config.train.members` (`ens-tui extend`), not a resume."""
        self._extension: Extension | None = None
        self.status = "pending"
        self.reason = ""
        self.returncode: int | None = None
        self.server: EventServer | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self._stop_requested = False
        self._started = 0.0
        self._deadline: float | None = None
        self._goodbyes: set[int] = set()
        self._hung_up: set[int] = set()
        self._ranks_by_pid: dict[tuple[str, int], int] = {}
        self._vanished_first = False
        self._stragglers = StragglerWatch(config.parallel.straggler_after_s)
        self._heard: dict[int, float] = {}
        """monotonic time each connected rank was last heard from (dropped once it hangs up)."""
        self._silent_notice: dict[int, int] = {}
        self._report_saved = False
        self._lock: RunLock | None = None
        self._created = False
        self._folder_id: tuple[int, int] | None = None
        """Whether start() made the run folder (a refusal after that removes it again)."""
        self._events: EventLog | None = None

    # ------------------------------------------------------------------ start
    async def start(self) -> Path:
        """Validate, create runs/<id>/, open the socket, spawn mpiexec. Raises LaunchError."""
        problem = await asyncio.to_thread(setup_problem, self.config, True, self.progress, self.hostfile)
        if problem:
            raise LaunchError(problem)
        mpiexec = find_mpiexec(self.mpiexec)
        try:
            if self._extend:
                self._extension = self._check_extension()
            elif self._given_run_dir:
                check_resumable(self.run_dir)
                if problem := resume_problem(self.run_dir, self.config):
                    raise RunDirError(problem)
            else:
                self.run_dir = create_run_dir(self.config)
                self._created = True
            self._lock = RunLock(self.run_dir)
            self._lock.acquire()
        except (OSError, RunDirError) as err:
            self._forget_new_run_dir()
            raise LaunchError(str(err)) from None
        self.run_dir = self.run_dir.resolve()
        self._folder_id = self._folder_identity()
        try:
            return await self._spawn(mpiexec)
        except BaseException:
            self._lock.release()
            raise

    def _check_extension(self) -> Extension:
        """The extension planned again at launch: the folder may have changed since the front end planned it."""
        plan = plan_extension(self.run_dir, self.config.train.members)
        if plan.config != self.config:
            raise RunDirError(f"{self.run_dir}: its config.toml changed since the extension was planned; try again")
        return plan

    async def _spawn(self, mpiexec: str) -> Path:
        """Open the socket and start mpiexec in the run folder this launcher now holds."""
        folder = RunFolder(self.run_dir)
        token = secrets.token_hex(32)
        size = self.config.parallel.world_size
        self.server = EventServer(token, size, self.config.train.members, host=self.bind)
        try:
            endpoint = await self.server.start()
        except OSError as err:
            self._forget_new_run_dir()
            raise LaunchError(f"--bind {self.bind}: cannot listen there ({err.strerror or err})") from None
        command = mpiexec_command(mpiexec, self.config, self.run_dir, self.hostfile)
        env = dict(os.environ)
        env.update({
            TOKEN_ENV: token, ENDPOINT_ENV: endpoint, "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": str(self.config.parallel.threads_per_rank),
        })
        saved_config = folder.config.read_text() if self._given_run_dir else None
        if saved_config is not None and saved_config != self.config.to_toml():
            # A resume with honoured overrides (ranks, strategy, epochs, data root) or an extension (more
            # members): the ranks read this file.
            atomic_write_text(folder.config, self.config.to_toml())
        self._log = open(folder.mpiexec_log, "ab")  # noqa: SIM115
        self._started = time.time()
        self.server.expect_spawner()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *command, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=self._log,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )
        except OSError as err:
            self.server.spawned(None)
            await self.server.close()
            self._log.close()
            if saved_config is not None:
                atomic_write_text(folder.config, saved_config)  # nothing ran: a resumed run keeps its config
            self._forget_new_run_dir()
            raise LaunchError(f"cannot start {mpiexec}: {err.strerror}") from None
        self.server.spawned(self.proc.pid)
        self.status = "running"
        try:
            self._events = EventLog(self.run_dir)
            write_run_info(
                self.run_dir, status="running", endpoint=endpoint, started=self._started, ended=None,
                pid=self.proc.pid, launcher_pid=os.getpid(), command=command, ranks=size, reason="",
                **self._run_record(),
            )
        except OSError as err:
            await self._shutdown(asyncio.ensure_future(self.proc.wait()))
            raise LaunchError(self._folder_problem(err)) from None
        return self.run_dir

    def _run_record(self) -> dict[str, object]:
        """What run.json says about this launch: a resume counts itself; an extension lists itself and records
        the new member count in the fingerprint (later resumes are checked against it); a new run starts both."""
        if not self._given_run_dir:
            return {"resumes": 0, "fingerprint": fingerprint(self.config)}
        before = read_run_info(self.run_dir)
        if self._extension is None:
            return {"resumes": before.get("resumes", -1) + 1}
        earlier = before.get("extensions")
        return {"fingerprint": fingerprint(self.config),
                "extensions": [*(earlier if isinstance(earlier, list) else []), self._extension.record(self._started)]}

    def _forget_new_run_dir(self) -> None:
        """Nothing ran: a refused new run leaves no folder behind (a resumed one keeps its own, as it was)."""
        if self._created:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    # ------------------------------------------------------------------ events
    async def events(self) -> AsyncIterator[ev.Event]:
        """Every accepted event in order, then one RunDone; cleans up however the loop is left."""
        assert self.server is not None and self.proc is not None, "call start() first"
        server, proc = self.server, self.proc
        exited = asyncio.ensure_future(proc.wait())
        next_check = time.monotonic() + TICK_S
        try:
            while True:
                getter = asyncio.ensure_future(server.queue.get())
                done, _ = await asyncio.wait({getter, exited}, timeout=TICK_S, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    event = self._take(getter.result())
                    if event is not None:
                        yield event
                else:
                    getter.cancel()
                    if exited.done():
                        # Let the last frames (and goodbyes) in flight arrive, then decide how it ended.
                        async for event in self._drain(server):
                            yield event
                        break
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + TICK_S
                    for event in self._watch():
                        yield event
                if self._deadline is not None and time.monotonic() > self._deadline:
                    kill_tree(proc.pid)
                    self._deadline = None
        finally:
            await self._shutdown(exited)
        self.returncode = proc.returncode
        if self._stop_requested:
            self.status = "interrupted"
        elif self.status != "failed" and len(self._goodbyes) == self.config.parallel.world_size and (
                proc.returncode == 0 or self._report_saved):
            # Every rank said goodbye after the report was saved: whatever killed a rank after that
            # (mpiexec then exits non-zero) took nothing from the run.
            self.status = "finished"
        else:
            self._fail(self.reason or f"mpiexec exited with code {proc.returncode}: {self._log_tail()}")
            if self._vanished_first:
                self.reason = self._culprit() or self.reason
        ended = time.time()
        try:
            write_run_info(self.run_dir, status=self.status, ended=ended, returncode=proc.returncode,
                           reason=self.reason, dropped_frames=dict(server.dropped))
        except OSError:
            pass  # the folder is full or gone: the reason still reaches the user, and the free lock says it ended
        done = ev.RunDone(status=self.status, reason=self.reason, returncode=proc.returncode,  # type: ignore[arg-type]
                          seconds=ended - self._started)
        self._record(done)
        self._close_events()
        if self._lock is not None:
            self._lock.release()
        yield done

    def _watch(self) -> list[ev.Event]:
        """The launcher's own checks between events: the run folder is still there, no rank went quiet.

        A stopped or hung rank would otherwise hold every other rank at the next collective forever.
        """
        if self.status == "running" and self._folder_identity() != self._folder_id:
            self._folder_failed(FileNotFoundError())
        now, found = time.monotonic(), []
        timeout = self.config.parallel.stall_timeout_s
        for rank, heard in self._heard.items():
            silent = now - heard
            if silent >= timeout and not self._stop_requested:
                self._fail(f"{self._named(rank)} stalled (no progress for {timeout:.0f} s)")
                self._deadline = now
            notices = int(silent // SILENT_NOTICE_S)
            if notices > self._silent_notice.get(rank, 0):
                self._silent_notice[rank] = notices
                found.append(ev.RankSilent(rank=rank, seconds=notices * SILENT_NOTICE_S))
        if flags := self._stragglers.check(now):
            found += flags
            self.control(Stragglers(ranks=sorted(self._stragglers.flagged)))
        for event in found:
            self._record(event)
        return found

    def control(self, request: Request) -> None:
        """Pass a request to the ranks (engine.control): they read control.jsonl as they report their steps."""
        try:
            append(RunFolder(self.run_dir), request)
        except OSError as err:
            self._folder_failed(err)

    def _take(self, item: ev.Event | Disconnected) -> ev.Event | None:
        """Fold one queue item into the run's outcome; returns the event to record and pass on, if it is one.

        The one place a queue item is judged, before and after mpiexec's exit: a goodbye that arrives
        late counts as much as an early one.
        """
        if isinstance(item, Disconnected):
            self._hung_up.add(item.rank)
            self._heard.pop(item.rank, None)
            if item.clean:
                self._goodbyes.add(item.rank)
            elif not self._stop_requested:
                self._vanished_first = self._vanished_first or self.status != "failed"
                self._fail(f"{self._named(item.rank)} vanished (its connection dropped without a goodbye)")
                self._deadline = self._deadline or time.monotonic() + VANISHED_GRACE_S
            return None
        if item.rank is not None and item.rank not in self._hung_up:
            self._heard[item.rank] = time.monotonic()
            self._silent_notice.pop(item.rank, None)
        if isinstance(item, ev.Hello):
            self._ranks_by_pid[item.host, item.pid] = item.rank
        elif isinstance(item, ev.Step) and item.rank is not None:
            self._stragglers.step(item.rank, item.samples_per_s, time.monotonic())
        if isinstance(item, ev.ReportSaved):
            self._report_saved = True
        if isinstance(item, ev.Error) and self._folder_identity() != self._folder_id:
            self._folder_failed(FileNotFoundError())  # what the rank could not write is a symptom; this is the cause
        elif isinstance(item, ev.Error):
            where = f"rank {item.rank}" if item.rank is not None else "launcher"
            self._fail(f"{where}: {item.message}")
            self._deadline = self._deadline or time.monotonic() + VANISHED_GRACE_S
        self._record(item)
        return item

    def _record(self, event: ev.Event) -> None:
        """Append to events.jsonl; a folder that can no longer be written ends the run (once)."""
        if self._events is None:
            return
        try:
            self._events.append(event)
        except OSError as err:
            self._close_events()
            self._folder_failed(err)

    def _close_events(self) -> None:
        events, self._events = self._events, None
        if events is not None:
            try:
                events.close()
            except OSError:
                pass  # what could not be flushed is lost with the disk; the run already failed for it

    def _folder_failed(self, err: OSError) -> None:
        """The run folder is full, gone or unwritable: fail at once and stop every rank (they write there too)."""
        if not self._stop_requested:
            self._fail(self._folder_problem(err))
        self._deadline = time.monotonic()

    def _folder_identity(self) -> tuple[int, int] | None:
        """(device, inode) of the run folder: a folder deleted and made again by someone is not this run's."""
        try:
            st = os.stat(self.run_dir)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _folder_problem(self, err: OSError) -> str:
        if self._folder_identity() != self._folder_id:
            return f"run folder {self.run_dir} was deleted during the run"
        return f"cannot write to the run folder {self.run_dir}: {err.strerror or err}"

    async def _drain(self, server: EventServer) -> AsyncIterator[ev.Event]:
        """What is still queued or in flight once mpiexec has exited, until every rank that connected hung up."""
        end = time.monotonic() + DRAIN_S
        while time.monotonic() < end and (server.queue.qsize() or not self._hung_up >= server.connected):
            try:
                item = await asyncio.wait_for(server.queue.get(), timeout=max(end - time.monotonic(), 0.01))
            except TimeoutError:
                return
            event = self._take(item)
            if event is not None:
                yield event

    def _log_tail(self, lines: int = 3) -> str:
        """The last lines mpiexec printed: the only clue when ranks die before they can report."""
        try:
            log = RunFolder(self.run_dir).mpiexec_log
            text = log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:]) if text else f"no output (see {log.name})"

    def _culprit(self) -> str:
        """Which rank died first, as mpiexec's log names it; "" when the log names no rank we know.

        Once one rank dies, mpiexec kills the others, and their connections drop in whatever order the
        socket reports them; mpiexec's own log is the one witness of which died first.
        """
        try:
            log = RunFolder(self.run_dir).mpiexec_log.read_text(errors="replace")
        except OSError:
            return ""
        found = BAD_TERMINATION.search(log)
        if found is None:
            return ""
        short = found["host"].split(".")[0]
        rank = next((r for (host, pid), r in self._ranks_by_pid.items()
                     if pid == int(found["pid"]) and host.split(".")[0] == short), None)
        if rank is None:
            return ""
        how = EXIT_STRING.search(log)
        return (f"{self._named(rank)} vanished ({how['text'].strip().lower() if how else 'exit code ' + found['code']}; "
                "its connection dropped without a goodbye)")

    def _named(self, rank: int) -> str:
        """`rank 1 on node7`: on a multi-host run the host says where to look."""
        host = next((h for (h, _), r in self._ranks_by_pid.items() if r == rank), None)
        return f"rank {rank} on {host}" if host else f"rank {rank}"

    def _fail(self, reason: str) -> None:
        if self.status != "failed":
            self.status, self.reason = "failed", reason

    # ------------------------------------------------------------------ stop
    async def stop(self, reason: str = "stopped by the user") -> None:
        """Interrupt: SIGTERM to the whole group, SIGKILL after a grace period; the run ends `interrupted`."""
        if not self._stop_requested:
            self._stop_requested, self.reason = True, self.reason or reason
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
