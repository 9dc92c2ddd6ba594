"""Asked before quitting (or stopping) while ranks are still training: it stops every one of them."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ConfirmQuit(ModalScreen[bool]):
    """True: stop the run and quit. y / n / escape work as well as the buttons."""

    DEFAULT_CSS = """
    ConfirmQuit { align: center middle; }
    ConfirmQuit > Vertical {
        width: 56; height: auto; padding: 1 2;
        border: thick $warning 80%; background: $surface;
    }
    ConfirmQuit #question { width: 1fr; margin-bottom: 1; }
    ConfirmQuit Horizontal { height: auto; align-horizontal: right; }
    ConfirmQuit Button { margin-left: 2; }
    """

    BINDINGS = [
        Binding("y", "answer(True)", "Stop and quit"),
        Binding("n,escape", "answer(False)", "Keep training"),
    ]

    def __init__(self, message: str = "Training is still running.", *, quitting: bool = True) -> None:
        super().__init__()
        self._message = message
        self._quitting = quitting

    def compose(self) -> ComposeResult:
        then = "Stop every rank and quit?" if self._quitting else "Stop every rank?"
        with Vertical():
            yield Label(f"{self._message}\n{then} The run will be marked interrupted.", id="question")
            with Horizontal():
                yield Button("Keep training [n]", id="no", variant="primary")
                yield Button("Stop & quit [y]" if self._quitting else "Stop [y]", id="yes", variant="error")

    def action_answer(self, answer: bool) -> None:
        """Close with the answer."""
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")
