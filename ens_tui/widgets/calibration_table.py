"""Temperature scaling in numbers: the test NLL, ECE and Brier before and after, and the ECE variants."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from engine.report_model import Calibration
from ens_tui.widgets._palette import WINNER


class CalibrationTable(Static):
    """Before / after rows (the better bold), then one line of the other calibration errors."""

    DEFAULT_CSS = """
    CalibrationTable { height: auto; }
    """

    def __init__(self, calibration: Calibration, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._calibration = calibration

    def on_mount(self) -> None:
        self.update(self.table())

    def table(self) -> Table:
        """The comparison as a Rich table."""
        cal = self._calibration
        table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
        table.add_column("test split", no_wrap=True)
        for header in ("NLL", "ECE", "Brier"):
            table.add_column(header, justify="right", no_wrap=True)
        rows = (("before", cal.before, cal.after), (f"after T = {cal.temperature:.3f}", cal.after, cal.before))
        for name, mine, other in rows:
            table.add_row(name, *[Text(f"{getattr(mine, k):.4f}", style=WINNER if getattr(mine, k) < getattr(other, k)
                                       else "") for k in ("nll", "ece", "brier")])
        table.caption = (f"adaptive ECE {cal.adaptive_ece:.4f} · MCE {cal.mce:.4f} · classwise ECE "
                         f"{cal.classwise_ece:.4f}; T fitted on the validation split")
        return table
