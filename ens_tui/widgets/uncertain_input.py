"""One of the most uncertain test inputs: the picture, its label, the ensemble's guess and the entropy."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from engine.report_model import UncertainTestInput
from ens_tui.widgets.digit_image import DigitImage


class UncertainInput(Vertical):
    """A small card; the caption turns red when the ensemble got the input wrong."""

    DEFAULT_CSS = """
    UncertainInput { width: auto; height: auto; padding: 0 1; }
    UncertainInput > Static { width: 16; }
    """

    def __init__(self, item: UncertainTestInput, classes_: list[str] | None = None, *, cells: int = 16) -> None:
        super().__init__()
        self._item = item
        self._names = classes_ or []
        self._cells = cells

    def _class_name(self, index: int) -> str:
        return self._names[index] if 0 <= index < len(self._names) else str(index)

    def compose(self) -> ComposeResult:
        item = self._item
        yield DigitImage(item.image or [[0.0]], cells=self._cells)
        right = item.label == item.prediction
        label, pred = self._class_name(item.label), self._class_name(item.prediction)
        yield Static(
            Text.assemble(
                (label, "bold"), (" → ", "dim"), (pred, "bold green" if right else "bold red"),
                ("  #", "dim"), str(item.index),
                ("\nH ", "dim"), f"{item.entropy:.2f}",
                ("  MI ", "dim"), f"{item.mutual_information:.2f}",
            )
        )
