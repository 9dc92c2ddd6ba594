"""The headline comparison: the ensemble against its average member and its best member."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

METRICS = (("accuracy", "accuracy", True), ("nll", "NLL", False), ("brier", "Brier", False), ("ece", "ECE", False))
"""(key, label, higher is better)."""


def _fmt(key: str, value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2%}" if key == "accuracy" else f"{value:.4f}"


class MetricsTable(Static):
    """Rows: ensemble, mean member, best member (by NLL); the best value of each column is bold."""

    DEFAULT_CSS = """
    MetricsTable { height: auto; }
    """

    def __init__(self, report: dict[str, Any], *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._report = report

    def on_mount(self) -> None:
        self.update(self.table())

    def table(self) -> Table:
        """The comparison as a Rich table."""
        ensemble = self._report.get("ensemble", {})
        members = [m for m in self._report.get("members", []) if not m.get("diverged")]
        rows: list[tuple[str, dict[str, Any]]] = [(f"ensemble of {self._report.get('members_count', '?')}", ensemble)]
        # The report's own mean/best when it has them; else computed here from the members' rows.
        mean = self._report.get("mean_member")
        best = self._report.get("best_member")
        if members and mean is None:
            mean = {k: sum(m[k] for m in members) / len(members) for k, _, _ in METRICS}
        if members and best is None:
            best = min(members, key=lambda m: m["nll"])
        if mean:
            rows.append(("mean member", mean))
        if best:
            rows.append((f"best member (m{best.get('member', '?')})", best))
        table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
        table.add_column("")
        for _, label, _ in METRICS:
            table.add_column(label, justify="right")
        winners: dict[str, int] = {}
        for key, _, higher in METRICS:
            column = [float(row.get(key, float("nan"))) for _, row in rows]
            pick = max if higher else min
            winners[key] = column.index(pick(column))
        for i, (name, values) in enumerate(rows):
            cells = [Text(_fmt(k, values.get(k)), style="bold green" if winners[k] == i else "") for k, _, _ in METRICS]
            table.add_row(Text(name, style="bold" if i == 0 else ""), *cells)
        diverged = [m["member"] for m in self._report.get("members", []) if m.get("diverged")]
        if diverged:
            table.caption = f"diverged, left out: {', '.join(f'm{i}' for i in diverged)}"
        return table
