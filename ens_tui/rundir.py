"""Creating and reading run folders (their layout is engine.run_folder's): run.json, events.jsonl.

Everything the dashboard shows can be rebuilt from these files (`ens-tui show runs/<id>`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any, TextIO

import psutil

from engine import events as ev
from engine.atomic import atomic_write_text
from engine.config import RunConfig
from engine.report_model import Report
from engine.run_folder import RunFolder


class RunDirError(RuntimeError):
    """The output folder cannot hold a run (not writable, no space, not a run folder)."""


MIN_FREE_BYTES = 64 * 2**20


def check_output_dir(output_dir: Path) -> None:
    """Refuse an output folder that cannot be created, written, or has no room — before any rank starts."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(f"output_dir {output_dir}: cannot create it ({err.strerror})") from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise RunDirError(f"output_dir {output_dir}: not writable by this user")
    free = shutil.disk_usage(output_dir).free
    if free < MIN_FREE_BYTES:
        raise RunDirError(f"output_dir {output_dir}: only {free // 2**20} MiB free; need at least {MIN_FREE_BYTES // 2**20}")


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
    """Merge `fields` into run.json (status, endpoint, started, ended, pid, reason…)."""
    info = read_run_info(run_dir) if RunFolder(run_dir).info.exists() else {}
    info.update(fields)
    atomic_write_text(RunFolder(run_dir).info, json.dumps(info, indent=1) + "\n")
    return info


def read_run_info(run_dir: Path) -> dict[str, Any]:
    return json.loads(RunFolder(run_dir).info.read_text())


def check_resumable(run_dir: Path) -> dict[str, Any]:
    """Refuse to resume what is not a run, is finished, or is still running; returns its run.json."""
    folder = RunFolder(run_dir)
    if not folder.is_run():
        raise RunDirError(f"{run_dir}: not a run folder (expected {folder.info.name} and {folder.config.name} inside)")
    try:
        info = read_run_info(run_dir)
    except (OSError, ValueError) as err:
        raise RunDirError(f"{folder.info}: unreadable ({err})") from None
    if not isinstance(info, dict):
        raise RunDirError(f"{folder.info}: not a run record (expected a JSON object)")
    status = info.get("status")
    if status == "finished":
        raise RunDirError(f"{run_dir}: already finished; nothing to resume (its report is in {folder.report_md.name})")
    launcher = info.get("launcher_pid")
    if status == "running" and launcher and psutil.pid_exists(launcher) and launcher != os.getpid():
        raise RunDirError(f"{run_dir}: still running (launcher pid {launcher}); stop it before resuming")
    return info


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


def read_events(run_dir: Path) -> list[ev.Event]:
    """Replay a run: every event it recorded, in order (a torn last line is skipped)."""
    out: list[ev.Event] = []
    path = RunFolder(run_dir).events
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(ev.decode(line))
        except ev.FrameError:
            continue
    return out


def read_report(run_dir: Path) -> Report | None:
    """The run's report, or None before rank 0 wrote one; raises ReportError for a file that is not a report."""
    path = RunFolder(run_dir).report_json
    return Report.read(path) if path.exists() else None
