"""Colours that mean the same on every report tab, as in engine.figures: the ensemble blue, the mean member orange."""

from __future__ import annotations

from rich.color import Color

ENSEMBLE = "blue+"
"""The ensemble's lines (plotext colour name)."""
MEMBER = "orange"
"""The mean member's lines (plotext colour name)."""
WINNER = "bold green"
"""The better value of a comparison (Rich style), as in the metrics table."""


def heat(share: float) -> Color:
    """A cell background from dark (0) to bright blue (1), readable under white text on dark themes."""
    share = min(max(share, 0.0), 1.0)
    low, high = (22, 34, 52), (44, 110, 200)
    return Color.from_rgb(*(round(a + (b - a) * share) for a, b in zip(low, high, strict=True)))


def downsample(xs: list[float], ys: list[float], points: int = 200) -> tuple[list[float], list[float]]:
    """At most `points` evenly spaced points of a curve, its ends kept: plenty for a terminal plot."""
    if len(xs) <= points:
        return xs, ys
    picks = sorted({round(i * (len(xs) - 1) / (points - 1)) for i in range(points)})
    return [xs[i] for i in picks], [ys[i] for i in picks]
