"""Risk–coverage: the error rate on the inputs the model answers, as it answers more of them (lower is better)."""

from __future__ import annotations

from engine.report_model import Selective
from ens_tui.widgets._palette import ENSEMBLE, MEMBER, downsample
from ens_tui.widgets._plot import Key, LegendPlot, key


class RiskCoveragePlot(LegendPlot):
    """The ensemble against the mean member, both ranked by one score (confidence: the maximum probability)."""

    DEFAULT_CSS = """
    RiskCoveragePlot { height: 1fr; min-height: 10; }
    """

    def __init__(self, selective: Selective, ranking: str = "confidence", *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._selective = selective
        self._ranking = ranking if ranking in selective.ensemble else next(iter(selective.ensemble), ranking)

    def draw(self) -> list[Key]:
        plt = self.plt
        plt.title(f"risk–coverage, ranked by {self._ranking}")
        plt.xlabel("coverage")
        keys = []
        for who, colour, curves in (("ensemble", ENSEMBLE, self._selective.ensemble),
                                    ("mean member", MEMBER, self._selective.mean_member)):
            curve = curves.get(self._ranking)
            if curve is not None and curve.coverage:
                xs, ys = downsample(curve.coverage, [100 * r for r in curve.risk])
                plt.plot(xs, ys, marker="braille", color=colour)
                keys.append(key(f"{who} (AURC {curve.aurc:.4f})", colour))
        plt.xlim(0, 1)
        plt.xticks([i / 5 for i in range(6)], [f"{i / 5:.1f}" for i in range(6)])
        plt.ylabel("error %")
        return keys
