"""The log pane: warnings, errors and a failed rank's traceback, stamped with seconds since the run began."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from ens_tui.run_state import LogEntry

LEVEL_STYLE = {"debug": ("·", "dim"), "info": ("•", ""), "warning": ("▲", "yellow"), "error": ("✗", "bold red")}


class LogPane(RichLog):
    """An append-only RichLog; entries arrive already folded by RunState."""

    DEFAULT_CSS = """
    LogPane { height: 7; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, wrap=True, markup=False, highlight=False, max_lines=5000)

    def add(self, entries: list[LogEntry], started_t: float | None) -> None:
        """Append entries; a multi-line text (a traceback) is written as one dimmed block under its headline."""
        for entry in entries:
            mark, style = LEVEL_STYLE[entry.level]
            offset = entry.t - (started_t if started_t is not None else entry.t)
            headline, _, rest = entry.text.partition("\n")
            line = Text.assemble(
                (f"{offset:7.1f}s ", "dim"),
                (f"{mark} ", style),
                (f"{entry.source:<8} ", "bold" if entry.level in ("warning", "error") else "dim"),
                (headline, style),
            )
            self.write(line)
            if rest:
                self.write(Text(rest, style="red dim" if entry.level == "error" else "dim"))
