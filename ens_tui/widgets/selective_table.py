"""Selective prediction in numbers: AURC, E-AURC and the accuracy kept at high coverage, ensemble vs mean member."""

from __future__ import annotations

import math

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from engine.report_model import RiskCoverage, Selective
from ens_tui.widgets._palette import WINNER


def _percent(key: str) -> float:
    """An `accuracy_at` key (a percentage: "90") as a number to sort by; anything else sorts last."""
    try:
        return float(key)
    except ValueError:
        return math.inf


class SelectiveTable(Static):
    """Two rows per ranking (ensemble, mean member); the better of the two is bold in each column."""

    DEFAULT_CSS = """
    SelectiveTable { height: auto; }
    """

    def __init__(self, selective: Selective, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._selective = selective

    def on_mount(self) -> None:
        self.update(self.table())

    def table(self) -> Table:
        """The comparison as a Rich table."""
        sel = self._selective
        keys = sorted({k for c in (*sel.ensemble.values(), *sel.mean_member.values()) for k in c.accuracy_at},
                      key=_percent)
        table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
        for header in ("ranked by", "", "AURC", "E-AURC"):
            table.add_column(header, justify="left" if header in ("ranked by", "") else "right", no_wrap=True)
        for key in keys:
            table.add_column(f"acc@{key}%", justify="right", no_wrap=True)
        for ranking, ensemble in sel.ensemble.items():
            member = sel.mean_member.get(ranking)
            pairs = [("ensemble", ensemble), ("mean member", member)] if member else [("ensemble", ensemble)]
            for i, (who, curve) in enumerate(pairs):
                other = pairs[1 - i][1] if len(pairs) == 2 else None
                table.add_row(ranking if i == 0 else "", who, *self._cells(curve, other, keys))
        table.caption = "AURC: area under risk–coverage (lower is better); E-AURC: minus the best possible at this accuracy"
        return table

    @staticmethod
    def _cells(curve: RiskCoverage, other: RiskCoverage | None, keys: list[str]) -> list[Text]:
        def cell(value: float | None, rival: float | None, higher: bool, text: str) -> Text:
            wins = value is not None and rival is not None and (value > rival if higher else value < rival)
            return Text(text, style=WINNER if wins else "")

        cells = [cell(curve.aurc, other.aurc if other else None, False, f"{curve.aurc:.4f}"),
                 cell(curve.eaurc, other.eaurc if other else None, False, f"{curve.eaurc:.4f}")]
        for key in keys:
            value = curve.accuracy_at.get(key)
            rival = other.accuracy_at.get(key) if other else None
            cells.append(cell(value, rival, True, "–" if value is None else f"{value:.2%}"))
        return cells
