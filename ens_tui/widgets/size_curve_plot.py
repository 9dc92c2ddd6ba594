"""Accuracy and NLL as the ensemble grows from one member to all of them: how much each extra member buys."""

from __future__ import annotations

from textual.app import RenderResult
from textual_plotext import PlotextPlot

from engine.report_model import SizePoint


class SizeCurvePlot(PlotextPlot):
    """Accuracy on the left axis, NLL on the right."""

    def __init__(self, curve: list[SizePoint], *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._curve = sorted(curve, key=lambda p: p.size)

    def render(self) -> RenderResult:
        plt = self.plt
        plt.clear_figure()  # a full reset each time: leftover state from an earlier size made ticks drift
        plt.title("accuracy and NLL vs ensemble size")
        plt.xlabel("members")
        if self._curve:
            sizes = [p.size for p in self._curve]
            plt.plot(sizes, [100 * p.accuracy for p in self._curve], marker="braille", label="accuracy %")
            plt.plot(sizes, [p.nll for p in self._curve], marker="braille", label="NLL", yside="right")
            plt.xticks(sizes)
        return super().render()
