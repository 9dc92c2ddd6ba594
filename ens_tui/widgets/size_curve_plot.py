"""Accuracy and NLL as the ensemble grows from one member to all of them: how much each extra member buys."""

from __future__ import annotations

from rich.text import Text

from engine.report_model import SizeLaw, SizePoint, SizeSpread
from ens_tui.run_state import size_law_lines
from ens_tui.widgets._palette import ENSEMBLE, MEMBER, fade
from ens_tui.widgets._plot import Key, LegendPlot, key

RANGE = "│"
"""Marks the min–max range over the subsets of one size (accuracy; NLL's is dashed, beside it)."""
NLL_RANGE = "┆"
TICK_COLUMNS = 5
"""Columns one x tick label needs, at least: with many members only every n-th size is labelled."""
FIT_MARK = "·"
FIT_COLOUR = fade(MEMBER, 0.7)


def size_law_text(law: SizeLaw) -> Text:
    """The law under the plot: what the next member and larger ensembles are worth."""
    text = Text("the value of more members (test split): ", style="bold")
    lines = size_law_lines(law)
    text.append(lines[0])
    for line in lines[1:]:
        text.append("\n" + line)
    return text


class SizeCurvePlot(LegendPlot):
    """Accuracy on the left axis, NLL on the right: the mean over random member subsets of each size with its range,
    or, in a report written before those, the first k members in member order (which that order colours)."""

    def __init__(self, curve: list[SizePoint], subsets: list[SizeSpread] | None = None, *,
                 law: SizeLaw | None = None, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._curve = sorted(curve, key=lambda p: p.size)
        self._subsets = sorted(subsets or [], key=lambda p: p.size)
        self._law = law

    def draw(self) -> list[Key]:
        plt = self.plt
        plt.xlabel("members")
        plt.ylabel("accuracy %")
        plt.ylabel("NLL", yside="right")
        points: list[SizePoint] | list[SizeSpread] = self._subsets or self._curve
        if not points:
            plt.title("accuracy and NLL vs ensemble size")
            return []
        sizes = [p.size for p in points]
        plt.plot(sizes, [100 * p.accuracy for p in points], marker="braille", color=ENSEMBLE)
        plt.plot(sizes, [p.nll for p in points], marker="braille", color=MEMBER, yside="right")
        step = -(-len(sizes) * TICK_COLUMNS // max(self.size.width - 16, TICK_COLUMNS))
        plt.xticks(sizes[::step])
        plt.xlim(sizes[0] - 0.1, sizes[-1] + 0.1)  # room for the range marks at either end
        keys = [key("accuracy % (left axis)", ENSEMBLE), key("NLL (right axis)", MEMBER)]
        if not self._subsets:
            plt.title("accuracy and NLL of the first k members, in member order")
            return keys
        plt.title("mean over random member subsets of each size")
        shift = 0.02 * (sizes[-1] - sizes[0] or 1)
        for p in self._subsets:
            plt.plot([p.size, p.size], [100 * p.accuracy_min, 100 * p.accuracy_max], marker=RANGE, color=ENSEMBLE)
            plt.plot([p.size + shift] * 2, [p.nll_min, p.nll_max], marker=NLL_RANGE, color=MEMBER, yside="right")
        keys.append(Key("min–max over the subsets", (ENSEMBLE, MEMBER), RANGE + NLL_RANGE))
        if (law := self._law) is not None and sizes[-1] > sizes[0]:
            dots = max(2 * (sizes[-1] - sizes[0]), self.size.width // 2) + 1
            xs = [sizes[0] + (sizes[-1] - sizes[0]) * i / (dots - 1) for i in range(dots)]
            plt.scatter(xs, [law.a + law.b / x for x in xs], marker=FIT_MARK, color=FIT_COLOUR, yside="right")
            keys.append(key("NLL fit a + b/k", FIT_COLOUR, FIT_MARK * 2))
        return keys
