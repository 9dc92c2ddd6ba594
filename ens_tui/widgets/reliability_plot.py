"""The reliability diagram: accuracy per confidence bin against the diagonal of perfect calibration."""

from __future__ import annotations

from textual.app import RenderResult
from textual_plotext import PlotextPlot

from engine.report_model import ReliabilityBin


class ReliabilityPlot(PlotextPlot):
    """Bars are the accuracy of each non-empty bin (at its mean confidence); the line is perfect calibration."""

    def __init__(self, bins: list[ReliabilityBin], ece: float | None = None, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._bins = [b for b in bins if b.count]
        self._ece = ece

    def render(self) -> RenderResult:
        plt = self.plt
        plt.clear_figure()  # a full reset each time: leftover state from an earlier size made ticks drift
        ece = f"  (ECE {self._ece:.4f})" if self._ece is not None else ""
        plt.title(f"reliability{ece}")
        plt.xlabel("confidence")
        if self._bins:
            centres = [(b.bin_lower + b.bin_upper) / 2 for b in self._bins]
            width = min(b.bin_upper - b.bin_lower for b in self._bins)
            plt.bar(centres, [b.accuracy for b in self._bins], width=width * 0.8, label="accuracy")
            plt.plot([0, 1], [0, 1], marker="braille", label="perfect")
            plt.xlim(0, 1)
            plt.ylim(0, 1)
            # Fixed ticks: plotext's own choice for bars varies from one render to the next.
            plt.xticks([i / 5 for i in range(6)], [f"{i / 5:.1f}" for i in range(6)])
        return super().render()
