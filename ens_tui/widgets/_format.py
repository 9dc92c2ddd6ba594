"""Number and name formatting shared by the dashboard, its log and the headless view (one place, so every
view reads the same way: members m0, m1…; epochs counted from 1; accuracies as percentages)."""

from __future__ import annotations

import math
from collections.abc import Iterable

SPARK_CHARS = "▁▂▃▄▅▆▇█"


def member(index: int) -> str:
    """A member as every view names it: m0, m1… (the report's member indices)."""
    return f"m{index}"


def members(indices: Iterable[int]) -> str:
    """Several members: m0, m2."""
    return ", ".join(map(member, indices))


def position(index: int, total: int | None = None) -> str:
    """A 0-based epoch or step counted from 1, out of `total` when known: 3/8."""
    return f"{index + 1}/{total}" if total else str(index + 1)


def accuracy(value: float | None) -> str:
    """An accuracy (0..1) as a percentage: 96.38%."""
    return "–" if value is None else f"{value:.2%}"


def score(value: float | None) -> str:
    """A report score (NLL, Brier, ECE, entropy, mutual information): 0.0210."""
    return "–" if value is None else f"{value:.4f}"


def loss(value: float | None) -> str:
    """A training loss or validation NLL while training: 0.412."""
    return "–" if value is None else f"{value:.3f}"


def rate(value: float | None) -> str:
    """Samples per second, compact: 950, 12.3k, 1.2M."""
    if value is None:
        return "–"
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    if value >= 1e4:
        return f"{value / 1e3:.0f}k"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def duration(seconds: float | None) -> str:
    """Seconds as 42s, 3m05s or 1h02m; – when unknown."""
    if seconds is None:
        return "–"
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def megabytes(mb: float | None) -> str:
    """Memory in MB below a gigabyte, else GB."""
    if mb is None:
        return "–"
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def bar(fraction: float, width: int = 8) -> str:
    """A horizontal bar of eighths, e.g. for CPU %; fraction is clamped to 0..1."""
    fraction = min(max(fraction, 0.0), 1.0) if math.isfinite(fraction) else 0.0
    eighths = int(round(fraction * width * 8))
    full, part = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[part] if part else ""
    return ("█" * full + partial).ljust(width, "·")[:width]


def spark(values: list[float], width: int, height: int = 1) -> list[str]:
    """The last `width` values as bars `height` rows tall (top row first), scaled from 0 to their maximum.

    Zero is the floor (▁): an idle stretch reads as idle, where a min-to-max scale draws a lone sample as a
    full bar and a steady rate as no rate at all.
    """
    n = len(SPARK_CHARS)
    tail = values[-width:] if width > 0 else []
    top = max(tail, default=0.0)
    levels = [min(int(v / top * (n * height - 1) + 0.5), n * height - 1) if top > 0 else 0 for v in tail]
    return ["".join("█" if level >= low + n else " " if level < low else SPARK_CHARS[level - low] for level in levels)
            for low in range(n * (height - 1), -1, -n)]
