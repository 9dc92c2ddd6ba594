"""Number formatting shared by the widgets (one place, so every panel reads the same way)."""

from __future__ import annotations

SPARK_CHARS = "▁▂▃▄▅▆▇█"


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
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = int(round(fraction * width * 8))
    full, part = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[part] if part else ""
    return ("█" * full + partial).ljust(width, "·")[:width]


def spark(values: list[float], width: int) -> str:
    """An inline sparkline of the last `width` values, scaled to their maximum."""
    tail = values[-width:] if width > 0 else []
    top = max(tail, default=0.0)
    if top <= 0:
        return SPARK_CHARS[0] * len(tail)
    return "".join(SPARK_CHARS[min(int(v / top * (len(SPARK_CHARS) - 1) + 0.5), len(SPARK_CHARS) - 1)] for v in tail)
