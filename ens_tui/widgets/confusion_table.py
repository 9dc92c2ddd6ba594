"""The confusion matrix as a heat table: counts, each cell shaded by its share of the true class."""

from __future__ import annotations

from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from engine.report_model import PerClass
from ens_tui.widgets._palette import heat

MAX_CLASSES = 20
"""Beyond this many classes the matrix is no longer readable in a terminal: figures/confusion.png has it."""


class ConfusionTable(Static):
    """Rows: true class; columns: predicted class. Zero cells are a dot, the diagonal is bold."""

    DEFAULT_CSS = """
    ConfusionTable { height: auto; width: auto; }
    """

    def __init__(self, per_class: PerClass, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._per_class = per_class

    def on_mount(self) -> None:
        self.update(self.table())

    def table(self) -> Table | Text:
        """The matrix, or one line saying where it is when it has too many classes."""
        matrix = self._per_class.confusion
        if len(matrix) > MAX_CLASSES:
            return Text(f"{len(matrix)} classes: too many for a terminal; figures/confusion.png has the matrix "
                        "(e exports it)", style="dim")
        names = [c.name for c in self._per_class.classes] or [str(i) for i in range(len(matrix))]
        short = [name[:4] for name in names]
        table = Table(box=None, padding=(0, 0), header_style="bold", title="true ↓  predicted →",
                      title_style="dim", title_justify="left")
        table.add_column("", no_wrap=True, max_width=8)
        for name in short:
            table.add_column(name, justify="right", no_wrap=True, min_width=4)
        for i, row in enumerate(matrix):
            total = sum(row) or 1
            cells = [Text(f"{n} " if n else "· ", style=Style(bgcolor=heat(n / total), bold=i == j) if n else "dim")
                     for j, n in enumerate(row)]
            table.add_row(names[i][:8] + " ", *cells)
        return table
