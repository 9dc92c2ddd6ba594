"""Predictive entropy of in-distribution test inputs against one OOD set: the further apart, the better."""

from __future__ import annotations

import math

from textual.reactive import reactive

from engine.report_model import OodResult
from ens_tui.widgets._palette import IN_DIST, OOD
from ens_tui.widgets._plot import BAR, Key, LegendPlot, key

MAX_BINS = 20
COLUMNS_PER_BIN = 3
"""Two one-column bars and a gap: fewer, wider bins on a narrow terminal."""
TICK_COLUMNS = 7


def shares(counts: list[float]) -> list[float]:
    total = sum(counts)
    return [c / total for c in counts] if total else [0.0 for _ in counts]


def rebin(edges: list[float], counts: list[float], new_edges: list[float]) -> list[float]:
    """Counts over `edges` recounted over `new_edges`, each old bin split by how much of it a new one covers.

    Exact where the old edges fall on new ones; every set's histogram has its own edges (up to its own largest
    entropy), so this puts them on one shared range.
    """
    out = [0.0] * (len(new_edges) - 1)
    for lo, hi, count in zip(edges, edges[1:], counts, strict=False):
        for j, (a, b) in enumerate(zip(new_edges, new_edges[1:], strict=False)):
            overlap = min(hi, b) - max(lo, a)
            if overlap > 0 and count:
                out[j] += count * overlap / (hi - lo)
    return out


def log_floor(values: list[float]) -> float:
    """The decade the log axis starts at: one below the smallest share shown, so its bar still has height."""
    smallest = min((v for v in values if v > 0), default=1.0)
    return 10.0 ** (math.ceil(math.log10(smallest)) - 1)


class EntropyHistogram(LegendPlot):
    """Both histograms as shares of their own set (the sets differ in size), side by side over a range shared with
    the other sets' (`top`), titled with the AUROCs; `log_y` for the thin tails."""

    DEFAULT_CSS = """
    EntropyHistogram { min-height: 8; }
    """

    log_y: reactive[bool] = reactive(False)

    def __init__(self, name: str, result: OodResult, top: float | None = None, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._name = name
        self._result = result
        self._top = top

    def draw(self) -> list[Key]:
        plt = self.plt
        result = self._result
        plt.title(f"{self._name}: AUROC by entropy {result.auroc_entropy:.3f}, "
                  f"by mutual information {result.auroc_mi:.3f}")
        plt.xlabel("predictive entropy (nats)")
        hist = result.entropy_hist
        if len(hist.bins) < 2:
            return []
        top = max(self._top or 0.0, hist.bins[-1]) or 1.0
        bins = max(1, min(MAX_BINS, (self.size.width - 10) // COLUMNS_PER_BIN))
        edges = [top * i / bins for i in range(bins + 1)]
        width = top / bins
        series = [(shares(rebin(hist.bins, counts, edges)), colour, label)
                  for counts, colour, label in ((hist.in_dist, IN_DIST, "in-distribution (test)"),
                                                (hist.ood, OOD, f"{self._name} (OOD)"))
                  if len(counts) == len(hist.bins) - 1]
        floor = log_floor([v for values, _, _ in series for v in values]) if self.log_y else 0.0
        for side, (values, colour, _) in zip((-1, 1), series, strict=False):
            for i, value in enumerate(values):
                if value > 0:
                    x = edges[i] + width / 2 + side * width / 5
                    height = math.log10(value / floor) if self.log_y else value
                    plt.plot([x, x], [0, height], marker="█", color=colour)
        plt.xlim(0, top)
        ticks = max(2, min(bins, (self.size.width - 10) // TICK_COLUMNS))
        plt.xticks([top * i / ticks for i in range(ticks + 1)], [f"{top * i / ticks:.2f}" for i in range(ticks + 1)])
        if self.log_y:
            decades = round(-math.log10(floor))
            plt.ylim(0, decades)
            plt.yticks(list(range(decades + 1)), [f"{floor * 10**d:g}" for d in range(decades + 1)])
        plt.ylabel("share (log)" if self.log_y else "share")
        return [key(label, colour, BAR) for _, colour, label in series]
