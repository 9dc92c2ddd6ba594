"""The runs browser: every run folder under an output dir, sortable; replay, delete or compare them.

The folders are read in a labelled thread worker (ens_tui.runs_index does the reading and never raises for
what is inside a folder); the screen only draws the rows it gets back. Deleting runs in a worker too, under
the run's own lock, so a run a launcher is driving is never deleted.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker, WorkerState

from engine.run_folder import RunFolder
from ens_tui import rundir
from ens_tui.dialogs.compare_runs import CompareRuns
from ens_tui.dialogs.confirm_delete import ConfirmDelete
from ens_tui.runs_index import COLUMN, COLUMNS, RunSummary, compare, output_dir_problem, scan, sort_runs

if TYPE_CHECKING:
    from ens_tui.app import EnsTuiApp

STATUS_STYLE = {
    "finished": "bold green", "running": "bold cyan", "failed": "bold red", "interrupted": "bold yellow",
    "unreadable": "red",
}
SELECTED = "●"


def _short(path: Path) -> str:
    """The path relative to the working folder when it is inside it (`runs`), else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd())) if path.is_absolute() else str(path)
    except (OSError, ValueError):
        return str(path)


def _folder_size(path: Path) -> tuple[int, int]:
    """(files, bytes) under `path`, skipping what vanishes or cannot be read."""
    files = size = 0
    for entry in path.rglob("*"):
        try:
            if entry.is_file() and not entry.is_symlink():
                files += 1
                size += entry.stat().st_size
        except OSError:
            continue
    return files, size


class RunsScreen(Screen[None]):
    """A table of the runs under `output_dir`, newest first, and a line about the highlighted one."""

    BINDINGS = [
        Binding("enter", "open", "Replay", priority=True),
        Binding("space", "toggle_selected", "Select"),
        Binding("c", "compare", "Compare"),
        Binding("d", "delete", "Delete"),
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse", "Reverse", show=False),
        Binding("r", "rescan", "Refresh", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("escape", "app.new_run", "Setups"),
        Binding("question_mark", "app.help", "Keys"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, output_dir: Path) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.runs: list[RunSummary] = []
        self.scanned = False
        """True once the first scan has drawn its rows (tests wait for it)."""
        self.sort_column = "date"
        self.descending = True
        self.selected: list[Path] = []
        """Runs marked with space, in the order they were marked (compare shows the first as A)."""
        self._problem: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="runs-title")
        table: DataTable[Text] = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static(id="run-detail")
        yield Footer()

    def on_mount(self) -> None:
        self._draw_title()
        self.query_one(DataTable).focus()

    def on_screen_resume(self) -> None:
        # On first show, and when back from a replay or a dialog: folders may have changed meanwhile.
        self.action_rescan()

    # ------------------------------------------------------------------ reading

    @work(thread=True, exclusive=True, group="runs-scan", exit_on_error=False, description="reading run folders")
    def _scan(self) -> tuple[list[RunSummary], str | None]:
        return scan(self.output_dir), output_dir_problem(self.output_dir)

    @work(thread=True, group="runs-delete", exit_on_error=False, description="deleting a run folder")
    def _delete(self, run: RunSummary) -> RunSummary:
        # Under the run's own lock: a launcher that starts (a resume) between the question and now is refused.
        if rundir.is_running(run.path):
            raise rundir.RunDirError(f"{run.id}: still running (its launcher holds run.lock); stop it first")
        lock = rundir.RunLock(run.path)
        lock.acquire()
        try:
            shutil.rmtree(run.path)
        except OSError as err:
            raise rundir.RunDirError(f"{run.id}: not (fully) deleted: {err.strerror or err}") from None
        finally:
            lock.release()
        return run

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state == WorkerState.ERROR:
            title = "Cannot delete the run" if worker.group == "runs-delete" else "Cannot read the runs"
            self.notify(str(worker.error), title=title, severity="error")
            if worker.group == "runs-delete":
                self.action_rescan()
        elif event.state == WorkerState.SUCCESS and worker.group == "runs-scan":
            self.runs, self._problem = worker.result
            known = {r.path for r in self.runs}
            self.selected = [p for p in self.selected if p in known]
            self.scanned = True
            self._fill()
        elif event.state == WorkerState.SUCCESS and worker.group == "runs-delete":
            run: RunSummary = worker.result
            self.runs = [r for r in self.runs if r.path != run.path]
            self.selected = [p for p in self.selected if p != run.path]
            self._fill()
            self.notify(f"deleted {run.path}", title="Run deleted")
            self.action_rescan()  # supersedes a scan that may have read the folder half-deleted

    # ------------------------------------------------------------------ drawing

    def _fill(self) -> None:
        """Redraw the rows in the current order, keeping the cursor on the run it was on."""
        table = self.query_one(DataTable)
        here = self._highlighted()
        table.clear(columns=True)
        table.add_column(" ", key="mark", width=1)
        for column in COLUMNS:
            arrow = (" ▼" if self.descending else " ▲") if column.key == self.sort_column else ""
            table.add_column(column.label + arrow, key=column.key)
        for run in sort_runs(self.runs, self.sort_column, self.descending):
            mark = Text(SELECTED if run.path in self.selected else "", style="bold cyan")
            table.add_row(mark, *(self._cell(run, c.key) for c in COLUMNS), key=str(run.path))
        if here is not None and str(here.path) in table.rows:
            table.move_cursor(row=table.get_row_index(str(here.path)), animate=False)
        self._draw_title()
        self._draw_detail()

    @staticmethod
    def _cell(run: RunSummary, key: str) -> Text:
        text = run.cell(key)
        style = STATUS_STYLE.get(text, "") if key == "status" else "dim" if text == "–" else ""
        return Text(text, style=style, justify="right" if COLUMN[key].numeric else "left")

    def _draw_title(self) -> None:
        # The path last: on a narrow terminal a long one is what gets cut.
        where = Text(_short(self.output_dir), style="bold")
        if self._problem:
            title = Text.assemble(where, (f"  {self._problem.removeprefix(f'{self.output_dir}: ')}", "bold red"))
        else:
            title = Text(f"{len(self.runs)} run{'s' * (len(self.runs) != 1)}" if self.scanned else "reading",
                         style="dim")
            if self.selected:
                title.append(f" · {len(self.selected)} selected", style="bold cyan")
            arrow = "▼" if self.descending else "▲"
            title.append(f" · by {COLUMN[self.sort_column].label} {arrow} · in ", style="dim").append_text(where)
        title.no_wrap, title.overflow = True, "ellipsis"
        self.query_one("#runs-title", Static).update(title)

    def _draw_detail(self) -> None:
        run = self._highlighted()
        detail = self.query_one("#run-detail", Static)
        if run is None:
            detail.update(Text("no runs here yet: launch one from the setup screen (esc)", style="dim")
                          if self.scanned and not self._problem else "")
            return
        first = Text(run.id, style="bold")
        facts = [run.strategy, run.ranks,
                 f"{run.members} members × {run.epochs} epochs" if run.members is not None else None,
                 f"{run.member_epochs}/{run.total_member_epochs} member-epochs trained"
                 if run.total_member_epochs and run.member_epochs != run.total_member_epochs else None,
                 f"resumed {run.resumes}×" if run.resumes else None]
        for fact in filter(None, facts):
            first.append(f" · {fact}", style="dim")
        second = Text(run.status, style=STATUS_STYLE.get(run.status, ""))
        if run.reason:
            second.append(f": {run.reason}")
        if run.problems:
            lead = ": " if run.status == "unreadable" else " · unreadable: "
            second.append(lead + "; ".join(run.problems), style="red")
        lines = Text("\n").join([first, second])
        lines.no_wrap, lines.overflow = True, "ellipsis"  # one line each, however long the reason
        detail.update(lines)

    def _highlighted(self) -> RunSummary | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((r for r in self.runs if str(r.path) == key), None)

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self) -> None:
        self._draw_detail()

    @on(DataTable.RowSelected)
    def _row_clicked(self) -> None:
        self.action_open()

    @on(DataTable.HeaderSelected)
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key in COLUMN:
            self._sort_by(key, not self.descending if key == self.sort_column else COLUMN[key].descending)

    def _sort_by(self, column: str, descending: bool) -> None:
        self.sort_column, self.descending = column, descending
        self._fill()

    # ------------------------------------------------------------------ actions

    def action_rescan(self) -> None:
        """Read the folders again."""
        self._scan()

    def action_open(self) -> None:
        """Replay the highlighted run: its dashboard, and its report on top when it has one."""
        run = self._highlighted()
        if run is None:
            return
        folder = RunFolder(run.path)
        if not folder.events.is_file() and not folder.report_json.is_file():
            self.notify(f"{run.id}: no {folder.events.name} and no {folder.report_json.name}",
                        title="Nothing to replay", severity="warning")
            return
        cast("EnsTuiApp", self.app)._open_run_folder(run.path)

    def action_toggle_selected(self) -> None:
        """Mark or unmark the highlighted run (two marked runs can be compared)."""
        run = self._highlighted()
        if run is None:
            return
        if run.path in self.selected:
            self.selected.remove(run.path)
        else:
            self.selected.append(run.path)
        table = self.query_one(DataTable)
        table.update_cell(str(run.path), "mark", Text(SELECTED if run.path in self.selected else "", style="bold cyan"))
        self._draw_title()
        table.action_cursor_down()

    def action_compare(self) -> None:
        """The two marked runs side by side."""
        if len(self.selected) != 2:
            self.notify(f"mark two runs with space to compare them ({len(self.selected)} marked)",
                        title="Compare", severity="warning")
            return
        by_path = {r.path: r for r in self.runs}
        a, b = (by_path[p] for p in self.selected)
        self.app.push_screen(CompareRuns(compare(a, b)))

    def action_delete(self) -> None:
        """Delete the highlighted run folder from disk, after asking; a running run is refused."""
        run = self._highlighted()
        if run is None:
            return
        if rundir.is_running(run.path):
            self.notify(f"{run.id} is still running (its launcher holds run.lock): stop it first",
                        title="Not deleted", severity="warning")
            return
        files, size = _folder_size(run.path)
        question = (f"Delete {run.id}?\n{run.shown_status}, {files} file{'s' * (files != 1)}, "
                    f"{size / 2**20:.1f} MiB, in {run.path.parent}")

        def answered(delete: bool | None) -> None:
            if delete:
                self._delete(run)

        self.app.push_screen(ConfirmDelete(question), answered)

    def action_sort(self) -> None:
        """Sort by the next column (each in its best-first direction)."""
        keys = [c.key for c in COLUMNS]
        following = keys[(keys.index(self.sort_column) + 1) % len(keys)]
        self._sort_by(following, COLUMN[following].descending)

    def action_reverse(self) -> None:
        """Reverse the order."""
        self._sort_by(self.sort_column, not self.descending)

    def action_cursor_down(self) -> None:
        """j: next run."""
        self.query_one(DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        """k: previous run."""
        self.query_one(DataTable).action_cursor_up()
