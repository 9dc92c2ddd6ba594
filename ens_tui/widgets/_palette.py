"""Colours that mean the same on every report tab, as in engine.figures: the ensemble blue, the mean member orange."""

from __future__ import annotations

from rich.color import Color

RGB = tuple[int, int, int]
"""A colour both plotext (a data colour) and Rich (a legend's key) take: no name that each maps differently."""

ENSEMBLE: RGB = (59, 142, 234)
"""The ensemble's lines."""
MEMBER: RGB = (245, 130, 48)
"""The mean member's lines (plotext's own "orange" is a yellow)."""
IN_DIST: RGB = (150, 150, 150)
"""In-distribution test inputs, against an OOD set."""
OOD: RGB = (230, 60, 75)
"""An OOD set."""
GUIDE: RGB = (128, 128, 128)
"""Reference lines: perfect calibration."""
SERIES: tuple[RGB, ...] = ((0, 130, 200), (60, 180, 75), (230, 25, 75), (255, 225, 25), (245, 130, 48),
                           (145, 30, 180), (70, 240, 240), (240, 50, 230))
"""One colour per member, as many as the loss plot labels (its LEGEND_LIMIT), then repeated."""
WINNER = "bold green"
"""The better value of a comparison (Rich style), as in the metrics table."""


def fade(colour: RGB, share: float, toward: RGB = (40, 44, 52)) -> RGB:
    """`colour` at `share` (1) down to `toward` (0): a dark theme's background, so little reads as faint."""
    share = min(max(share, 0.0), 1.0)
    return tuple(round(b + (a - b) * share) for a, b in zip(colour, toward, strict=True))  # type: ignore[return-value]


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
