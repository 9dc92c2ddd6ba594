"""Loss curves, one line per member, against fractional epochs (textual-plotext)."""

from __future__ import annotations

import time

from textual.app import RenderResult
from textual_plotext import PlotextPlot

from ens_tui.run_state import MemberProgress

REPAINT_SECONDS = 3.0
LEGEND_LIMIT = 8
"""With more members than this the legend would hide the curves; the colours still tell them apart."""


class LossPlot(PlotextPlot):
    """Training loss per member, replotted from `set_members` (cheap: plotext draws only on render)."""

    DEFAULT_CSS = """
    LossPlot { min-height: 6; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._series: dict[int, list[tuple[float, float]]] = {}
        self._signature: tuple[int, ...] = ()
        self._painted = -REPAINT_SECONDS

    def set_members(self, members: dict[int, MemberProgress], *, final: bool = False) -> None:
        """Take the latest curves; repaints only when some member has new points, and while training at
        most every REPAINT_SECONDS: plotext draws in Python, and its CPU is taken from the ranks."""
        signature = tuple(len(m.losses) + len(m.epoch_losses) for _, m in sorted(members.items()))
        if signature == self._signature:
            return
        now = time.monotonic()
        if not final and now - self._painted < REPAINT_SECONDS:
            return
        self._signature, self._painted = signature, now
        # A member whose step points were all merged away still has its per-epoch losses.
        self._series = {i: list(m.losses or m.epoch_losses) for i, m in sorted(members.items())}
        self.refresh()

    def render(self) -> RenderResult:
        plt = self.plt
        plt.clear_figure()  # a full reset each time: leftover state from an earlier size made ticks drift
        plt.title("training loss per member")
        plt.xlabel("epoch")
        labelled = len(self._series) <= LEGEND_LIMIT
        for member, points in self._series.items():
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            plt.plot(list(xs), list(ys), marker="braille", label=f"m{member}" if labelled else None)
        return super().render()
