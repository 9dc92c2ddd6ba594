"""A plotext plot whose legend is a line of its own under the axes: plotext draws its legend over the data."""

from __future__ import annotations

from typing import NamedTuple

from rich.style import Style
from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from ens_tui.widgets._palette import RGB

LINE = "━━"
BAR = "██"


class Key(NamedTuple):
    """One legend entry: a mark drawn in `colour`s (one per character, the last repeated), then its label."""

    label: str
    colours: tuple[RGB, ...]
    mark: str = LINE


def key(label: str, colour: RGB, mark: str = LINE) -> Key:
    """A legend entry in one colour."""
    return Key(label, (colour,), mark)


def legend_lines(keys: list[Key], width: int) -> list[Text]:
    """The entries, centred, wrapped onto as few lines of `width` as they fit."""
    lines: list[Text] = []
    line = Text()
    for entry in keys:
        piece = Text()
        for i, char in enumerate(entry.mark):
            r, g, b = entry.colours[min(i, len(entry.colours) - 1)]
            piece.append(char, Style(color=f"rgb({r},{g},{b})"))
        piece.append(f" {entry.label}")
        if line and len(line) + 3 + len(piece) > width:
            lines.append(line)
            line = Text()
        if line:
            line.append("   ")
        line.append_text(piece)
    if line:
        lines.append(line)
    for text in lines:
        text.pad_left(max(0, (width - len(text)) // 2))
        text.truncate(width)
    return lines


class LegendPlot(PlotextPlot):
    """Subclasses draw on a cleared figure in `draw` and return the legend's keys; no series gets a plotext label."""

    def draw(self) -> list[Key]:
        raise NotImplementedError

    def render(self) -> RenderResult:
        plt = self.plt
        plt.clear_figure()  # a full reset each time: leftover state from an earlier size made ticks drift
        width, height = self.size
        legend = legend_lines(self.draw(), width)
        height = max(1, height - len(legend))
        plt.plotsize(width, height)
        plt._set_size(width, height)  # as PlotextPlot.render does: plotsize alone leaves resizes wrong
        plt.theme(self._get_plotext_theme_name(self.app.theme))
        text = Text.from_ansi(plt.build())
        if text.plain.endswith("\n"):
            text.right_crop(1)
        for line in legend:
            text.append("\n")
            text.append_text(line)
        return text
