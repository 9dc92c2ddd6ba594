"""Loss curves, one line per member, against fractional epochs (textual-plotext)."""

from __future__ import annotations

import math
import time

from textual.reactive import reactive

from ens_tui.run_state import MemberProgress
from ens_tui.widgets._palette import SERIES
from ens_tui.widgets._plot import Key, LegendPlot, key

REPAINT_SECONDS = 3.0
LEGEND_LIMIT = 8
"""With more members than this the legend would take lines from the curves; the colours still tell them apart."""
VIEWS = ("linear", "log y", "smoothed", "smoothed, log y")
"""What `next_view` cycles through: a long run's first drop flattens the rest of a linear plot, and step losses
are noisy."""
SMOOTHING_SHARE = 0.05
"""The moving average spans this share of a member's points (about two epochs of a 40-epoch run)…"""
SMOOTHING_MIN = 4
"""…and this many points at least, so a short run's curve is smoothed too."""


def smooth(ys: list[float], span: float) -> list[float]:
    """Exponential moving average over about `span` points, debiased so the curve starts at the first loss."""
    alpha = 2 / (max(span, 1.0) + 1)
    out, level, weight = [], 0.0, 0.0
    for y in ys:
        level = (1 - alpha) * level + alpha * y
        weight = (1 - alpha) * weight + alpha
        out.append(level / weight)
    return out


class LossPlot(LegendPlot):
    """Training loss per member, replotted from `set_members` (cheap: plotext draws only on render)."""

    DEFAULT_CSS = """
    LossPlot { min-height: 6; }
    """

    view: reactive[str] = reactive(VIEWS[0])
    """One of VIEWS; the title says which."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._series: dict[int, list[tuple[float, float]]] = {}
        self._signature: tuple[int, ...] = ()
        self._painted = -REPAINT_SECONDS

    def next_view(self) -> str:
        """Switch to the next of VIEWS (repainted at once, whatever REPAINT_SECONDS says); returns its name."""
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        return self.view

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

    def draw(self) -> list[Key]:
        plt = self.plt
        plt.title(f"training loss per member ({self.view})")
        plt.xlabel("epoch")
        log, smoothed = "log" in self.view, "smoothed" in self.view
        keys = []
        for n, (member, points) in enumerate(self._series.items()):
            # Non-finite losses (a diverging member) would stretch the axis to nothing; log y also drops zeros.
            points = [(x, y) for x, y in points if math.isfinite(y) and (y > 0 or not log)]
            if not points:
                continue
            xs, ys = (list(v) for v in zip(*points, strict=True))
            colour = SERIES[n % len(SERIES)]
            plt.plot(xs, smooth(ys, max(SMOOTHING_MIN, SMOOTHING_SHARE * len(ys))) if smoothed else ys, marker="braille", color=colour)
            keys.append(key(f"m{member}", colour))
        if log and keys:
            plt.yscale("log")
        return keys if len(keys) <= LEGEND_LIMIT else []
