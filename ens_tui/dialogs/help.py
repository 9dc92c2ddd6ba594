"""The keys of the screen that opened it, read from its bindings so the help can never go stale."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


def _key_label(binding: Binding) -> str:
    names = {"question_mark": "?", "escape": "esc", "enter": "enter", "space": "space"}
    return " / ".join(names.get(k.strip(), k.strip()) for k in binding.key.split(","))


class HelpScreen(ModalScreen[None]):
    """A modal list of keys; esc, q, ? or enter closes it (other keys do nothing while it is open)."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 64; max-height: 80%; height: auto; padding: 1 2;
        border: thick $accent 80%; background: $surface;
    }
    """

    BINDINGS = [Binding("escape,q,question_mark,enter", "dismiss", "Close")]

    def __init__(self, screen: Screen[object], title: str) -> None:
        super().__init__()
        self._keys = [b for b in (*screen.BINDINGS, *screen.app.BINDINGS) if isinstance(b, Binding)]
        self._title = title

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        seen: set[str] = set()
        for binding in self._keys:
            if not binding.description or binding.description in seen:
                continue
            seen.add(binding.description)
            why = Text(f" — {binding.tooltip}", style="dim") if binding.tooltip else Text()
            table.add_row(_key_label(binding), Text.assemble(binding.description, why))
        with VerticalScroll():
            yield Static(Text(self._title, style="bold"))
            yield Static(table)
            yield Static(Text("any of esc, q, ?, enter closes this", style="dim"))

    async def action_dismiss(self, result: None = None) -> None:
        """Close the help."""
        self.dismiss(None)
