"""Creating and reading run folders (their layout is engine.run_folder's): run.json, events.jsonl.

Everything the dashboard shows can be rebuilt from these files (`ens-tui show runs/<id>`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from engine import events as ev
from engine.atomic import FILE_MODE, atomic_write_text
from engine.config import ConfigError, RunConfig, load_config, with_overrides
from engine.fingerprint import resume_problem
from engine.report_model import Report
from engine.run_folder import RunFolder


class RunDirError(RuntimeError):
    """The output folder cannot hold a run (not writable, no space, not a run folder)."""


MIN_FREE_BYTES = 64 * 2**20


def output_dir_problem(output_dir: Path) -> str | None:
    """Why run folders cannot be created under `output_dir`, or None; creates nothing, so a dry run can ask too.

    The checks go to the nearest folder that exists, since that is where mkdir would start.
    """
    where = f"output_dir {output_dir}"
    target = Path(os.path.abspath(output_dir))
    existing = next(p for p in (target, *target.parents) if os.path.exists(p))
    if not existing.is_dir():
        return (f"{where}: is a file, not a folder" if existing == target
                else f"{where}: cannot create it: {existing} is a file, not a folder")
    stat = os.statvfs(existing)
    if stat.f_blocks == 0:
        return f"{where}: {existing} is on a pseudo file system (like /proc or /sys), not storage for run folders"
    if stat.f_flag & os.ST_RDONLY:
        return f"{where}: {existing} is on a read-only file system"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{where}: " + ("not writable by this user" if existing == target
                               else f"cannot create it: {existing} is not writable by this user")
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        return f"{where}: only {free // 2**20} MiB free; need at least {MIN_FREE_BYTES // 2**20}"
    return None


def check_output_dir(output_dir: Path) -> None:
    """Refuse an output folder that cannot be created, written, or has no room — before any rank starts."""
    problem = output_dir_problem(output_dir)
    if problem:
        raise RunDirError(problem)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(f"output_dir {output_dir}: cannot create it ({err.strerror})") from None


def create_run_dir(config: RunConfig) -> Path:
    """A fresh folder `<output_dir>/<date>-<time>-<name>-<random>`; mkdir without exist_ok, so two runs never share one."""
    output_dir = Path(config.output_dir)
    check_output_dir(output_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for _ in range(10):
        path = output_dir / f"{stamp}-{config.name}-{secrets.token_hex(2)}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        folder = RunFolder(path)
        folder.checkpoints.mkdir()
        atomic_write_text(folder.config, config.to_toml())
        return path
    raise RunDirError(f"output_dir {output_dir}: could not create a unique run folder")


def write_run_info(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into run.json (status, endpoint, started, ended, pid, reason…).

    Written atomically; on a full disk (no room for the temporary copy) it is rewritten in place, since how a
    run ended is worth the small risk of a torn file.
    """
    path = RunFolder(run_dir).info
    info = read_run_info(run_dir) if path.exists() else {}
    info.update(fields)
    text = json.dumps(info, indent=1) + "\n"
    try:
        atomic_write_text(path, text)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT) or not path.exists():
            raise
        with open(path, "r+", encoding="utf-8") as fh:  # over the old bytes first: no new block is needed for them
            fh.write(text)
            fh.truncate()
    return info


def read_run_info(run_dir: Path) -> dict[str, Any]:
    return json.loads(RunFolder(run_dir).info.read_text())


class RunLock:
    """The launcher's claim on a run folder, held for the launcher's whole life.

    A run is running exactly while its lock is held: the kernel drops a flock when its holder dies, however it
    dies (SIGKILL included), so "running" cannot go stale, and two launchers can never drive one folder.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = RunFolder(run_dir).lock
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise RunDirError; a reader's brief probe (`is_running`) is waited out."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as err:
            raise RunDirError(f"{self.path}: cannot open the run's lock file ({err.strerror})") from None
        for attempt in range(20):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if attempt < 19:
                    time.sleep(0.025)
                continue
            self._fd = fd
            return
        os.close(fd)
        raise RunDirError(f"{self.path.parent}: still running (another ens-tui holds {self.path.name}); "
                          "stop it before resuming")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def is_running(run_dir: Path) -> bool:
    """Whether a launcher holds the run's lock (a shared probe: it never blocks, never creates the file)."""
    try:
        fd = os.open(RunFolder(run_dir).lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


LAUNCHER_LOST = "launcher lost: it ended without recording how the run ended"


def run_status(run_dir: Path, info: dict[str, Any]) -> tuple[str, str]:
    """(status, reason) as it really is: a run.json that says `running` while no launcher holds the lock was
    left by a launcher that died (SIGKILL, power loss), so the run is interrupted."""
    status, reason = str(info.get("status", "unknown")), str(info.get("reason", ""))
    if status == "running" and not is_running(run_dir):
        return "interrupted", LAUNCHER_LOST
    return status, reason


def _run_record(run_dir: Path) -> dict[str, Any]:
    """run.json of a run folder, or RunDirError saying why `run_dir` is not one."""
    folder = RunFolder(run_dir)
    if not folder.is_run():
        raise RunDirError(f"{run_dir}: not a run folder (expected {folder.info.name} and {folder.config.name} inside)")
    try:
        info = read_run_info(run_dir)
    except (OSError, ValueError) as err:
        raise RunDirError(f"{folder.info}: unreadable ({err})") from None
    if not isinstance(info, dict):
        raise RunDirError(f"{folder.info}: not a run record (expected a JSON object)")
    return info


def check_resumable(run_dir: Path) -> dict[str, Any]:
    """Refuse to resume what is not a run, is finished, or is still running; returns its run.json."""
    folder = RunFolder(run_dir)
    info = _run_record(run_dir)
    status, _ = run_status(run_dir, info)
    if status == "finished":
        raise RunDirError(f"{run_dir}: already finished; nothing to resume (its report is in {folder.report_md.name}; "
                          f"to add members: ens-tui extend {run_dir} --members N)")
    if is_running(run_dir):
        raise RunDirError(f"{run_dir}: still running (its launcher holds {folder.lock.name}); stop it before resuming")
    return info


@dataclass(frozen=True)
class Extension:
    """`ens-tui extend`'s plan: train members `members` … `config.train.members` − 1 of a finished run, each the
    member a fresh run of the new total would train, and score all of them again."""

    run_dir: Path
    members: int
    """The members the run has: its config's, or as many as it trained before it stopped handing them out."""
    saved: RunConfig
    """config.toml as it is."""
    config: RunConfig
    """What the ranks will read: the new total, and no early stop (the total asked for is trained)."""

    def record(self, at: float) -> dict[str, Any]:
        """The entry run.json's `extensions` list gets once the extension starts."""
        return {"from": self.members, "to": self.config.train.members, "at": at}


def trained_members(run_dir: Path, config: RunConfig) -> int:
    """How many members a finished run has: fewer than its config's when it stopped handing them out early
    (report.json's `stopped_early`)."""
    try:
        stopped = json.loads(RunFolder(run_dir).report_json.read_text()).get("stopped_early")
    except (OSError, ValueError, AttributeError):
        stopped = None
    count = stopped.get("members") if isinstance(stopped, dict) else None
    return count if isinstance(count, int) and 0 < count < config.train.members else config.train.members


def plan_extension(run_dir: Path, members: int) -> Extension:
    """Every check before a finished run grows to `members` (the new total); reads the folder, writes nothing.

    Raises RunDirError naming the first refusal in one line: not a run, still running, not finished (an
    interrupted or failed run is resumed, not extended), not more members than it has, more than a config
    allows, a checkpoint missing or unreadable, or a config.toml its members were not trained with.
    """
    folder = RunFolder(run_dir)
    info = _run_record(run_dir)
    if is_running(run_dir):
        raise RunDirError(f"{run_dir}: still running (its launcher holds {folder.lock.name}); extend it once it "
                          "has finished")
    status, reason = run_status(run_dir, info)
    if status != "finished":
        raise RunDirError(f"{run_dir}: {status}{f' ({reason})' if reason else ''}, not finished: resume it first "
                          f"(ens-tui --resume {run_dir}); only a finished run can be extended")
    try:
        saved = load_config(folder.config)
    except ConfigError as err:
        raise RunDirError(str(err)) from None
    have = trained_members(run_dir, saved)
    if members <= have:
        raise RunDirError(f"{run_dir}: has {have} member{'s' * (have != 1)}; the new total must be more than {have}")
    try:
        grown = with_overrides(saved, members=members)
    except ConfigError as err:
        raise RunDirError(f"{run_dir}: {members} members: {str(err).removeprefix('command line: ')}") from None
    config = grown.model_copy(update={"train": grown.train.model_copy(update={"stop_when_nll_gain_below": 0.0})})
    missing = [folder.checkpoint(i) for i in range(have) if not folder.checkpoint(i).is_file()]
    if missing:
        raise RunDirError(f"{run_dir}: {missing[0].relative_to(folder.path)} is missing, so the run's members "
                          f"cannot be kept; start a new run of {members} members instead")
    if problem := resume_problem(run_dir, config, extend=True):
        raise RunDirError(problem)
    return Extension(run_dir, have, saved, config)


class EventLog:
    """events.jsonl: every accepted event, one JSON line each, flushed as it arrives."""

    def __init__(self, run_dir: Path) -> None:
        self.fh: TextIO = open(RunFolder(run_dir).events, "a", encoding="utf-8")  # noqa: SIM115

    def append(self, event: ev._Event) -> None:
        data = ev.to_dict(event)
        if data.get("type") == "hello":
            data["token"] = ""  # never store the run's secret
        self.fh.write(json.dumps(data, separators=(",", ":")) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


class RecordedEvents(list[ev.Event]):
    """What read_events found: the events in order, and how many lines were not one (`skipped`)."""

    skipped: int = 0


def read_events(run_dir: Path) -> RecordedEvents:
    """Replay a run: every event it recorded, in order; an unreadable line (torn, corrupted) is skipped and counted.

    Raises RunDirError (one line) when events.jsonl exists but cannot be read at all.
    """
    path = RunFolder(run_dir).events
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return RecordedEvents()
    except OSError as err:
        raise RunDirError(f"{path}: cannot read it ({err.strerror or err})") from None
    return decode_lines(data)


def decode_lines(data: bytes) -> RecordedEvents:
    """The events in lines of events.jsonl, each decoded on its own: one bad byte costs its line, not the rest."""
    out = RecordedEvents()
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            out.append(ev.decode(line))
        except ev.FrameError:
            out.skipped += 1
    return out


def lost_run_done(run_dir: Path, t: float | None = None) -> ev.RunDone:
    """The end of a run whose events.jsonl has no `run_done`: its launcher died (or could no longer write),
    so the run is what run.json and the lock say — interrupted, unless run.json recorded more."""
    try:
        status, reason = run_status(run_dir, read_run_info(run_dir))
    except (OSError, ValueError):
        status, reason = "interrupted", LAUNCHER_LOST
    if status not in ("finished", "failed", "interrupted"):
        status, reason = "interrupted", reason or LAUNCHER_LOST
    return ev.RunDone(status=status, reason=reason, **({"t": t} if t is not None else {}))  # type: ignore[arg-type]


def read_report(run_dir: Path) -> Report | None:
    """The run's report, or None before rank 0 wrote one; raises ReportError for a file that is not a report."""
    path = RunFolder(run_dir).report_json
    return Report.read(path) if path.exists() else None
