"""The log pane: warnings, errors and a failed rank's traceback, stamped with seconds since the run began."""

from __future__ import annotations

import re
from typing import Self

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from textual.widgets import RichLog

from ens_tui.run_state import LogEntry

LEVEL_STYLE = {"debug": ("·", "dim"), "info": ("•", ""), "warning": ("▲", "yellow"), "error": ("✗", "bold red")}
_BETWEEN_PHRASES = re.compile(r"(?<=[,;:)]) | (?=\()")
"""A space that ends a phrase ("NLL 0.2299," "launch:") or opens an aside ("(18.0 s since …")."""


class Phrases:
    """A log line that wraps between phrases, not between any two words, so a number stays beside its name
    ("MI 0.0328", "1.8 s"); a phrase longer than the whole line wraps on its own."""

    def __init__(self, text: str, style: str = "") -> None:
        self.phrases = _BETWEEN_PHRASES.split(text)
        self.style = style

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = [""]
        for phrase in self.phrases:
            joined = f"{lines[-1]} {phrase}" if lines[-1] else phrase
            if lines[-1] and cell_len(joined) > options.max_width:
                lines.append(phrase)
            else:
                lines[-1] = joined
        yield Text("\n".join(lines), style=self.style)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        whole = cell_len(" ".join(self.phrases))
        return Measurement(min(max(map(cell_len, self.phrases)), whole), whole).clamp(max_width=options.max_width)


class LogPane(RichLog):
    """An append-only RichLog; entries arrive already folded by RunState."""

    DEFAULT_CSS = """
    LogPane { height: 7; scrollbar-gutter: stable; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, wrap=True, markup=False, highlight=False, max_lines=5000)

    def write(
        self, content: RenderableType | object, width: int | None = None, expand: bool = False, shrink: bool = True,
        scroll_end: bool | None = None, animate: bool = False,
    ) -> Self:
        """Wrap at the pane's own width: RichLog measures against the app's 80-column console otherwise, and
        wraps every line near 78 columns whatever the terminal. (Before the pane has a size, RichLog keeps the
        write and replays it here once it has one; the stable gutter keeps that width when a scrollbar appears.)"""
        if width is None and self.scrollable_content_region.width:
            width = self.scrollable_content_region.width
        return super().write(content, width, expand, shrink, scroll_end, animate)

    def add(self, entries: list[LogEntry], started_t: float | None) -> None:
        """Append entries; a multi-line text (a traceback) is written as one dimmed block under its headline."""
        for entry in entries:
            mark, style = LEVEL_STYLE[entry.level]
            offset = entry.t - (started_t if started_t is not None else entry.t)
            headline, _, rest = entry.text.partition("\n")
            stamp = Text.assemble(
                (f"{offset:7.1f}s ", "dim"),
                (f"{mark} ", style),
                (f"{entry.source:<8} ", "bold" if entry.level in ("warning", "error") else "dim"),
            )
            line = Table.grid()  # a long line wraps under its own text, not under the stamp
            line.add_column(no_wrap=True)
            line.add_column()
            line.add_row(stamp, Phrases(headline, style))
            self.write(line)
            if rest:
                self.write(Text(rest, style="red dim" if entry.level == "error" else "dim"))
