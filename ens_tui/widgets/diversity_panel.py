"""How differently the members answer: an ensemble of identical members would be no better than one of them."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from engine.report_model import Diversity
from ens_tui.widgets._format import bar


class DiversityPanel(Static):
    """Three figures, each with what it means."""

    DEFAULT_CSS = """
    DiversityPanel { height: auto; }
    """

    def __init__(self, diversity: Diversity, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._diversity = diversity

    def on_mount(self) -> None:
        self.update(self.table())

    def table(self) -> Table:
        """One row per figure: name, value, bar, meaning."""
        d = self._diversity
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(style="dim")
        table.add_row("disagreement", f"{d.disagreement:.2%}", Text(bar(d.disagreement, 10), style="cyan"),
                      "inputs two members label differently")
        table.add_row("KL to ensemble", f"{d.kl_to_ensemble:.4f}", "", "nats, member ‖ ensemble")
        table.add_row("error correlation", f"{d.error_correlation:.3f}",
                      Text(bar(max(d.error_correlation, 0.0), 10), style="magenta"), "1: members fail together")
        return table
