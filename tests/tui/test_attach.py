"""`ens-tui show` on a run another process drives: the dashboard attaches, follows it live, and leaving never
stops it — with a real headless run in another process and the real app."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine import events as ev
from ens_tui.app import EnsTuiApp
from ens_tui.rundir import is_running
from ens_tui.screens.report import ReportScreen
from tests.conftest import REPO
from tests.test_run_lifecycle import LONG, only_run, training, write_toml

from .test_pilot import run_screen, screen_text, sync, wait_for

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(180)]


def headless(tmp_path: Path, cli_env: dict[str, str], **sections: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ens_tui", "--run-config", str(write_toml(tmp_path, **sections))],
                            cwd=REPO, env=cli_env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


@sync
async def test_show_follows_a_running_run_and_quitting_leaves_it_running(tmp_path: Path, cli_env: dict[str, str]) -> None:
    proc = headless(tmp_path, cli_env, **LONG)
    try:
        folder = only_run(tmp_path)
        training(folder)
        app = EnsTuiApp(show=folder.path)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: run_screen(app) is not None)
            run = run_screen(app)
            assert run is not None and run.attached and run.state.running
            assert "attached" in screen_text(app)
            seen = len(run.state.logs), sum(len(m.losses) for m in run.state.members.values())
            await wait_for(pilot, lambda: sum(len(m.losses) for m in run.state.members.values()) > seen[1],
                           timeout=30)
            assert len(run.state.ranks) == 2
            await pilot.press("q")  # no "stop the run?" question: the run is not this app's
        assert app.return_code == 0
        assert proc.poll() is None and is_running(folder.path), "detaching stopped nothing"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 130


@sync
async def test_an_attached_view_sees_the_run_finish_and_opens_its_report(tmp_path: Path, cli_env: dict[str, str]) -> None:
    proc = headless(tmp_path, cli_env, data={"limit": 640}, train={"epochs": 6})
    try:
        folder = only_run(tmp_path)
        training(folder)
        app = EnsTuiApp(show=folder.path)
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(pilot, lambda: run_screen(app) is not None)
            run = run_screen(app)
            assert run is not None and run.attached
            await wait_for(pilot, lambda: not run.state.running, timeout=120)
            assert isinstance(run.state.done, ev.RunDone) and run.state.done.status == "finished"
            await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen))
            await wait_for(pilot, lambda: "ensemble of 2" in screen_text(app))
    finally:
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
