"""The reliability diagram: accuracy per confidence bin against the diagonal of perfect calibration."""

from __future__ import annotations

import math

from engine.report_model import ReliabilityBin
from ens_tui.widgets._palette import ENSEMBLE, GUIDE, fade
from ens_tui.widgets._plot import BAR, Key, LegendPlot, key

FAINTEST = 0.25
"""The shade of a one-input bin: it says as little as its count, next to a full bin's full colour."""


def shade(count: int, most: int) -> float:
    """How strongly a bin of `count` inputs is drawn, FAINTEST (one) to 1 (`most`), on a log scale."""
    if most <= 1:
        return 1.0
    return FAINTEST + (1 - FAINTEST) * math.log(max(count, 1)) / math.log(most)


class ReliabilityPlot(LegendPlot):
    """Bars are the accuracy of each non-empty bin (at its mean confidence), shaded by how many inputs it holds;
    the diagonal is perfect calibration, drawn under the bars so it never cuts one."""

    def __init__(self, bins: list[ReliabilityBin], ece: float | None = None, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._bins = [b for b in bins if b.count]
        self._ece = ece

    def draw(self) -> list[Key]:
        plt = self.plt
        ece = f"  (ECE {self._ece:.4f})" if self._ece is not None else ""
        plt.title(f"reliability{ece}")
        plt.xlabel("confidence")
        if not self._bins:
            return []
        plt.plot([0, 1], [0, 1], marker="braille", color=GUIDE)
        counts = [b.count for b in self._bins]
        most = max(counts)
        for b in self._bins:
            # A one-column line of blocks, not plotext's bar: that one's width rounds two bins into one block.
            centre = (b.bin_lower + b.bin_upper) / 2
            plt.plot([centre, centre], [0, b.accuracy], marker="█", color=fade(ENSEMBLE, shade(b.count, most)))
        plt.xlim(0, 1)
        plt.ylim(0, 1)
        # Fixed ticks: plotext's own choice for bars varies from one render to the next.
        plt.xticks([i / 5 for i in range(6)], [f"{i / 5:.1f}" for i in range(6)])
        ramp = tuple(fade(ENSEMBLE, s) for s in (FAINTEST, 0.5, 0.75, 1.0))
        return [key("accuracy", ENSEMBLE, BAR), key("perfect", GUIDE),
                Key(f"inputs per bin: {min(counts)}…{most}", ramp, "▆▆▆▆")]
