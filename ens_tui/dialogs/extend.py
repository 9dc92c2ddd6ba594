"""Asked when the report screen grows a finished run (`+`): the new total of members, checked as `ens-tui extend`
checks it, so a refusal is said here and nothing is launched."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from ens_tui.rundir import Extension, RunDirError, plan_extension


class ExtendRun(ModalScreen[Extension | None]):
    """The extension's plan, or None (escape). The dialog stays open on a total it refuses, saying why."""

    DEFAULT_CSS = """
    ExtendRun { align: center middle; }
    ExtendRun > Vertical {
        width: 68; max-width: 95%; height: auto; padding: 1 2;
        border: thick $accent 80%; background: $surface;
    }
    ExtendRun Horizontal { height: 1; margin: 1 0; }
    ExtendRun Horizontal > Label { color: $text-muted; }
    ExtendRun Input { width: 8; margin: 0 1; }
    ExtendRun Vertical > Label { width: 1fr; }
    ExtendRun #extend-note { color: $warning; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, run_dir: Path, members: int) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.members = members

    def compose(self) -> ComposeResult:
        have = self.members
        with Vertical():
            yield Label(Text("grow the ensemble", style="bold"))
            yield Label(Text(f"It has {have} member{'s' * (have != 1)}. Each new one is exactly the member a fresh "
                             "run of the new total would train; the trained ones are kept as they are, and the "
                             "report is rewritten for all of them."))
            with Horizontal():
                yield Label("new total")
                yield Input(str(min(2 * have, 1024)), id="extend-members", type="integer", compact=True)
                yield Label("members")
            yield Label("", id="extend-note")
            yield Label(Text("enter trains them · esc cancels", style="dim"))

    def action_cancel(self) -> None:
        """Close without extending."""
        self.dismiss(None)

    @on(Input.Changed)
    def _changed(self) -> None:
        self.query_one("#extend-note", Label).update("")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        note = self.query_one("#extend-note", Label)
        try:
            total = int(event.value)
        except ValueError:
            note.update(f"type the new total: a whole number above {self.members}")
            return
        try:
            plan = plan_extension(self.run_dir, total)
        except RunDirError as err:
            note.update(Text(str(err).removeprefix(f"{self.run_dir}: ")))
            return
        self.dismiss(plan)
