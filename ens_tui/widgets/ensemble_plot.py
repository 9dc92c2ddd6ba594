"""Validation NLL of the finished members' ensemble against its size, with the size law's fit and projection: how
many members are enough, drawn while the run trains. The run screen shows it in place of the loss plot (`v`).

Sizes go on a log axis, so the members trained so far keep their room beside a projection four times as far."""

from __future__ import annotations

from math import log10

from engine import events as ev
from engine.report_model import SizeLaw
from ens_tui.run_state import signed
from ens_tui.widgets._palette import ENSEMBLE, GUIDE, MEMBER, fade
from ens_tui.widgets._plot import Key, LegendPlot, key

FIT_MARK = "·"
PROJECTED_MARK = "◆"
FIT_DOTS = 24
"""Dots the fit is drawn with at least (spread evenly on the log axis; a line would hide the observed one)."""
PROJECT_TIMES = 4
"""The projection reaches this many times the finished members (the law's own projected sizes up to there)."""
TICK_COLUMNS = 5
XLABEL_ROWS = 16
"""Below this height the x axis goes unnamed: its row is worth more to the curve (the title names it)."""


def reach(law: SizeLaw) -> int:
    """The largest size the plot projects to."""
    return max([law.sizes, *(p.size for p in law.projected if p.size <= PROJECT_TIMES * law.sizes)])


class EnsemblePlot(LegendPlot):
    """Observed NLL at 1..k finished members (averaged over random orders), the fit a + b/k dotted through and past
    them to the projected sizes, and the limit a; fed from `set_ensemble` when the finished curve changes."""

    DEFAULT_CSS = """
    EnsemblePlot { min-height: 6; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._ensemble: ev.Ensemble | None = None

    def set_ensemble(self, ensemble: ev.Ensemble | None) -> None:
        """Take the newest ensemble; repaints only when its finished members' curve or fit changed."""
        before = self._ensemble
        if before is ensemble or (before is not None and ensemble is not None and
                                  (before.curve, before.fit) == (ensemble.curve, ensemble.fit)):
            return
        self._ensemble = ensemble
        self.refresh()

    def title(self, width: int) -> str:
        """The longest of the titles that fits `width` (plotext leaves out a title wider than the plot)."""
        e = self._ensemble
        if e is None or not e.curve:
            titles = ["ensemble val NLL vs members: none yet (from the first finished member)",
                      "ensemble NLL vs members: none yet", "ensemble NLL"]
        elif e.fit is None:
            titles = ["ensemble val NLL vs finished members (the fit needs two)", "ensemble NLL vs members",
                      "ensemble NLL"]
        else:
            fit = e.fit
            enough = "95 % of the gain reached" if fit.gain_95 <= fit.sizes else f"95 % at {fit.gain_95} members"
            titles = [f"ensemble val NLL vs members · next ≈ {signed(-fit.next_gain)} · {enough}",
                      f"val NLL vs members · next {signed(-fit.next_gain)} · {enough}",
                      f"NLL vs members · {enough}", "ensemble NLL"]
        return next((t for t in titles if len(t) <= width - 2), titles[-1])

    def draw(self) -> list[Key]:
        plt = self.plt
        plt.title(self.title(self.size.width))
        if self.size.height >= XLABEL_ROWS:
            plt.xlabel("finished members (log scale)")
        e = self._ensemble
        if e is None or not e.curve:
            return []
        sizes, nll = [p.size for p in e.curve], [p.nll for p in e.curve]
        law = e.fit
        last = reach(law) if law is not None else sizes[-1]
        keys = [key("observed", ENSEMBLE)]
        ticks = set(sizes)
        if law is not None:
            dots = max(FIT_DOTS, self.size.width)
            xs = [log10(last) * i / (dots - 1) for i in range(dots)]
            plt.scatter(xs, [law.a + law.b / 10**x for x in xs], marker=FIT_MARK, color=fade(MEMBER, 0.7))
            plt.hline(law.a, color=fade(GUIDE, 0.6))
            projected = [p for p in law.projected if p.size <= last]
            plt.scatter([log10(p.size) for p in projected], [p.nll for p in projected], marker=PROJECTED_MARK,
                        color=MEMBER)
            ticks |= {p.size for p in projected}
            keys += [key(f"fit {law.a:.4f}+{law.b:.4f}/k", fade(MEMBER, 0.7), FIT_MARK * 2),
                     key("projected", MEMBER, PROJECTED_MARK), key("limit", fade(GUIDE, 0.6), "──")]
        plt.plot([log10(k) for k in sizes], nll, marker="braille", color=ENSEMBLE)
        plt.scatter([log10(k) for k in sizes], nll, marker="•", color=ENSEMBLE)
        span = max(log10(last), 0.2)
        shown = spaced(sorted(ticks), (self.size.width - 10) / span)
        plt.xticks([log10(t) for t in shown], [str(t) for t in shown])
        plt.xlim(-0.03 * span, log10(last) + 0.03 * span)
        return keys


def spaced(ticks: list[int], columns_per_decade: float) -> list[int]:
    """The ticks at least TICK_COLUMNS columns apart on the log axis, the first and the last kept."""
    kept = [ticks[0]]
    for tick in ticks[1:]:
        if log10(tick / kept[-1]) * columns_per_decade >= TICK_COLUMNS:
            kept.append(tick)
    if kept[-1] != ticks[-1]:
        if len(kept) > 1:
            kept.pop()
        kept.append(ticks[-1])
    return kept
