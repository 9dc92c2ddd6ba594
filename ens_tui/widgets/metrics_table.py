"""The headline comparison: the ensemble against its average member and its best member."""

from __future__ import annotations

import math

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from engine.report_model import MemberScores, Report, Scores
from ens_tui.widgets._format import accuracy, score

METRICS = (("accuracy", "accuracy", True), ("nll", "NLL", False), ("brier", "Brier", False), ("ece", "ECE", False))
"""(key, label, higher is better)."""


def _fmt(key: str, value: float | None) -> str:
    return accuracy(value) if key == "accuracy" else score(value)


def _value(row: Scores | MemberScores, key: str) -> float:
    value = getattr(row, key)
    return math.nan if value is None else float(value)


class MetricsTable(Static):
    """Rows: ensemble, mean member, best member (by NLL); the best value of each column is bold."""

    DEFAULT_CSS = """
    MetricsTable { height: auto; }
    """

    def __init__(self, report: Report, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._report = report

    def on_mount(self) -> None:
        self.update(self.table())

    def table(self) -> Table:
        """The comparison as a Rich table."""
        report = self._report
        rows: list[tuple[str, Scores | MemberScores]] = [
            (f"ensemble of {report.members_count}", report.ensemble),
            ("mean member", report.mean_member),
            (f"best member (m{report.best_member.member})", report.best_member),
        ]
        table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
        table.add_column("")
        for _, label, _ in METRICS:
            table.add_column(label, justify="right")
        winners: dict[str, int] = {}
        for key, _, higher in METRICS:
            column = [_value(row, key) for _, row in rows]
            pick = max if higher else min
            winners[key] = column.index(pick(column))
        for i, (name, values) in enumerate(rows):
            cells = [Text(_fmt(k, getattr(values, k)), style="bold green" if winners[k] == i else "")
                     for k, _, _ in METRICS]
            table.add_row(Text(name, style="bold" if i == 0 else ""), *cells)
        if report.diverged:
            table.caption = f"diverged, left out: {', '.join(f'm{i}' for i in report.diverged)}"
        return table
