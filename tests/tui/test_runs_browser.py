"""The runs browser (`ens-tui runs DIR`, or `r` on the setup screen): every run folder under an output dir,
with a true status and its metrics; sort, replay, delete, compare; broken folders listed, never a crash.

The folders are copies of one real trained run (the session's `trained_run`), made to differ, plus broken
ones made by hand.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from engine.run_folder import RunFolder
from ens_tui.app import EnsTuiApp
from ens_tui.cli import main
from ens_tui.dialogs.compare_runs import CompareRuns
from ens_tui.dialogs.confirm_delete import ConfirmDelete
from ens_tui.rundir import RunLock
from ens_tui.runs_index import scan
from ens_tui.screens.report import ReportScreen
from ens_tui.screens.run import RunScreen
from ens_tui.screens.runs import RunsScreen
from ens_tui.screens.setup import SetupScreen

from .conftest import RECORDED_RUN, REPO, no_cuda
from .test_pilot import screen_text, sync, wait_for

NARROW, WIDE = (80, 24), (160, 40)
T0 = time.mktime((2026, 3, 1, 10, 0, 0, 0, 0, -1))
DAY = 86400.0

ALPHA, BETA, LOST = "20260301-100000-alpha", "20260302-100000-beta", "lost"
BROKEN = {
    "bad-runjson": "run.json: not JSON",
    "no-config": "no config.toml",
    "bad-report": "report.json: not JSON",
    "bad-events": "events.jsonl: 3 of 3 lines unreadable",
    "empty": "empty folder",
}


def edit_json(path: Path, change: dict[str, object], section: str | None = None) -> None:
    data = json.loads(path.read_text())
    (data[section] if section else data).update(change)
    path.write_text(json.dumps(data))


def copy_run(source: Path, runs: Path, name: str) -> RunFolder:
    """A copy of a run folder (the original is never changed)."""
    return RunFolder(Path(shutil.copytree(source, runs / name)))


def build_runs(source: Path, runs: Path) -> dict[str, Path]:
    """Three sound runs that differ (a config key, metrics, dates, one whose launcher died) and five broken ones."""
    runs.mkdir()
    alpha = copy_run(source, runs, ALPHA)
    edit_json(alpha.info, {"started": T0, "ended": T0 + 60})
    beta = copy_run(source, runs, BETA)
    edit_json(beta.info, {"started": T0 + DAY, "ended": T0 + DAY + 90})
    edit_json(beta.report_json, {"accuracy": 0.123, "nll": 2.5}, section="ensemble")
    beta.config.write_text(re.sub(r"(?m)^lr = .*$", "lr = 0.5", beta.config.read_text()))
    lost = copy_run(source, runs, LOST)  # run.json says running, but no launcher holds run.lock
    edit_json(lost.info, {"status": "running", "ended": None})
    lost.report_json.unlink()

    copy_run(source, runs, "bad-runjson").info.write_bytes(b"{not json")
    copy_run(source, runs, "no-config").config.unlink()
    copy_run(source, runs, "bad-report").report_json.write_text("garbage")
    copy_run(source, runs, "bad-events").events.write_bytes(b"\xff\xfe\x00 not utf-8\n" * 3)
    (runs / "empty").mkdir()
    return {p.name: p for p in runs.iterdir()}


@pytest.fixture
def runs(tmp_path: Path, trained_run: Path) -> dict[str, Path]:
    return build_runs(trained_run, tmp_path / "runs")


def table(app: EnsTuiApp) -> DataTable[object]:
    return app.screen.query_one(DataTable)


def order(app: EnsTuiApp) -> list[str]:
    """The run folder names, top to bottom."""
    return [Path(str(row.key.value)).name for row in table(app).ordered_rows]


def status_of(app: EnsTuiApp, path: Path) -> str:
    return str(table(app).get_cell(str(path), "status"))


def title(app: EnsTuiApp) -> str:
    return str(app.screen.query_one("#runs-title").render())


def detail(app: EnsTuiApp) -> str:
    return str(app.screen.query_one("#run-detail").render())


async def open_browser(pilot: Pilot[int], app: EnsTuiApp) -> RunsScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.scanned)
    assert isinstance(app.screen, RunsScreen)
    return app.screen


async def go_to(pilot: Pilot[int], app: EnsTuiApp, name: str) -> None:
    """Move the cursor to a run with j / k, as a person would."""
    now, target = table(app).cursor_row, order(app).index(name)
    await pilot.press(*(["j"] * (target - now) if target > now else ["k"] * (now - target)))
    assert order(app)[table(app).cursor_row] == name and name in detail(app)


# ---------------------------------------------------------------------- the list


@pytest.mark.parametrize("size", [NARROW, WIDE])
@sync
async def test_every_run_is_listed_with_its_true_status_and_metrics(
    runs: dict[str, Path], size: tuple[int, int]
) -> None:
    app = EnsTuiApp(runs=runs[ALPHA].parent, setup_checker=no_cuda)
    async with app.run_test(size=size) as pilot:
        await open_browser(pilot, app)
        assert sorted(order(app)) == sorted(runs)
        text = screen_text(app)
        assert title(app).startswith("8 runs · by date ▼ · in ") and title(app).endswith(str(runs[ALPHA].parent))
        accuracy = json.loads(RunFolder(runs[ALPHA]).report_json.read_text())["ensemble"]["accuracy"]
        for shown in ("finished", "interrupted", f"{accuracy:.3f}", "0.123", "2.500", "2026-03-01 10:00", "1m00s"):
            assert shown in text, shown
        assert status_of(app, runs[ALPHA]) == status_of(app, runs[BETA]) == "finished"
        assert status_of(app, runs[LOST]) == "interrupted"
        for name in BROKEN:
            assert status_of(app, runs[name]) == "unreadable", name
        # The line under the table says why, run by run.
        await go_to(pilot, app, LOST)
        assert "interrupted: launcher lost" in detail(app)
        for name, why in BROKEN.items():
            await go_to(pilot, app, name)
            assert why in detail(app) and why[:20] in screen_text(app), name
        if size == WIDE:
            assert "local" in text and "3" in text and "members" in text


@sync
async def test_sorting_changes_the_order(runs: dict[str, Path]) -> None:
    app = EnsTuiApp(runs=runs[ALPHA].parent, setup_checker=no_cuda)
    async with app.run_test(size=WIDE) as pilot:
        await open_browser(pilot, app)
        # Newest first: lost and the broken copies started when the run was trained, then beta, then alpha.
        assert order(app)[-2:] == [BETA, ALPHA]
        assert "by date ▼" in title(app)
        while "by acc" not in title(app):
            await pilot.press("s")
        # Best accuracy first (the broken copies of alpha share its report), runs without one last.
        assert order(app).index(ALPHA) < order(app).index(BETA) == 4
        assert set(order(app)[-3:]) == {LOST, "bad-report", "empty"}
        await pilot.press("S")
        assert "by acc ▲" in title(app) and order(app)[0] == BETA
        assert set(order(app)[-3:]) == {LOST, "bad-report", "empty"}
        # A click on a header sorts by it (best first), a second click reverses.
        header = screen_text(app).splitlines()[2]
        await pilot.click(offset=(header.index("nll"), 2))
        await wait_for(pilot, lambda: "by nll ▲" in title(app))
        assert order(app)[4] == BETA
        await pilot.click(offset=(header.index("nll"), 2))
        await wait_for(pilot, lambda: "by nll ▼" in title(app))
        assert order(app)[0] == BETA


# ---------------------------------------------------------------------- actions


@sync
async def test_enter_replays_the_run_with_its_report(runs: dict[str, Path]) -> None:
    app = EnsTuiApp(runs=runs[ALPHA].parent, setup_checker=no_cuda)
    async with app.run_test(size=NARROW) as pilot:
        await open_browser(pilot, app)
        await go_to(pilot, app, ALPHA)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen))
        assert isinstance(app.screen_stack[-2], RunScreen) and "ensemble of 3" in screen_text(app)
        await pilot.press("escape")
        assert isinstance(app.screen, RunScreen) and "finished" in screen_text(app)
        # A folder with nothing to replay says so instead.
        app.pop_screen()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await go_to(pilot, app, "empty")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        assert any("Nothing to replay" == n.title for n in app._notifications)


@sync
async def test_delete_asks_first_and_removes_the_folder(runs: dict[str, Path]) -> None:
    app = EnsTuiApp(runs=runs[ALPHA].parent, setup_checker=no_cuda)
    async with app.run_test(size=NARROW) as pilot:
        await open_browser(pilot, app)
        await go_to(pilot, app, BETA)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDelete))
        assert f"Delete {BETA}?" in screen_text(app) and "cannot be undone" in screen_text(app)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        assert runs[BETA].is_dir()
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDelete))
        await pilot.press("y")
        await wait_for(pilot, lambda: not runs[BETA].exists() and BETA not in order(app))
        assert len(order(app)) == 7 and runs[ALPHA].is_dir()
        # Broken folders can be deleted too.
        await go_to(pilot, app, "bad-report")
        await pilot.press("d", "y")
        await wait_for(pilot, lambda: not runs["bad-report"].exists() and "bad-report" not in order(app))


@sync
async def test_a_running_run_is_never_deleted(runs: dict[str, Path]) -> None:
    app = EnsTuiApp(runs=runs[ALPHA].parent, setup_checker=no_cuda)
    lock = RunLock(runs[LOST])
    async with app.run_test(size=NARROW) as pilot:
        await open_browser(pilot, app)
        assert status_of(app, runs[LOST]) == "interrupted"
        lock.acquire()  # as a launcher does for its whole life
        try:
            await pilot.press("r")
            await wait_for(pilot, lambda: status_of(app, runs[LOST]) == "running")
            await go_to(pilot, app, LOST)
            await pilot.press("d")
            await pilot.pause()
            assert isinstance(app.screen, RunsScreen) and runs[LOST].is_dir()
            assert any("still running" in n.message for n in app._notifications)
        finally:
            lock.release()
        await pilot.press("r")
        await wait_for(pilot, lambda: status_of(app, runs[LOST]) == "interrupted")


@sync
async def test_two_selected_runs_side_by_side(runs: dict[str, Path]) -> None:
    app = EnsTuiApp(runs=runs[ALPHA].parent, setup_checker=no_cuda)
    async with app.run_test(size=NARROW) as pilot:
        await open_browser(pilot, app)
        await go_to(pilot, app, ALPHA)
        await pilot.press("space", "c")
        assert isinstance(app.screen, RunsScreen)
        assert any("mark two runs" in n.message for n in app._notifications)
        await go_to(pilot, app, BETA)
        await pilot.press("space")
        assert "2 selected" in title(app) and screen_text(app).count("●") == 2
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareRuns))
        text = screen_text(app)
        assert f"A {ALPHA}" in text and f"B {BETA}" in text
        assert "config: 1 key differs" in text
        (line,) = [row for row in text.splitlines() if "train.lr" in row]
        assert "0.05" in line and "0.5" in line
        for shown in ("timings", "wall time", "1m00s", "1m30s"):
            assert shown in text, shown
        await pilot.press("end")  # at 80×24 the metrics are further down
        await pilot.pause()
        (line,) = [row for row in screen_text(app).splitlines() if "accuracy" in row]
        assert "0.1230" in line
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


@sync
async def test_the_setup_screen_opens_the_browser_on_its_output_dir(tmp_path: Path) -> None:
    runs = tmp_path / "elsewhere"
    copy_run(RECORDED_RUN, runs, "one")
    config = tmp_path / "mine.toml"
    config.write_text(f'name = "mine"\noutput_dir = "{runs}"\n')
    app = EnsTuiApp([config], setup_checker=no_cuda, cwd=tmp_path)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("r")
        screen = await open_browser(pilot, app)
        assert screen.output_dir == runs and order(app) == ["one"]
        await pilot.press("escape")
        assert isinstance(app.screen, SetupScreen)


# ---------------------------------------------------------------------- the CLI


def test_list_prints_one_line_per_run(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", str(runs[ALPHA].parent), "--list"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["status", "run", "date"] and len(lines) == len(runs)
    for name in runs:
        (line,) = [line for line in lines if f" {name} " in line]
        why = BROKEN.get(name)
        assert line.startswith("unreadable" if why else "interrupted" if name == LOST else "finished")
        assert why is None or f"unreadable: {why}" in line


def test_list_from_the_command_line_never_wraps(tmp_path: Path, cli_env: dict[str, str]) -> None:
    runs = tmp_path / "runs"
    copy_run(RECORDED_RUN, runs, "a").report_json.write_text("{")
    copy_run(RECORDED_RUN, runs, "b")
    done = subprocess.run([sys.executable, "-m", "ens_tui", "runs", str(runs), "--list"], cwd=REPO,
                          env={**cli_env, "COLUMNS": "40"}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and "unreadable: report.json: not JSON" in lines[1] + lines[2]


@pytest.mark.parametrize("what", ["missing", "file", "run"])
def test_a_bad_dir_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str) -> None:
    target = tmp_path / what
    if what == "file":
        target.write_text("x")
    elif what == "run":
        shutil.copytree(RECORDED_RUN, target)
    assert main(["runs", str(target), "--list"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert captured.err.startswith(f"ens-tui: {target}: ")


def test_dir_defaults_to_runs_or_a_configs_output_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["runs", "--list"]) == 2
    assert capsys.readouterr().err == "ens-tui: runs: no such folder\n"
    copy_run(RECORDED_RUN, tmp_path / "runs", "here")
    assert main(["runs", "--list"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == ["finished", "here"]
    copy_run(RECORDED_RUN, tmp_path / "elsewhere", "there")
    (tmp_path / "mine.toml").write_text('name = "mine"\noutput_dir = "elsewhere"\n')
    assert main(["runs", "mine.toml", "--list"]) == 0
    assert " there " in capsys.readouterr().out


def test_scan_never_raises_on_a_folder_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / "run.json").write_text("[" * 100_000)  # nested too deeply for json
    (tmp_path / "deep" / "config.toml").write_bytes(b"\xff\xfe")
    (tmp_path / "notes.txt").write_text("not a folder: not listed")
    (run,) = scan(tmp_path)
    assert run.shown_status == "unreadable" and "run.json: not JSON" in run.note and "config.toml" in run.note


# ---------------------------------------------------------------------- how it looks


@pytest.fixture
def fixed_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Runs with fixed dates, in UTC, under a relative `runs` (so the title is the same on every machine)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.chdir(tmp_path)
    runs = build_runs(RECORDED_RUN, tmp_path / "runs")
    edit_json(RunFolder(runs["bad-report"]).info, {"started": T0 - DAY, "ended": T0 - DAY + 30})
    for name in ("bad-runjson", "no-config", "bad-events", "empty"):
        os.utime(runs[name], (T0 - 2 * DAY, T0 - 2 * DAY))
    yield Path("runs")
    monkeypatch.undo()
    time.tzset()


def test_snapshot_80x24(snap_compare, fixed_runs: Path) -> None:
    async def scanned(pilot: Pilot[int]) -> None:
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, RunsScreen) and pilot.app.screen.scanned)
        await pilot.pause()

    assert snap_compare(EnsTuiApp(runs=fixed_runs, setup_checker=no_cuda), terminal_size=(80, 24),
                        run_before=scanned)
