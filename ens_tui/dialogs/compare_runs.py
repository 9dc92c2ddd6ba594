"""Two runs side by side: where their configs differ, key by key, then timings and metrics."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ens_tui.runs_index import Comparison


def _table() -> Table:
    # Every section's table has the same column widths, so the sections line up under each other.
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False, show_edge=False, header_style="bold cyan")
    table.add_column("", style="bold", no_wrap=True, width=20)
    table.add_column("A", overflow="fold", ratio=1)
    table.add_column("B", overflow="fold", ratio=1)
    return table


def comparison_table(c: Comparison) -> Group:
    """The legend (which run is A, which B), then config differences, timings and metrics, one table each."""
    legend = Text()
    for tag, run in (("A", c.a), ("B", c.b)):
        legend.append(f"{tag} ", style="bold cyan").append(run.id).append(f"  {run.shown_status}\n", style="dim")
    parts: list[RenderableType] = [legend]

    def section(title: str, table: Table | None = None) -> None:
        if table is not None:
            table.show_header = not any(isinstance(p, Table) for p in parts)  # A / B over the first one only
        parts.append(Text(f"\n{title}" if len(parts) > 1 else title, style="bold magenta"))
        if table is not None:
            parts.append(table)

    if not (c.a.config and c.b.config):
        unreadable = " and ".join(tag for tag, run in (("A", c.a), ("B", c.b)) if not run.config)
        section(f"config: config.toml of {unreadable} unreadable")
    elif not c.config:
        section(f"config: the same ({c.same_keys} keys)")
    else:
        table = _table()
        for key, a, b in c.config:
            table.add_row(key, a, b)
        differ = "1 key differs" if len(c.config) == 1 else f"{len(c.config)} keys differ"
        section(f"config: {differ}, {c.same_keys} the same", table)
    table = _table()
    for label, a, b in c.timings:
        table.add_row(label, a, b)
    section("timings", table)
    table = _table()
    for label, a, b, better in c.metrics:
        table.add_row(label, Text(a, style="bold green" if better == "a" else ""),
                      Text(b, style="bold green" if better == "b" else ""))
    section("ensemble metrics (test split; the better one in green)", table)
    return Group(*parts)


class CompareRuns(ModalScreen[None]):
    """A scrollable side-by-side of two runs; escape, q or c closes it."""

    DEFAULT_CSS = """
    CompareRuns { align: center middle; }
    CompareRuns > VerticalScroll {
        width: 100; max-width: 96%; max-height: 90%; height: auto; padding: 0 1;
        border: thick $accent 80%; background: $surface;
        border-title-color: $text;
    }
    """

    BINDINGS = [Binding("escape,q,c", "close", "Close")]

    def __init__(self, comparison: Comparison) -> None:
        super().__init__()
        self.comparison = comparison

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "compare runs"
            yield Static(comparison_table(self.comparison), id="comparison")

    def action_close(self) -> None:
        """Back to the runs."""
        self.dismiss(None)
