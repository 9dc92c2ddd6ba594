"""`r` before the run's own report: the report of the members trained so far, marked partial, for a run that is
training, failed or was interrupted; a word when no member has finished yet; the hint to resume an interrupted run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine import events as ev
from engine.report_model import Partial, Report
from engine.run_folder import RunFolder
from ens_tui.app import EnsTuiApp
from ens_tui.screens.report import ReportScreen
from ens_tui.screens.run import RunScreen
from ens_tui.widgets.log_pane import LogPane
from tests.conftest import REPO
from tests.test_run_lifecycle import only_run, start, wait_for_event, write_toml

from .conftest import no_cuda
from .test_pilot import Factory, launch_and_wait_for_ranks, my_config, screen_text, sync, wait_for

NO_MEMBER_DONE = 30
"""Frames of the recorded run before it holds with two epochs of m0 and m1 done, no member finished."""
TWO_MEMBERS_DONE = 40
"""…and with m0 and m1 finished (the recording keeps no checkpoints, so the engine finds none)."""


def footer(app: EnsTuiApp) -> str:
    return screen_text(app).splitlines()[-1]


def log_text(screen: RunScreen) -> str:
    """The log pane's lines, wrapped lines joined again (one space between words)."""
    return " ".join(" ".join(strip.text for strip in screen.query_one(LogPane).lines).split())


def interrupted_copy(trained_run: Path, where: Path, unfinished: int = 2) -> RunFolder:
    """The trained run as if it had been stopped while member `unfinished` was in its (only) epoch: no report, no
    predictions, that member's checkpoint one epoch short, the events up to the stop."""
    import torch

    from engine.checkpoint import save_checkpoint

    folder = RunFolder(where / trained_run.name)
    shutil.copytree(trained_run, folder.path)
    for path in (folder.report_json, folder.report_md, folder.report_html, folder.predictions):
        path.unlink()
    shutil.rmtree(folder.figures)
    state = torch.load(folder.checkpoint(unfinished), map_location="cpu", weights_only=True)
    save_checkpoint(folder.checkpoint(unfinished), {**state, "epoch": state["epoch"] - 1})
    after = ("predictions_saved", "report_saved", "goodbye", "run_done")
    kept = [line for line in folder.events.read_text().splitlines()
            if (d := json.loads(line))["type"] not in after
            and not (d["type"] in ("member_done", "epoch") and d.get("member") == unfinished)]
    stop = ev.RunDone(status="interrupted", reason="stopped by the user", t=json.loads(kept[-1])["t"] + 0.5)
    folder.events.write_text("\n".join([*kept, ev.encode(stop).decode().strip()]) + "\n")
    info = json.loads(folder.info.read_text())
    folder.info.write_text(json.dumps({**info, "status": "interrupted", "reason": "stopped by the user"}))
    return folder


# ---------------------------------------------------------------------------------------------- real runs


@pytest.mark.mpi
@pytest.mark.timeout(300)
@sync
async def test_r_on_an_interrupted_run_shows_the_partial_report_of_its_finished_members(
        trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the run's path, short and the same on every machine, in the log's hint
    folder = interrupted_copy(trained_run, tmp_path)
    run_dir = Path(folder.name)
    app = EnsTuiApp(show=run_dir, setup_checker=no_cuda)
    async with app.run_test(size=(120, 34)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and "r Partial report" in footer(app))
        run = app.screen
        assert isinstance(run, RunScreen) and run.state.phase == "interrupted"
        assert (f"continue it from its checkpoints: ens-tui --resume {run_dir}; r shows the partial report of the "
                "2 members trained") in log_text(run)

        await pilot.press("r")
        await pilot.pause()
        assert any("scoring the 2 of 3 members trained so far" in n.message for n in app._notifications)
        await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen), timeout=240)
        await wait_for(pilot, lambda: "partial: 2 of 3 members" in screen_text(app))
        assert f"{run_dir}/partial" in screen_text(app)

        await pilot.press("5")
        await pilot.pause()
        assert "a partial report cannot predict" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is run)
        assert "partial report written" in log_text(run)

    # A real report of the two finished members, beside (never over) the run's own report files.
    assert not folder.report_json.exists() and not folder.report_md.exists() and not folder.predictions.exists()
    partial = Report.read(folder.partial.report_json)
    assert partial.partial == Partial(members=2, of=3)
    assert [m.member for m in partial.members] == [0, 1] and partial.members_count == 2
    assert "> **Partial:** 2 of 3 members" in folder.partial.report_md.read_text()
    assert folder.partial.report_html.exists() and partial.figures
    # The same weights on the same test split as the finished run: each member scores what it scored there.
    final = Report.read(RunFolder(trained_run).report_json)
    assert [m for m in final.members if m.member in (0, 1)] == partial.members


@pytest.mark.mpi
@pytest.mark.timeout(300)
def test_with_every_member_finished_the_partial_report_is_the_runs_own(trained_run: Path, tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / trained_run.name)
    shutil.copytree(trained_run, folder.path)
    own = {p: p.read_bytes() for p in (folder.report_json, folder.report_md, folder.predictions)}
    done = subprocess.run([sys.executable, "-m", "engine.partial", str(folder.path)], cwd=REPO, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "engine.partial: scoring m2 (3 of 3)" in done.stderr
    assert f"wrote {folder.partial.report_json}" in done.stdout and "3 of 3 members" in done.stdout
    assert {p: p.read_bytes() for p in own} == own, "the run's own report is left as it was"
    final, partial = Report.read(folder.report_json), Report.read(folder.partial.report_json)
    assert partial.partial == Partial(members=3, of=3) and final.partial is None
    same = {"partial", "figures"}
    assert partial.model_dump(exclude=same) == final.model_dump(exclude=same)


@pytest.mark.mpi
@pytest.mark.timeout(300)
def test_a_partial_report_while_the_run_trains(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """One rank trains m0, then m1 (about 9 s each): once m0 is done, the partial report has it alone."""
    config = write_toml(tmp_path, data={"limit": 1400}, train={"members": 2, "epochs": 60},
                        parallel={"ranks": [{"count": 1, "device": "cpu"}]}, report={"figures": False})
    proc = start(["--run-config", str(config)], cli_env)
    try:
        folder = only_run(tmp_path)
        before = wait_for_event(folder, lambda e: isinstance(e, ev.MemberDone) and e.member == 0, timeout=240)
        assert not any(isinstance(e, ev.MemberDone) and e.member == 1 for e in before)
        done = subprocess.run([sys.executable, "-m", "engine.partial", str(folder.path)], cwd=REPO,
                              capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr
        assert "engine.partial: scoring m0 (1 of 1)" in done.stderr
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=60)
    partial = Report.read(folder.partial.report_json)
    assert partial.partial == Partial(members=1, of=2) and [m.member for m in partial.members] == [0]
    if folder.report_json.exists():  # the run may have finished meanwhile: its own report is its own
        assert Report.read(folder.report_json).members_count == 2


# ---------------------------------------------------------------------------------------------- replays


@sync
async def test_r_before_any_member_finished_says_why_instead_of_doing_nothing(
        tmp_path: Path, recorded_run: Path) -> None:
    factory = Factory(recorded_run, tmp_path, hold_after=NO_MEMBER_DONE)
    app = EnsTuiApp([my_config(tmp_path)], launcher_factory=factory, setup_checker=no_cuda, cwd=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await launch_and_wait_for_ranks(pilot, app)
        run = app.screen
        assert isinstance(run, RunScreen)
        await wait_for(pilot, lambda: "r No report yet" in footer(app))
        await pilot.press("r")
        await pilot.pause()
        notes = [n.message for n in app._notifications]
        assert any("no member has finished training yet: a partial report needs one that completed all 3 epochs"
                   in n for n in notes), notes
        assert app.screen is run and not [w for w in app.workers if w.group == "partial"]
        await pilot.press("question_mark")
        await pilot.pause()
        help_text = screen_text(app)
        assert "Partial report" in help_text and "No report yet" in help_text


@sync
async def test_r_once_members_finished_runs_the_engine_and_shows_why_it_wrote_nothing(
        tmp_path: Path, recorded_run: Path) -> None:
    factory = Factory(recorded_run, tmp_path, hold_after=TWO_MEMBERS_DONE)
    app = EnsTuiApp([my_config(tmp_path)], launcher_factory=factory, setup_checker=no_cuda, cwd=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await launch_and_wait_for_ranks(pilot, app)
        run = app.screen
        assert isinstance(run, RunScreen)
        await wait_for(pilot, lambda: "r Partial report" in footer(app))
        assert run.live
        RunFolder(factory.launchers[0].run_dir).info.write_text("{}")  # a run folder, as the launcher's are
        await pilot.press("r")
        # The recording has no checkpoints: the engine finds no finished member and says so, and the run goes on.
        await wait_for(pilot, lambda: any(n.title == "No partial report" for n in app._notifications), timeout=60)
        (note,) = [n for n in app._notifications if n.title == "No partial report"]
        assert note.message.startswith("no member has finished training yet")
        assert app.screen is run and run.live
        assert not RunFolder(factory.launchers[0].run_dir).partial.path.exists()
