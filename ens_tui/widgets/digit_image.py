"""A grayscale image drawn with half-block characters: two pixels per cell, upper as colour, lower as background."""

from __future__ import annotations

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget

Image = list[list[float]]


def resample(image: Image, width: int) -> Image:
    """Box-average (shrinking) or repeat (growing) pixels so the image is `width` wide, keeping its aspect."""
    h, w = len(image), len(image[0]) if image else 0
    if not h or not w:
        return []
    height = max(1, round(h * width / w))
    out: Image = []
    for i in range(height):
        y0, y1 = i * h // height, max((i + 1) * h // height, i * h // height + 1)
        row = []
        for j in range(width):
            x0, x1 = j * w // width, max((j + 1) * w // width, j * w // width + 1)
            box = [image[y][x] for y in range(y0, y1) for x in range(x0, x1)]
            row.append(sum(box) / len(box))
        out.append(row)
    return out


def _gray(value: float) -> Color:
    level = int(min(max(value, 0.0), 1.0) * 255)
    return Color.from_rgb(level, level, level)


class DigitImage(Widget):
    """Draws `image` (rows of floats in [0, 1]) `cells` columns wide and half as many rows tall as pixels."""

    DEFAULT_CSS = """
    DigitImage { width: auto; height: auto; }
    """

    def __init__(self, image: Image, *, cells: int = 16, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._pixels = resample(image, cells)
        self._cells = cells

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return self._cells if self._pixels else 0

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return (len(self._pixels) + 1) // 2

    def render_line(self, y: int) -> Strip:
        top_row = 2 * y
        if top_row >= len(self._pixels):
            return Strip.blank(self.size.width)
        top = self._pixels[top_row]
        bottom = self._pixels[top_row + 1] if top_row + 1 < len(self._pixels) else None
        segments = [
            Segment("▀", Style(color=_gray(t), bgcolor=_gray(bottom[x]) if bottom else None))
            for x, t in enumerate(top)
        ]
        return Strip(segments, self._cells)
