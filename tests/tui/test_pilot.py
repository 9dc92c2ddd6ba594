"""Driving the app with the keyboard the way a person would, against a recorded run replayed over a socket."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from engine.config import RunConfig
from ens_tui.app import EnsTuiApp
from ens_tui.dialogs.confirm_quit import ConfirmQuit
from ens_tui.dialogs.help import HelpScreen
from ens_tui.screens.report import ReportScreen
from ens_tui.screens.run import RunScreen
from ens_tui.screens.setup import SetupScreen
from ens_tui.widgets.preset_list import PresetList
from ens_tui.widgets.rank_table import RankTable

from .conftest import ReplayLauncher, no_cuda

SIZE = (100, 30)


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test body on a fresh event loop (no pytest asyncio plugin needed)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def screen_text(app: EnsTuiApp) -> str:
    """What the terminal shows, as plain text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def wait_for(pilot: Pilot[int], ready: Callable[[], object], timeout: float = 15.0) -> None:
    """Let the app run until `ready()` is true."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, "timed out waiting for the app"
        await pilot.pause(0.05)


async def launch_and_wait_for_ranks(pilot: Pilot[int], app: EnsTuiApp, ranks: int = 2) -> None:
    """Press Enter on the selected setup and wait until every rank has joined the dashboard."""
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and len(app.screen.state.ranks) == ranks)


def run_screen(app: EnsTuiApp) -> RunScreen | None:
    """The run screen, wherever it is in the stack."""
    return next((s for s in app.screen_stack if isinstance(s, RunScreen)), None)


class Factory:
    """A launcher factory that remembers the configs it was asked to run."""

    def __init__(self, recorded: Path, out: Path, **kwargs: object) -> None:
        self.recorded, self.out, self.kwargs = recorded, out, kwargs
        self.configs: list[RunConfig] = []
        self.launchers: list[ReplayLauncher] = []

    def __call__(self, config: RunConfig) -> ReplayLauncher:
        self.configs.append(config)
        launcher = ReplayLauncher(self.recorded, self.out / f"run-{len(self.configs)}", **self.kwargs)  # type: ignore[arg-type]
        self.launchers.append(launcher)
        return launcher


def my_config(tmp_path: Path) -> Path:
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\n[train]\nmembers = 4\nepochs = 3\n[parallel]\nranks = [{count = 2}]\n')
    return path


@sync
async def test_keys_move_through_setups_and_the_preview_follows(in_repo: Path) -> None:
    app = EnsTuiApp(setup_checker=no_cuda)
    async with app.run_test(size=SIZE) as pilot:
        presets = app.screen.query_one(PresetList)
        assert presets.highlighted == 0 and "quick-digits" in screen_text(app)
        await pilot.press("j", "j")
        assert presets.highlighted == 2
        entry = presets.selected_entry
        assert entry is not None and entry.preset.name == "seed-cpu2-gpu1-broadcast"
        assert "cannot run here: needs CUDA" in screen_text(app)
        await pilot.press("k", "down")
        assert presets.highlighted == 2


@sync
async def test_a_setup_this_machine_cannot_run_is_refused(in_repo: Path, tmp_path: Path) -> None:
    factory = Factory(in_repo / "tests/tui/fixtures/recorded-run", tmp_path)
    app = EnsTuiApp(launcher_factory=factory, setup_checker=no_cuda)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("j", "j", "enter")
        await pilot.pause()
        assert isinstance(app.screen, SetupScreen) and not factory.configs
        assert any("needs CUDA" in n.message for n in app._notifications)


@sync
async def test_pick_change_members_launch_watch_and_arrive_at_the_report(
    tmp_path: Path, recorded_run: Path
) -> None:
    factory = Factory(recorded_run, tmp_path, delay=0.002)
    app = EnsTuiApp([my_config(tmp_path)], launcher_factory=factory, setup_checker=no_cuda, cwd=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        entry = app.screen.query_one(PresetList).selected_entry
        assert entry is not None and entry.preset.name == "mine"  # the command-line config comes first
        await pilot.press("m", "6", "tab", "2", "escape")
        assert "members     6" in screen_text(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: run_screen(app) is not None)
        assert factory.configs[0].train.members == 6 and factory.configs[0].train.epochs == 2
        run = run_screen(app)
        assert run is not None
        await wait_for(pilot, lambda: len(run.query_one(RankTable).rows) == 2)
        await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen))
        assert max(run.state.total_history) > 0
        await wait_for(pilot, lambda: "ensemble of 4" in screen_text(app))
        await pilot.press("escape")
        assert app.screen is run and "finished" in screen_text(app)
        assert {r.status for r in run.state.ranks.values()} == {"done"}
        await pilot.press("n")
        assert isinstance(app.screen, SetupScreen)
        await pilot.press("q")
    assert app.return_code == 0


@sync
async def test_quit_while_training_asks_and_stops_every_rank(tmp_path: Path, recorded_run: Path) -> None:
    factory = Factory(recorded_run, tmp_path, hold_after=20)
    app = EnsTuiApp([my_config(tmp_path)], launcher_factory=factory, setup_checker=no_cuda, cwd=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await launch_and_wait_for_ranks(pilot, app)
        run = app.screen
        assert run.live
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmQuit)
        await pilot.press("n")
        assert app.screen is run and run.live and not factory.launchers[0].stopped
        await pilot.press("ctrl+c")
        assert isinstance(app.screen, ConfirmQuit)
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.is_running or factory.launchers[0].stopped)
    assert factory.launchers[0].stopped
    assert run.state.done is not None and run.state.done.status == "interrupted"


@sync
async def test_x_stops_the_run_and_stays_on_the_dashboard(tmp_path: Path, recorded_run: Path) -> None:
    factory = Factory(recorded_run, tmp_path, hold_after=20)
    app = EnsTuiApp([my_config(tmp_path)], launcher_factory=factory, setup_checker=no_cuda, cwd=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await launch_and_wait_for_ranks(pilot, app)
        run = app.screen
        await pilot.press("x", "y")
        await wait_for(pilot, lambda: not run.state.running)
        assert run.state.done is not None and run.state.done.status == "interrupted"
        assert app.screen is run and "interrupted" in screen_text(app)
        assert {r.status for r in run.state.ranks.values()} == {"stopped"}
        await pilot.press("q")  # nothing is training any more: no question asked
    assert app.return_code == 0


@sync
async def test_a_launch_that_fails_is_shown_not_raised(tmp_path: Path) -> None:
    class Broken:
        run_dir = tmp_path

        async def start(self) -> Path:
            raise RuntimeError("mpiexec not found; install mpich")

        def events(self):  # pragma: no cover - never reached
            raise AssertionError

        async def stop(self, reason: str = "") -> None:
            pass

    app = EnsTuiApp([my_config(tmp_path)], launcher_factory=lambda c: Broken(), setup_checker=no_cuda, cwd=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and not app.screen.state.running)
        assert app.screen.state.done.status == "failed"
        assert "mpiexec not found" in screen_text(app)


@sync
async def test_replay_shows_the_report_over_the_final_dashboard(recorded_run: Path) -> None:
    app = EnsTuiApp(show=recorded_run, setup_checker=no_cuda)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ReportScreen)
        for key, tab in (("2", "calibration"), ("3", "ood"), ("4", "inputs"), ("1", "summary")):
            await pilot.press(key)
            assert app.screen.query_one("#report-tabs").active == tab
        await pilot.press("escape")
        run = app.screen
        assert isinstance(run, RunScreen) and not run.live
        assert len(run.query_one(RankTable).rows) == 2
        assert "finished" in screen_text(app)
        await pilot.press("r")
        assert isinstance(app.screen, ReportScreen)
        await pilot.press("q")
    assert app.return_code == 0


@sync
async def test_help_lists_the_keys_of_the_current_screen(in_repo: Path) -> None:
    app = EnsTuiApp(setup_checker=no_cuda)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        assert "Launch" in text and "Members" in text
        # Every key of the setup screen once: the fields' letters, save, runs (b is batch, r is runs).
        for key, what in (("l", "Learning rate"), ("t", "Strategy"), ("n", "Ranks"), ("d", "Dataset"), ("s", "Save"),
                          ("r", "Runs"), ("b", "Batch")):
            assert f"{key}      {what}" in text, what
        keys = [k for b in app.screen_stack[-2].BINDINGS for k in b.key.split(",")]  # type: ignore[union-attr]
        assert len(keys) == len(set(keys))
        await pilot.press("escape")
        assert isinstance(app.screen, SetupScreen)


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
@sync
async def test_every_screen_fits(recorded_run: Path, size: tuple[int, int]) -> None:
    app = EnsTuiApp(show=recorded_run, setup_checker=no_cuda)
    async with app.run_test(size=size) as pilot:
        await pilot.press("escape")
        text = screen_text(app)
        for needle in ("rank", "throughput", "utilization", "log", "training loss"):
            assert needle in text, needle


@sync
async def test_the_palettes_screenshot_lands_in_the_run_folder_and_says_where(
        recorded_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(recorded_run, run_dir)
    monkeypatch.setenv("HOME", str(tmp_path / "home-without-downloads"))
    app = EnsTuiApp(show=run_dir, setup_checker=no_cuda)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen))
        await pilot.press("ctrl+p")
        await pilot.press(*"screenshot")
        await pilot.press("enter")
        await wait_for(pilot, lambda: list(run_dir.glob("*.svg")))
        await wait_for(pilot, lambda: "Screenshot" in screen_text(app) and "saved" in screen_text(app))
