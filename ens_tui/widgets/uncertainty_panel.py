"""The uncertainty decomposition: total predictive entropy = aleatoric (expected entropy) + mutual information."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from engine.report_model import Uncertainty
from ens_tui.widgets._format import bar

ROWS = (
    ("entropy", "total (predictive entropy)", "cyan"),
    ("aleatoric", "aleatoric (data noise)", "blue"),
    ("mutual_information", "epistemic (mutual information)", "magenta"),
)


class UncertaintyPanel(Static):
    """Mean over the test set, in nats, with bars scaled to the total."""

    DEFAULT_CSS = """
    UncertaintyPanel { height: auto; }
    """

    def __init__(self, uncertainty: Uncertainty, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._values = uncertainty

    def on_mount(self) -> None:
        self.update(self.table())

    def table(self) -> Table:
        """Three rows, one per component."""
        total = self._values.entropy
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        table.add_column(no_wrap=True)
        for key, label, style in ROWS:
            value: float = getattr(self._values, key)
            share = value / total if total > 0 else 0.0
            table.add_row(label, f"{value:.4f}", Text(bar(share, 12), style=style))
        return table
