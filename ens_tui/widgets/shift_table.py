"""Each corruption in numbers: accuracy and ECE of the ensemble and the mean member, averaged over severities."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from engine.report_model import Shift, ShiftPoint
from ens_tui.widgets._palette import WINNER
from ens_tui.widgets.shift_plot import by_severity

COLUMNS = (("accuracy", "acc", True), ("ece", "ECE", False))
"""(key, header, higher is better)."""


def _mean(points: list[ShiftPoint], corruption: str, key: str) -> float | None:
    values = [getattr(p, key) for p in points if p.corruption == corruption]
    return sum(values) / len(values) if values else None


def headline(shift: Shift) -> Text:
    """Ovadia et al.'s question in one line: how the ECE grows from the mildest to the strongest severity."""
    text = Text()
    for who, points in (("ensemble", shift.ensemble), ("mean member", shift.mean_member)):
        means = by_severity(points, "ece")
        if means:
            if not text:
                start = "clean" if min(means) == 0 else f"severity {min(means)}"
                text.append(f"ECE, {start} → severity {max(means)}: ")
            text.append(f"{who} {means[min(means)]:.3f} → {means[max(means)]:.3f}", style="bold")
            text.append("   ")
    return text


def _fmt(key: str, value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1%}" if key == "accuracy" else f"{value:.3f}"


class ShiftTable(Static):
    """One row per corruption; the better of ensemble and mean member is bold in each pair of columns."""

    DEFAULT_CSS = """
    ShiftTable { height: auto; }
    """

    def __init__(self, shift: Shift, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._shift = shift

    def on_mount(self) -> None:
        self.update(self.table())

    def table(self) -> Table:
        """The corruptions as a Rich table."""
        shift = self._shift
        table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
        table.add_column("corruption", no_wrap=True)
        for _, header, _ in COLUMNS:
            table.add_column(f"{header} ens", justify="right", no_wrap=True)
            table.add_column(f"{header} member", justify="right", no_wrap=True)
        for corruption in shift.corruptions:
            cells: list[Text] = []
            for key, _, higher in COLUMNS:
                ens, mem = _mean(shift.ensemble, corruption, key), _mean(shift.mean_member, corruption, key)
                wins = ens is not None and mem is not None and (ens > mem if higher else ens < mem)
                cells += [Text(_fmt(key, ens), style=WINNER if wins else ""), Text(_fmt(key, mem))]
            table.add_row(corruption.replace("_", " "), *cells)
        table.caption = (f"mean over severities {', '.join(str(s) for s in shift.severities if s)}; "
                         f"{shift.size} test inputs per corruption and severity")
        return table
