"""A yes/no question before something that cannot be undone: stopping a run, deleting one."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class Confirm(ModalScreen[bool]):
    """True for yes. y / n / escape work as well as the buttons, and the safe answer is the default button."""

    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Vertical {
        width: 64; max-width: 95%; height: auto; padding: 1 2;
        border: thick $warning 80%; background: $surface;
    }
    Confirm.-danger > Vertical { border: thick $error 80%; }
    Confirm #question { width: 1fr; margin-bottom: 1; }
    Confirm Horizontal { height: auto; align-horizontal: right; }
    Confirm Button { margin-left: 2; }
    """

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, *, yes: str, no: str, danger: bool = False) -> None:
        super().__init__(classes="-danger" if danger else None)
        self._question, self._yes, self._no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self._question), id="question")
            with Horizontal():
                # Text, not markup: "[n]" would be read as a style tag and vanish.
                yield Button(Text(f"{self._no} [n]"), id="no", variant="primary")
                yield Button(Text(f"{self._yes} [y]"), id="yes", variant="error")

    def action_answer(self, answer: bool) -> None:
        """Close with the answer."""
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")
