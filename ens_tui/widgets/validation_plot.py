"""Validation accuracy or NLL per member after each epoch (textual-plotext): how the members generalise while they
train, where the loss plot shows only how they fit. The run screen shows it in place of the loss plot (`a`)."""

from __future__ import annotations

import math

from textual.reactive import reactive

from ens_tui.run_state import MemberProgress, ValPoint
from ens_tui.widgets import _format as fmt
from ens_tui.widgets._palette import SERIES
from ens_tui.widgets._plot import Key, LegendPlot, key
from ens_tui.widgets.loss_plot import LEGEND_LIMIT

METRICS = ("accuracy", "nll")
"""What `metric` may be; the run screen's `a` goes through them (then back to the loss plot)."""
MAX_EPOCH_TICKS = 12
"""Up to this many epochs, every epoch is a tick of its own (plotext's own ticks fall between epochs)."""


def value(point: ValPoint, metric: str) -> float | None:
    """The point's accuracy (in %) or NLL; None where the rank sent none or it is not finite."""
    raw = point.accuracy * 100 if metric == "accuracy" and point.accuracy is not None else (
        point.nll if metric == "nll" else None)
    return raw if raw is not None and math.isfinite(raw) else None


def shown(v: float, metric: str) -> str:
    """A value as the legend and title say it: accuracy in %, NLL to 3 decimals."""
    return f"{v:.1f}%" if metric == "accuracy" else f"{v:.3f}"


class ValidationPlot(LegendPlot):
    """Per-member validation curves, replotted from `set_members` when some member has a new epoch.

    The legend gives each member's latest value; the title the best one so far (highest accuracy, lowest NLL)
    with its member and epoch.
    """

    DEFAULT_CSS = """
    ValidationPlot { min-height: 6; }
    """

    metric: reactive[str] = reactive(METRICS[0])
    """One of METRICS."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._series: dict[int, list[ValPoint]] = {}
        self._signature: tuple[object, ...] = ()

    def set_members(self, members: dict[int, MemberProgress]) -> None:
        """Take the latest series; repaints only when one changed (validation comes once per member-epoch)."""
        signature = tuple((i, len(m.val), m.val[-1] if m.val else None) for i, m in sorted(members.items()))
        if signature == self._signature:
            return
        self._signature = signature
        self._series = {i: list(m.val) for i, m in sorted(members.items())}
        self.refresh()

    def best(self) -> tuple[int, ValPoint, float] | None:
        """(member, point, value) of the best value so far in the shown metric, or None before any."""
        found = [(value(p, self.metric), member, p) for member, points in self._series.items() for p in points]
        scored = [(v, member, p) for v, member, p in found if v is not None]
        if not scored:
            return None
        pick = max if self.metric == "accuracy" else min
        v, member, point = pick(scored, key=lambda s: s[0])
        return member, point, v

    def title(self, width: int) -> str:
        """The longest of the titles that fits `width` (plotext leaves out a title wider than the plot)."""
        name = "accuracy" if self.metric == "accuracy" else "NLL"
        best = self.best()
        if best is None:
            titles = [f"validation {name} per member: none yet (each comes at the end of an epoch)",
                      f"validation {name}: none yet", f"val {name}"]
        else:
            member, point, v = best
            said = f"{fmt.member(member)} {shown(v, self.metric)}"
            titles = [f"validation {name} per member · best {said} (epoch {point.epoch})",
                      f"val {name} · best {said} (epoch {point.epoch})", f"val {name} · best {said}", f"val {name}"]
        return next((t for t in titles if len(t) <= width - 2), titles[-1])

    def draw(self) -> list[Key]:
        plt = self.plt
        plt.title(self.title(self.size.width))
        plt.xlabel("epoch")
        keys: list[Key] = []
        last_epoch = 0
        for n, (member, points) in enumerate(self._series.items()):
            pairs = [(p.epoch, v) for p in points if (v := value(p, self.metric)) is not None]
            if not pairs:
                continue
            xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
            last_epoch = max(last_epoch, xs[-1])
            colour = SERIES[n % len(SERIES)]
            # A line between epochs, and a mark on each epoch's point (a lone braille dot would be lost).
            plt.plot(xs, ys, marker="braille", color=colour)
            plt.scatter(xs, ys, marker="•", color=colour)
            keys.append(key(f"{fmt.member(member)} {shown(ys[-1], self.metric)}", colour))
        if 0 < last_epoch <= MAX_EPOCH_TICKS:
            plt.xticks(list(range(1, last_epoch + 1)))
        return keys if len(keys) <= LEGEND_LIMIT else []
