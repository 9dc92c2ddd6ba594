"""The report screen of a finished run offers `+ Extend`: a dialog asks for the new total, refuses what
`ens-tui extend` refuses (saying why, staying open), and on a total it accepts the dashboard follows the
extended run."""

from __future__ import annotations

import shutil
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input, Label

from engine.run_folder import RunFolder
from ens_tui.app import EnsTuiApp
from ens_tui.dialogs.extend import ExtendRun
from ens_tui.rundir import Extension, write_run_info
from ens_tui.screens.report import ReportScreen
from ens_tui.screens.run import RunScreen

from .conftest import ReplayLauncher, no_cuda
from .test_pilot import screen_text, sync, wait_for


def footer(app: EnsTuiApp) -> str:
    return screen_text(app).splitlines()[-1]


async def total(pilot: Pilot[int], app: EnsTuiApp, value: str) -> str:
    """Type `value` as the new total and press enter; returns what the dialog says under the field ("" once it
    has closed)."""
    app.screen.query_one("#extend-members", Input).clear()
    await pilot.press(*value, "enter")
    await pilot.pause()
    return str(app.screen.query_one("#extend-note", Label).content) if isinstance(app.screen, ExtendRun) else ""


@sync
async def test_the_report_offers_extend_and_the_dialog_refuses_no_more_members(recorded_run: Path) -> None:
    app = EnsTuiApp(show=recorded_run, setup_checker=no_cuda)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen))
        keys = footer(app)
        for key in ("+ Extend", "e Export", "n New run", "esc Back", "? Keys", "q Quit"):
            assert key in keys, keys
        await pilot.press("plus")
        await wait_for(pilot, lambda: isinstance(app.screen, ExtendRun))
        assert "It has 4 members" in screen_text(app)
        assert await total(pilot, app, "4") == "has 4 members; the new total must be more than 4"
        assert await total(pilot, app, "2") == "has 4 members; the new total must be more than 4"
        assert isinstance(app.screen, ExtendRun), "a refused total keeps the dialog open"
        note = await total(pilot, app, "6")
        assert note.startswith("checkpoints/member-00.pt is missing"), note  # the recording keeps no checkpoints
        await pilot.press("escape")
        assert isinstance(app.screen, ReportScreen)


@sync
async def test_a_partial_or_unfinished_report_offers_no_extend(recorded_run: Path, tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    shutil.copytree(recorded_run, folder.path)
    write_run_info(folder.path, status="interrupted", reason="stopped by the user")
    app = EnsTuiApp(show=folder.path, setup_checker=no_cuda)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen))
        assert "Extend" not in footer(app)
        await pilot.press("plus")
        assert isinstance(app.screen, ReportScreen)


@sync
async def test_an_accepted_total_hands_the_dashboard_to_the_extended_run(recorded_run: Path, tmp_path: Path) -> None:
    import torch

    folder = RunFolder(tmp_path / "run")
    shutil.copytree(recorded_run, folder.path)
    folder.checkpoints.mkdir()
    for i in range(4):
        torch.save({"member": i, "epoch": 3}, folder.checkpoint(i))
    plans: list[Extension] = []

    def extender(plan: Extension) -> ReplayLauncher:
        plans.append(plan)
        return ReplayLauncher(recorded_run, tmp_path / "replayed", hold_after=30)  # still training at the end

    app = EnsTuiApp(show=folder.path, setup_checker=no_cuda, extend_factory=extender)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen))
        await pilot.press("plus")
        await wait_for(pilot, lambda: isinstance(app.screen, ExtendRun))
        await total(pilot, app, "6")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.live)
        (plan,) = plans
        assert (plan.members, plan.config.train.members, plan.run_dir) == (4, 6, folder.path)
        assert sum(isinstance(s, RunScreen) for s in app.screen_stack) == 1, "the replay gave way to the live run"
        assert not any(isinstance(s, ReportScreen) for s in app.screen_stack)
        assert "6 members" in screen_text(app)
