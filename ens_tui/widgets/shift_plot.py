"""One metric against corruption severity, ensemble vs mean member: does the ensemble degrade more gracefully?"""

from __future__ import annotations

from engine.report_model import Shift, ShiftPoint
from ens_tui.widgets._palette import ENSEMBLE, MEMBER
from ens_tui.widgets._plot import Key, LegendPlot, key

LABELS = {"accuracy": "accuracy %", "ece": "ECE", "nll": "NLL"}


def by_severity(points: list[ShiftPoint], key: str) -> dict[int, float]:
    """The mean of `key` over the corruptions at each severity."""
    grouped: dict[int, list[float]] = {}
    for p in points:
        grouped.setdefault(p.severity, []).append(getattr(p, key))
    return {s: sum(v) / len(v) for s, v in sorted(grouped.items())}


class ShiftPlot(LegendPlot):
    """Means over the corruptions at each severity (accuracy in %)."""

    DEFAULT_CSS = """
    ShiftPlot { height: 1fr; min-height: 10; }
    """

    def __init__(self, shift: Shift, metric: str, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._shift = shift
        self._metric = metric

    def draw(self) -> list[Key]:
        plt = self.plt
        label = LABELS.get(self._metric, self._metric)
        plt.title(f"{label} by severity")
        plt.xlabel("severity")
        scale = 100 if self._metric == "accuracy" else 1
        keys = []
        for who, colour, points in (("ensemble", ENSEMBLE, self._shift.ensemble),
                                    ("mean member", MEMBER, self._shift.mean_member)):
            means = by_severity(points, self._metric)
            if means:
                plt.plot(list(means), [scale * v for v in means.values()], marker="braille", color=colour)
                keys.append(key(who, colour))
        if self._shift.severities:
            plt.xticks(self._shift.severities)
        return keys
