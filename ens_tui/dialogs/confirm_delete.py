"""Asked before a run folder is deleted from disk: y deletes, n or escape keeps it."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ConfirmDelete(ModalScreen[bool]):
    """True: delete. The question names the folder and what it holds; keeping it is the default button."""

    DEFAULT_CSS = """
    ConfirmDelete { align: center middle; }
    ConfirmDelete > Vertical {
        width: 64; max-width: 95%; height: auto; padding: 1 2;
        border: thick $error 80%; background: $surface;
    }
    ConfirmDelete #question { width: 1fr; margin-bottom: 1; }
    ConfirmDelete Horizontal { height: auto; align-horizontal: right; }
    ConfirmDelete Button { margin-left: 2; }
    """

    BINDINGS = [
        Binding("y", "answer(True)", "Delete"),
        Binding("n,escape", "answer(False)", "Keep"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self._question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(f"{self._question}\nThis cannot be undone."), id="question")
            with Horizontal():
                # Text, not markup: "[n]" would be read as a style tag and vanish.
                yield Button(Text("Keep [n]"), id="no", variant="primary")
                yield Button(Text("Delete [y]"), id="yes", variant="error")

    def action_answer(self, answer: bool) -> None:
        """Close with the answer."""
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")
