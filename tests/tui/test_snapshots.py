"""How each screen looks, from a recorded run folder, at a fixed terminal size (update: --snapshot-update)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ens_tui.app import EnsTuiApp

from .conftest import RECORDED_RUN, REPO, no_cuda

# Relative to the repository root (the `in_repo` fixture's working folder), so titles match on every machine.
RUN = RECORDED_RUN.relative_to(REPO)


def replay() -> EnsTuiApp:
    return EnsTuiApp(show=RUN, setup_checker=no_cuda)


@pytest.mark.parametrize("size", [(80, 24), (140, 40)])
def test_setup_screen(snap_compare, in_repo: Path, size: tuple[int, int]) -> None:
    assert snap_compare(EnsTuiApp(setup_checker=no_cuda), terminal_size=size)


def test_setup_screen_shows_why_a_setup_cannot_run(snap_compare, in_repo: Path) -> None:
    assert snap_compare(EnsTuiApp(setup_checker=no_cuda), press=["j", "j"], terminal_size=(100, 30))


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
def test_run_screen_final_state(snap_compare, in_repo: Path, size: tuple[int, int]) -> None:
    assert snap_compare(replay(), press=["escape"], terminal_size=size)


@pytest.mark.parametrize("tab", ["1", "2", "3", "4"])
def test_report_tabs(snap_compare, in_repo: Path, tab: str) -> None:
    assert snap_compare(replay(), press=[tab], terminal_size=(100, 32))


def test_report_at_80x24(snap_compare, in_repo: Path) -> None:
    assert snap_compare(replay(), terminal_size=(80, 24))


def test_help_dialog(snap_compare, in_repo: Path) -> None:
    assert snap_compare(EnsTuiApp(setup_checker=no_cuda), press=["question_mark"], terminal_size=(80, 24))
