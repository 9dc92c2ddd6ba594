"""A run folder never lies about its state: signals to either front end, a killed launcher, two resumes at once,
a full disk, a deleted folder, a stalled rank, a rank killed after its goodbye — each with real processes."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from engine import events as ev
from engine.run_folder import RunFolder
from ens_tui.rundir import LAUNCHER_LOST, check_resumable, create_run_dir, is_running, run_status, write_run_info
from tests.conftest import REPO, assert_no_process_left, mounted_tmpfs, run_launcher, run_pids, tiny_config

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(240)]

LONG = {"data": {"limit": 1400}, "train": {"epochs": 400}}
"""Trains far longer than any test waits: every test here ends the run itself."""


def write_toml(tmp_path: Path, **sections: object) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(tiny_config(tmp_path, **sections).to_toml())  # type: ignore[arg-type]
    return path


def start(argv: list[str], cli_env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ens_tui", *argv], cwd=REPO, env=cli_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **kwargs)


def only_run(tmp_path: Path, timeout: float = 60) -> RunFolder:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = list((tmp_path / "runs").glob("*/")) if (tmp_path / "runs").is_dir() else []
        if runs:
            return RunFolder(runs[0])
        time.sleep(0.1)
    raise AssertionError("no run folder appeared")


def recorded(folder: RunFolder) -> list[ev.Event]:
    out = []
    if folder.events.exists():
        for line in folder.events.read_text(errors="replace").splitlines():
            try:
                out.append(ev.decode(line))
            except ev.FrameError:
                continue
    return out


def wait_for_event(folder: RunFolder, match: Callable[[ev.Event], bool], timeout: float = 90) -> list[ev.Event]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = recorded(folder)
        if any(match(e) for e in events):
            return events
        time.sleep(0.1)
    raise AssertionError(f"no such event in {folder.events}")


def training(folder: RunFolder, ranks: int = 2) -> list[ev.Event]:
    """Wait until every rank said hello and some member stepped; returns the events so far."""
    return wait_for_event(
        folder, lambda e: isinstance(e, ev.Step) and len(run_pids(recorded(folder))) == ranks)


def gone(pids: list[int], within: float = 10) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids
                   if psutil.pid_exists(p)):
            return
        time.sleep(0.2)
    assert_no_process_left(pids)


def info(folder: RunFolder) -> dict[str, object]:
    return json.loads(folder.info.read_text())


# ---------------------------------------------------------------------------------------------- signals


@pytest.mark.parametrize(("signum", "code", "why"), [
    (signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGHUP, 129, "the terminal hung up (SIGHUP)"),
])
def test_sigterm_or_sighup_stop_a_headless_run_like_ctrl_c(
        tmp_path: Path, cli_env: dict[str, str], signum: int, code: int, why: str) -> None:
    proc = start(["--run-config", str(write_toml(tmp_path, **LONG))], cli_env)
    folder = only_run(tmp_path)
    events = training(folder)
    os.kill(proc.pid, signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in out + err
    assert info(folder)["status"] == "interrupted" and info(folder)["reason"] == why
    assert not is_running(folder.path)
    gone(run_pids(events) + [int(info(folder)["pid"])])  # type: ignore[arg-type]


def read_all(fd: int, sink: list[bytes]) -> None:
    """Drain the pty as a terminal would, so the app never blocks on a full buffer."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        sink.append(chunk)


@pytest.mark.parametrize(("signum", "code", "close_terminal"), [
    (signal.SIGTERM, 143, False), (signal.SIGHUP, 129, True),
])
def test_the_dashboard_stops_every_rank_on_sigterm_or_a_closed_terminal(
        tmp_path: Path, cli_env: dict[str, str], signum: int, code: int, close_terminal: bool) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**cli_env, "TERM": "xterm-256color"}
    proc = subprocess.Popen([sys.executable, "-m", "ens_tui", str(write_toml(tmp_path, **LONG))], cwd=REPO, env=env,
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    screen: list[bytes] = []
    reader = threading.Thread(target=read_all, args=(master, screen), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while b"Launch" not in b"".join(screen) and time.monotonic() < deadline:
            time.sleep(0.2)
        os.write(master, b"\r")  # launch the selected setup
        folder = only_run(tmp_path)
        events = training(folder)
        if close_terminal:
            os.close(master)
        os.kill(proc.pid, signum)
        assert proc.wait(timeout=60) == code
    finally:
        if proc.poll() is None:
            proc.kill()
        if not close_terminal:
            os.close(master)
    assert info(folder)["status"] == "interrupted", info(folder)
    assert not is_running(folder.path)
    gone(run_pids(events) + [int(info(folder)["pid"])])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- the lock


def test_a_killed_launcher_leaves_a_resumable_run_and_two_resumes_cannot_both_start(
        tmp_path: Path, cli_env: dict[str, str]) -> None:
    proc = start(["--run-config", str(write_toml(tmp_path, **LONG))], cli_env)
    folder = only_run(tmp_path)
    events = training(folder)
    assert is_running(folder.path)
    proc.kill()  # no handler runs: run.json keeps saying `running`
    proc.communicate(timeout=30)
    gone(run_pids(events), within=15)  # ranks notice their launcher is gone
    assert info(folder)["status"] == "running"
    assert run_status(folder.path, info(folder)) == ("interrupted", LAUNCHER_LOST)

    first = start(["--resume", str(folder.path)], cli_env)
    try:
        deadline = time.monotonic() + 30
        while not is_running(folder.path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert is_running(folder.path), first.poll() is not None and first.communicate()
        second = subprocess.run([sys.executable, "-m", "ens_tui", "--resume", str(folder.path)], cwd=REPO,
                                env=cli_env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert second.stderr.count("\n") == 1 and "still running" in second.stderr, second.stderr
    finally:
        os.kill(first.pid, signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 130
    assert info(folder)["status"] == "interrupted" and info(folder)["resumes"] == 1


def test_a_reused_launcher_pid_does_not_block_a_resume(tmp_path: Path) -> None:
    run_dir = create_run_dir(tiny_config(tmp_path))
    write_run_info(run_dir, status="running", launcher_pid=os.getpid(), reason="")  # a live pid, not a launcher
    assert check_resumable(run_dir)["status"] == "running"
    assert run_status(run_dir, {"status": "running"}) == ("interrupted", LAUNCHER_LOST)


# ---------------------------------------------------------------------------------------------- the run folder


def test_a_deleted_run_folder_fails_the_run_cleanly(tmp_path: Path, cli_env: dict[str, str]) -> None:
    proc = start(["--run-config", str(write_toml(tmp_path, **LONG))], cli_env)
    folder = only_run(tmp_path)
    events = training(folder)
    pids = run_pids(events) + [int(info(folder)["pid"])]  # type: ignore[arg-type]
    shutil.rmtree(folder.path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in out + err
    assert f"run folder {folder.path} was deleted during the run" in out.replace("\n", " "), out
    gone(pids)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 96 MiB tmpfs the test can fill."""
    yield from mounted_tmpfs(tmp_path / "disk", "size=96m")


def fill(disk: Path) -> None:
    """Write until the file system refuses even a page."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    for size in (2**20, 4096, 1):
        try:
            while os.write(fd, b"\0" * size):
                pass
        except OSError:
            continue
    os.close(fd)


def test_a_full_disk_fails_the_run_with_one_line_and_resume_finishes_it(
        tmp_path: Path, small_disk: Path, cli_env: dict[str, str]) -> None:
    sections = {"output_dir": str(small_disk / "runs"), "data": {"limit": 640}, "train": {"epochs": 12}}
    config = write_toml(tmp_path, **sections)
    proc = start(["--run-config", str(config)], cli_env)
    folder = only_run(small_disk)
    events = wait_for_event(folder, lambda e: isinstance(e, ev.Epoch))
    fill(small_disk)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 1, out + err
    assert "Traceback" not in out + err
    failed = [line for line in out.splitlines() if line.startswith("run failed")]
    assert len(failed) == 1 and "No space left on device" in failed[0], out
    gone(run_pids(events))
    assert not is_running(folder.path)
    assert info(folder)["status"] == "failed" and "No space left on device" in str(info(folder)["reason"])

    for filler in small_disk.glob("filler*"):
        filler.unlink()
    resumed = subprocess.run([sys.executable, "-m", "ens_tui", "--resume", str(folder.path)],
                             cwd=REPO, env=cli_env, capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert info(folder)["status"] == "finished"


# ---------------------------------------------------------------------------------------------- ranks


def test_a_stopped_rank_is_shown_silent_then_fails_the_run_as_stalled(
        tmp_path: Path, cli_env: dict[str, str]) -> None:
    proc = start(["--run-config", str(write_toml(tmp_path, parallel={"stall_timeout_s": 14}, **LONG))], cli_env)
    folder = only_run(tmp_path)
    events = training(folder)
    hello = next(e for e in events if isinstance(e, ev.Hello) and e.rank == 1)
    pids = run_pids(events) + [int(info(folder)["pid"])]  # type: ignore[arg-type]
    stopped_at = time.monotonic()
    os.kill(hello.pid, signal.SIGSTOP)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if psutil.pid_exists(hello.pid):
            os.kill(hello.pid, signal.SIGCONT)
    assert 13 < time.monotonic() - stopped_at < 25
    assert proc.returncode == 1 and "Traceback" not in out + err
    assert f"rank 1 on {hello.host} stalled (no progress for 14 s)" in out.replace("\n", " "), out
    assert info(folder)["reason"] == f"rank 1 on {hello.host} stalled (no progress for 14 s)"
    silent = [e for e in recorded(folder) if isinstance(e, ev.RankSilent)]
    assert [(e.rank, e.seconds) for e in silent] == [(1, 10.0)], "the dashboard is told after 10 s"
    gone(pids)


def test_a_rank_killed_after_every_goodbye_leaves_a_finished_run(tmp_path: Path) -> None:
    pids: dict[int, int] = {}
    killed: list[int] = []

    async def kill_rank_0_after_goodbyes(event: ev.Event, launcher) -> None:  # noqa: ANN001
        if isinstance(event, ev.Hello):
            pids[event.rank or 0] = event.pid
        if isinstance(event, ev.Goodbye) and event.rank == 0:
            try:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            except ProcessLookupError:
                pass

    events, launcher = run_launcher(tiny_config(tmp_path), on_event=kill_rank_0_after_goodbyes)
    assert launcher.status == "finished", launcher.reason
    assert isinstance(events[-1], ev.RunDone) and events[-1].status == "finished"


def test_a_bind_address_this_machine_lacks_is_refused_in_one_line_and_leaves_no_folder(
        tmp_path: Path, cli_env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "ens_tui", "--run-config", str(write_toml(tmp_path)),
                           "--bind", "8.8.8.8"], cwd=REPO, env=cli_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--bind 8.8.8.8: cannot listen there" in done.stderr, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not list((tmp_path / "runs").glob("*")) if (tmp_path / "runs").exists() else True
