"""The whole report as one SVG: every tab, one under the other, each at the full height of its content.

A terminal shows one screenful of one tab; `e` on the report wants all of it. So this opens the report in a
headless copy of the app at the user's width, grows the terminal until the tab's content fits, and records
each tab. It runs in a process of its own (`export_svg`): the dashboard's event loop and terminal stay
untouched, and a second app in one process would share Textual's globals with the first.

`python -m ens_tui.report_svg RUN [--width N] [--height N] [--theme NAME]` writes RUN/report.svg.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from textual.app import App
from textual.containers import VerticalScroll
from textual.widgets import TabbedContent

from engine.atomic import atomic_write_text
from engine.config import ConfigError, RunConfig, load_config
from engine.report_model import Report, ReportError
from engine.run_folder import RunFolder
from ens_tui.screens.report import TABS, ReportScreen

SVG_NAME = "report.svg"
MAX_HEIGHT = 1000
"""Rows one tab may grow to: a report with hundreds of uncertain inputs is cut there, not drawn for minutes."""
GROW_STEPS = 4
"""Plots that fill their pane grow with the terminal; a few rounds of growing settle every tab."""
TIMEOUT_S = 180


class ExportError(RuntimeError):
    """The SVG could not be drawn; the message is the one line the drawing process said why."""


class _Headless(App[None]):
    """The report screen alone, styled as in the dashboard."""

    CSS_PATH = "app.tcss"
    TITLE = "ens-tui"
    SUB_TITLE = "deep ensembles on MPI ranks"

    def __init__(self, report: Report, run_dir: Path, config: RunConfig | None) -> None:
        super().__init__()
        self._screen = ReportScreen(report, run_dir, config)

    def on_mount(self) -> None:
        self.push_screen(self._screen)


def _overflow(screen: ReportScreen) -> int:
    """Rows of the shown tab's content below the bottom of the screen."""
    pane = screen.query_one(TabbedContent).active_pane
    scrolls = list(pane.query(VerticalScroll).results()) if pane is not None else []
    return max((s.max_scroll_y for s in scrolls), default=0)


async def render(report: Report, run_dir: Path, config: RunConfig | None = None, *, width: int = 120,
                 height: int = 40, theme: str | None = None) -> str:
    """The SVG's text: each of the report's tabs at `width`, as tall as its content (`height` at least)."""
    app = _Headless(report, run_dir, config)
    console = Console(width=width, file=io.StringIO(), force_terminal=True, color_system="truecolor", record=True,
                      legacy_windows=False, safe_box=False)
    async with app.run_test(size=(width, height)) as pilot:
        if theme:
            app.theme = theme
        screen = app.screen
        assert isinstance(screen, ReportScreen)
        for tab in TABS:
            await pilot.resize_terminal(width, height)
            screen.action_tab(tab)
            await pilot.pause()
            for _ in range(GROW_STEPS):
                overflow = _overflow(screen)
                if overflow <= 0 or app.size.height >= MAX_HEIGHT:
                    break
                await pilot.resize_terminal(width, min(MAX_HEIGHT, app.size.height + overflow))
                await pilot.pause()
            await pilot.pause()
            console.print(screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_svg(title=f"ens-tui report — {run_dir.name}")


def export_svg(run_dir: Path, *, width: int, height: int, theme: str | None = None) -> Path:
    """Draw RUN/report.svg in a process of its own (seconds); raises ExportError with its one-line reason."""
    command = [sys.executable, "-m", "ens_tui.report_svg", str(run_dir), "--width", str(width), "--height", str(height)]
    command += ["--theme", theme] if theme else []
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,  # noqa: S603
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ExportError(f"drawing {SVG_NAME} took over {TIMEOUT_S} s") from None
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()
        raise ExportError(said[-1] if said else f"drawing {SVG_NAME} failed (exit status {done.returncode})")
    return RunFolder(run_dir).path / SVG_NAME


def main(argv: list[str] | None = None) -> int:
    """Write RUN/report.svg from RUN/report.json."""
    import asyncio

    parser = argparse.ArgumentParser(prog="python -m ens_tui.report_svg", description=main.__doc__)
    parser.add_argument("run_dir", type=Path, metavar="RUN")
    parser.add_argument("--width", type=int, default=120, help="terminal columns (default 120)")
    parser.add_argument("--height", type=int, default=40, help="rows each tab has at least (default 40)")
    parser.add_argument("--theme", help="a Textual theme name (default: the app's)")
    args = parser.parse_args(argv)
    folder = RunFolder(args.run_dir)
    try:
        report = Report.read(folder.report_json)
    except ReportError as err:
        print(f"python -m ens_tui.report_svg: {err}", file=sys.stderr)
        return 2
    try:
        config = load_config(folder.config) if folder.config.is_file() else None
    except ConfigError:
        config = None  # the report draws without it, as `ens-tui show` does
    svg = asyncio.run(render(report, folder.path, config, width=max(args.width, 40), height=max(args.height, 12),
                             theme=args.theme))
    path = folder.path / SVG_NAME
    atomic_write_text(path, svg)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
