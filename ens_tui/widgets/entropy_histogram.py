"""Predictive entropy of in-distribution test inputs against one OOD set: the further apart, the better."""

from __future__ import annotations

from textual.app import RenderResult
from textual_plotext import PlotextPlot

from engine.report_model import OodResult


def _shares(counts: list[float]) -> list[float]:
    total = sum(counts)
    return [c / total for c in counts] if total else [0.0 for _ in counts]


class EntropyHistogram(PlotextPlot):
    """Both histograms as shares of their own set (the sets differ in size), titled with the AUROCs."""

    DEFAULT_CSS = """
    EntropyHistogram { min-height: 8; }
    """

    def __init__(self, name: str, result: OodResult, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._name = name
        self._result = result

    def render(self) -> RenderResult:
        plt = self.plt
        plt.clear_figure()  # a full reset each time: leftover state from an earlier size made ticks drift
        result = self._result
        plt.title(f"{self._name}: AUROC H {result.auroc_entropy:.3f}, AUROC MI {result.auroc_mi:.3f}")
        hist = result.entropy_hist
        edges = hist.bins
        if len(edges) >= 2:
            centres = [(a + b) / 2 for a, b in zip(edges, edges[1:], strict=False)]
            series = [(_shares(hist.in_dist), "in-dist"), (_shares(hist.ood), self._name)]
            series = [(s, label) for s, label in series if len(s) == len(centres)]
            if series:
                positions = [float(i) for i in range(len(centres))]
                plt.multiple_bar(  # type: ignore[call-arg]  # plotext takes `labels`; the stub says `label`
                    positions, [s for s, _ in series], labels=[label for _, label in series]
                )
                # Our own tick choice: plotext thins crowded bar labels differently from one run to the next.
                every = max(1, -(-len(centres) * 7 // max(self.size.width - 10, 1)))
                shown = positions[::every]
                plt.xticks(shown, [f"{centres[int(i)]:.2f}" for i in shown])
            plt.xlabel("entropy (nats)")
        return super().render()
