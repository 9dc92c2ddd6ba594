"""One input scored by the trained ensemble: the picture, the answer, its probabilities and the verdict."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from ens_tui.widgets.digit_image import DigitImage

VERDICT_STYLE = {"confident": "bold green", "uncertain": "bold yellow", "out-of-distribution": "bold red"}
BAR_WIDTH = 12
TOP_CLASSES = 5


def probability_bars(probabilities: list[float], names: list[str], top: int = TOP_CLASSES) -> Text:
    """The `top` most probable classes, one bar each; the rest summed on one line."""
    order = sorted(range(len(probabilities)), key=lambda k: -probabilities[k])
    width = max((len(names[k]) for k in order[:top]), default=1)
    text = Text()
    for k in order[:top]:
        p = probabilities[k]
        filled = round(p * BAR_WIDTH)
        text.append(f"{names[k]:>{width}} ", style="dim")
        text.append("█" * filled, style="green" if k == order[0] else "blue")
        text.append("·" * (BAR_WIDTH - filled), style="dim")
        text.append(f" {p:6.1%}\n")
    rest = sum(probabilities[k] for k in order[top:])
    if len(order) > top:
        text.append(f"{'+' + str(len(order) - top):>{width}} others {rest:6.1%}", style="dim")
    return text.rstrip() or text


class PredictionCard(Horizontal):
    """A card for one entry of `ens-tui predict --format json` (with thumbnails)."""

    DEFAULT_CSS = """
    PredictionCard { height: auto; width: 1fr; padding: 0 1; margin-bottom: 1; }
    PredictionCard > DigitImage { margin-right: 2; }
    PredictionCard > Vertical { height: auto; width: 1fr; }
    """

    def __init__(self, item: dict[str, Any], class_names: list[str], *, name: str = "", cells: int = 16) -> None:
        super().__init__()
        self.item, self.names, self.cells = item, class_names, cells
        self.title = name or item["input"]

    def compose(self) -> ComposeResult:
        item = self.item
        yield DigitImage(item.get("image") or [[0.0]], cells=self.cells)
        with Vertical():
            verdict = item["verdict"]
            yield Static(Text.assemble(
                (self.title, "bold"), "\n",
                (item["prediction"], "bold"), (f"  {item['probability']:.1%}  ", ""),
                (verdict, VERDICT_STYLE.get(verdict, "bold")), "\n",
                ("H ", "dim"), f"{item['entropy']:.2f}", ("  aleatoric ", "dim"), f"{item['aleatoric']:.2f}",
                ("  MI ", "dim"), f"{item['mutual_information']:.2f}",
                ("  members ", "dim"), " ".join(map(str, item["member_predictions"])),
            ), classes="caption")
            if item.get("probabilities"):
                yield Static(probability_bars(item["probabilities"], self.names), classes="bars")
