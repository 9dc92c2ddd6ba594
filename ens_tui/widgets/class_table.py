"""The ensemble per true class: which classes it gets wrong."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from engine.report_model import PerClass
from ens_tui.widgets._format import bar


class ClassTable(Static):
    """Class, test inputs, accuracy with a bar; the weakest class is red."""

    DEFAULT_CSS = """
    ClassTable { height: auto; width: auto; }
    """

    def __init__(self, per_class: PerClass, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._per_class = per_class

    def on_mount(self) -> None:
        self.update(self.table())

    def table(self) -> Table:
        """One row per class."""
        classes = self._per_class.classes
        worst = min(range(len(classes)), key=lambda i: classes[i].accuracy, default=-1)
        table = Table(box=None, padding=(0, 1), header_style="bold")
        table.add_column("class", no_wrap=True, max_width=16)
        table.add_column("n", justify="right", no_wrap=True)
        table.add_column("accuracy", justify="right", no_wrap=True)
        table.add_column("", no_wrap=True)
        for i, c in enumerate(classes):
            style = "bold red" if i == worst and len(classes) > 1 else ""
            table.add_row(c.name, str(c.count), Text(f"{c.accuracy:.1%}", style=style),
                          Text(bar(c.accuracy, 10), style="green"))
        return table
