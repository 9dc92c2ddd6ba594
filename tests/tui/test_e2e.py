"""The whole product through the keyboard: pick a setup, launch a real 2-rank run on tiny digits data, watch it,
arrive at the report, quit — and no rank or mpiexec process may be left behind."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import psutil
import pytest

from engine import events as ev
from engine.run_folder import RunFolder
from ens_tui.app import EnsTuiApp
from ens_tui.dialogs.confirm_quit import ConfirmQuit
from ens_tui.screens.report import ReportScreen
from ens_tui.widgets.rank_table import RankTable

from .test_pilot import run_screen, screen_text, sync, wait_for

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(300)]

if shutil.which("mpiexec") is None and not (Path(__import__("sys").executable).parent / "mpiexec").exists():
    pytest.skip("needs mpiexec", allow_module_level=True)
pytest.importorskip("torch")
pytest.importorskip("mpi4py")


def tiny_toml(tmp_path: Path, *, epochs: int = 1, limit: int = 320) -> Path:
    """What a user would write: a small ensemble on scikit-learn's bundled digits, two CPU ranks."""
    path = tmp_path / "tiny.toml"
    path.write_text(
        f'name = "tiny"\noutput_dir = "{tmp_path / "runs"}"\n'
        f'[data]\ndataset = "digits"\nlimit = {limit}\nood = ["noise"]\n'
        f'[train]\nmembers = 2\nepochs = {epochs}\nbatch_size = 32\noptimizer = "adam"\nlr = 0.003\n'
        '[parallel]\nstrategy = "local"\nranks = [{count = 2, device = "cpu"}]\n'
    )
    return path


def assert_nothing_left(run_dir: Path, events: list[ev.Event]) -> None:
    """Every rank and mpiexec itself are gone (zombies aside)."""
    pids = [e.pid for e in events if isinstance(e, ev.Hello)]
    info = json.loads(RunFolder(run_dir).info.read_text())
    pids.append(info["pid"])
    deadline = time.monotonic() + 10
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not alive, f"processes survived: {alive}"


@sync
async def test_launch_watch_report_quit(tmp_path: Path) -> None:
    app = EnsTuiApp([tiny_toml(tmp_path)])
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("enter")
        await wait_for(pilot, lambda: run_screen(app) is not None)
        run = run_screen(app)
        assert run is not None
        await wait_for(pilot, lambda: len(run.query_one(RankTable).rows) == 2, timeout=120)
        await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen) or not run.state.running, timeout=240)
        assert run.state.done is not None and run.state.done.status == "finished", run.state.done
        await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen))
        await wait_for(pilot, lambda: "ensemble of 2" in screen_text(app))
        assert run.state.peak_samples_per_s > 0
        assert {r.status for r in run.state.ranks.values()} == {"done"}
        assert all(m.losses or m.epoch_losses for m in run.state.members.values())
        run_dir = run.run_dir
        await pilot.press("q")
    assert app.return_code == 0
    assert run_dir is not None and RunFolder(run_dir).report_json.exists()
    from ens_tui import rundir

    assert_nothing_left(run_dir, rundir.read_events(run_dir))


@sync
async def test_quitting_mid_training_stops_every_rank(tmp_path: Path) -> None:
    app = EnsTuiApp([tiny_toml(tmp_path, epochs=200, limit=1000)])
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("enter")
        await wait_for(pilot, lambda: run_screen(app) is not None)
        run = run_screen(app)
        assert run is not None
        await wait_for(pilot, lambda: any(r.status == "training" for r in run.state.ranks.values()), timeout=120)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmQuit)
        await pilot.press("y")
        await wait_for(pilot, lambda: not run.state.running, timeout=60)
        run_dir = run.run_dir
    assert run.state.done is not None and run.state.done.status == "interrupted"
    assert run_dir is not None
    from ens_tui import rundir

    assert json.loads(RunFolder(run_dir).info.read_text())["status"] == "interrupted"
    assert_nothing_left(run_dir, rundir.read_events(run_dir))
