"""Accuracy and NLL as the ensemble grows from one member to all of them: how much each extra member buys."""

from __future__ import annotations

from engine.report_model import SizePoint, SizeSpread
from ens_tui.widgets._palette import ENSEMBLE, MEMBER
from ens_tui.widgets._plot import Key, LegendPlot, key

RANGE = "│"
"""Marks the min–max range over the subsets of one size (accuracy; NLL's is dashed, beside it)."""
NLL_RANGE = "┆"
TICK_COLUMNS = 5
"""Columns one x tick label needs, at least: with many members only every n-th size is labelled."""


class SizeCurvePlot(LegendPlot):
    """Accuracy on the left axis, NLL on the right: the mean over random member subsets of each size with its range,
    or, in a report written before those, the first k members in member order (which that order colours)."""

    def __init__(self, curve: list[SizePoint], subsets: list[SizeSpread] | None = None, *,
                 id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._curve = sorted(curve, key=lambda p: p.size)
        self._subsets = sorted(subsets or [], key=lambda p: p.size)

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
        return [*keys, Key("min–max over the subsets", (ENSEMBLE, MEMBER), RANGE + NLL_RANGE)]
