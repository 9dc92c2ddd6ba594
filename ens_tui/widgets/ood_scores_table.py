"""How well each score flags each OOD set: AUROC, AUPR (in and out) and FPR at 95 % TPR."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from engine.report_model import OodResult
from ens_tui.widgets._palette import WINNER

SCORE_NAMES = {"msp": "MSP", "mutual_information": "MI"}


class OodScoresTable(Static):
    """One row per set and score; each set's best AUROC is bold."""

    DEFAULT_CSS = """
    OodScoresTable { height: auto; }
    """

    def __init__(self, ood: dict[str, OodResult], *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._ood = ood

    def on_mount(self) -> None:
        self.update(self.table())

    def table(self) -> Table:
        """The scores as a Rich table."""
        table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
        table.add_column("set", no_wrap=True)
        table.add_column("score", no_wrap=True)
        for header in ("AUROC", "AUPR-in", "AUPR-out", "FPR95"):
            table.add_column(header, justify="right", no_wrap=True)
        for name, result in self._ood.items():
            best = max((s.auroc for s in result.scores.values()), default=None)
            for i, (score, s) in enumerate(result.scores.items()):
                table.add_row(name if i == 0 else "", SCORE_NAMES.get(score, score),
                              Text(f"{s.auroc:.3f}", style=WINNER if s.auroc == best else ""),
                              f"{s.aupr_in:.3f}", f"{s.aupr_out:.3f}", f"{s.fpr95:.3f}")
        table.caption = "OOD is the positive class; FPR95: share of test inputs flagged when 95 % of OOD ones are"
        return table
