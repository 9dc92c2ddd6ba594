"""`ens-tui show` on a run folder with a broken file: the replay shows what it can and names what it cannot.

A real trained run is copied, one of its files broken the way a full disk, a crash mid-write or a stray
editor leaves it, and the real app opened on it. A broken file is a one-line notice naming it, never a
traceback; a broken line of events.jsonl costs that line only, and the notice counts them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.run_folder import RunFolder
from engine.usage import EXIT_USAGE
from ens_tui import cli
from ens_tui.app import EnsTuiApp
from ens_tui.screens.report import ReportScreen
from ens_tui.screens.run import RunScreen
from ens_tui.widgets.rank_table import RankTable
from tests.tui.conftest import no_cuda
from tests.tui.test_pilot import SIZE, screen_text, sync


@pytest.fixture
def run_copy(trained_run: Path, tmp_path: Path) -> RunFolder:
    """A copy of the session's trained run, free to break."""
    return RunFolder(shutil.copytree(trained_run, tmp_path / trained_run.name))


def replace_with_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


async def open_replay(folder: RunFolder) -> tuple[list[str], str, int]:
    """Open `ens-tui show` on the folder: its notices, what the first screen shows, and the rank rows of the
    dashboard when it shows a finished run (0 when not)."""
    app = EnsTuiApp(show=folder.path, setup_checker=no_cuda)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.pause()
        notices = [n.message for n in app._notifications]
        shown = " ".join(screen_text(app).split())
        if isinstance(app.screen, ReportScreen):
            await pilot.press("escape")
        run = app.screen
        assert isinstance(run, RunScreen) and not run.live
        rows = len(run.query_one(RankTable).rows) if "finished" in screen_text(app) else 0
        await pilot.press("q")
    assert app.return_code == 0
    return notices, shown, rows


@pytest.mark.mpi
@pytest.mark.parametrize(("content", "problem"), [
    (b"garbage{", "not JSON"),
    (b"[1,2]", "not a valid report"),
    (b"[" * 100_000, "not JSON (nested too deeply)"),
    (b'{"dataset": "digits\xff"}', "not JSON"),
])
@sync
async def test_a_broken_report_is_named_and_the_dashboard_still_replays(
        run_copy: RunFolder, content: bytes, problem: str) -> None:
    run_copy.report_json.write_bytes(content)
    notices, shown, rows = await open_replay(run_copy)
    (notice,) = notices
    assert notice.startswith(f"{run_copy.report_json}: {problem}") and "\n" not in notice
    assert problem in shown
    assert rows == 2


@pytest.mark.mpi
@sync
async def test_unreadable_event_lines_are_skipped_counted_and_the_rest_replayed(run_copy: RunFolder) -> None:
    lines = run_copy.events.read_bytes().splitlines(keepends=True)
    lines.insert(3, b'{"type": "step", "rank": 0, "note": "caf\xe9"}\n')  # a non-UTF-8 byte
    lines.insert(5, b"garbage{\n")
    lines.append(b'{"type": "member_done", "rank": 0, "memb')  # torn by a crash mid-write
    run_copy.events.write_bytes(b"".join(lines))
    notices, shown, rows = await open_replay(run_copy)
    assert notices == [f"{run_copy.events}: 3 unreadable lines skipped"]
    assert "3 unreadable lines skipped" in shown
    assert rows == 2


BROKEN: dict[str, tuple[Callable[[RunFolder], None], str]] = {
    "config.toml garbage": (lambda f: f.config.write_text("garbage{"), "invalid TOML"),
    "config.toml not text": (lambda f: f.config.write_bytes(b"\xff\xfe\x00"), "not a text file"),
    "events.jsonl a folder": (lambda f: replace_with_folder(f.events), "cannot read it"),
}


@pytest.mark.mpi
@pytest.mark.parametrize("case", list(BROKEN))
@sync
async def test_a_broken_config_or_event_log_is_named_in_the_replay(run_copy: RunFolder, case: str) -> None:
    breaks, problem = BROKEN[case]
    breaks(run_copy)
    notices, _, rows = await open_replay(run_copy)
    broken = run_copy.config if case.startswith("config") else run_copy.events
    assert [n for n in notices if n.startswith(f"{broken}: {problem}")], notices
    assert rows == (2 if broken == run_copy.config else 0)


@pytest.mark.mpi
@sync
async def test_a_garbage_run_json_does_not_stop_the_replay(run_copy: RunFolder) -> None:
    """The replay is rebuilt from events.jsonl; run.json is the launcher's record, not needed to show a run."""
    run_copy.info.write_text("garbage{")
    notices, _, rows = await open_replay(run_copy)
    assert notices == []
    assert rows == 2


@pytest.mark.mpi
def test_show_refuses_what_it_cannot_replay_in_one_line(run_copy: RunFolder, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Path | None] = []
    monkeypatch.setattr("ens_tui.app.run_app", lambda *_, show, **__: opened.append(show) or 0)
    replace_with_folder(run_copy.events)
    assert cli.main(["show", str(run_copy.path)]) == EXIT_USAGE
    assert capsys.readouterr().err == f"ens-tui: {run_copy.events}: not a file, nothing to replay\n"
    replace_with_folder(run_copy.info)
    assert cli.main(["show", str(run_copy.path)]) == EXIT_USAGE
    assert "not a run folder" in capsys.readouterr().err
    assert opened == []
