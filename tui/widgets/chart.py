"""A loss / eval-loss chart drawn in braille dots: plain text, no plotting dependency.

Each character cell holds 2×4 dots, so a 40×5 area is an 80×20 dot plot: enough to see a
loss curve fall. Training loss is a line, evaluation loss points joined by a line in
another colour; the y axis shows the range, the first line the latest values and steps.
Readable in 16 colours (two ANSI colours) and redrawn only when points arrive. A loss that
falls by 10× or more is drawn on a log axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

from rich.text import Text
from textual.widget import Widget

# dot (column, row) inside a cell -> its bit in the braille code point
DOTS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
AXIS = 7  # characters of y-axis labels

Point = tuple[float, float]  # (step, value)


def _line(x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    """The dots from one point to the next (Bresenham)."""
    dots = []
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    error = dx + dy
    while True:
        dots.append((x0, y0))
        if x0 == x1 and y0 == y1:
            return dots
        double = 2 * error
        if double >= dy:
            error += dy
            x0 += sx
        if double <= dx:
            error += dx
            y0 += sy


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _axis_label(value: float) -> str:
    """The value in at most AXIS - 1 characters: a longer label would push its row's dots
    past the widget's edge (0.08304 hid the whole bottom row)."""
    for digits in (4, 3, 2, 1):
        label = f"{value:.{digits}g}"
        if len(label) <= AXIS - 1:
            return label
    return label[: AXIS - 1]


def log_scale(values: Sequence[float]) -> bool:
    """A loss falling by 10× or more is drawn on a log axis, so the late steps, where the
    decisions are made, are not a flat line on the bottom row."""
    low, high = min(values), max(values)
    return low > 0 and high / low >= 10


def plot(series: Sequence[tuple[Sequence[Point], str]], width: int, height: int) -> list[Text]:
    """`height` lines of `width` cells: each series (points, style) drawn as joined dots."""
    points = [point for values, _ in series for point in values]
    plot_width = max(width - AXIS, 1)
    if not points or height < 1:
        return [Text(" " * width) for _ in range(height)]
    steps = [step for step, _ in points]
    values = [value for _, value in points]
    scale = math.log if log_scale(values) else float
    low_x, high_x = min(steps), max(steps)
    low_y, high_y = min(values), max(values)
    if high_y - low_y < 1e-12:
        low_y, high_y = low_y - 0.5, high_y + 0.5
    top, bottom = scale(high_y), scale(low_y)
    dots_x, dots_y = plot_width * 2, height * 4

    def place(point: Point) -> tuple[int, int]:
        step, value = point
        x = 0 if high_x == low_x else round((step - low_x) / (high_x - low_x) * (dots_x - 1))
        y = round((top - scale(value)) / (top - bottom) * (dots_y - 1))
        return x, y

    cells: dict[tuple[int, int], int] = {}
    owner: dict[tuple[int, int], str] = {}
    for values_, style in series:
        placed = [place(point) for point in values_]
        dots = placed[:1] + [dot for a, b in pairwise(placed) for dot in _line(*a, *b)]
        for x, y in dots:
            cell = (x // 2, y // 4)
            cells[cell] = cells.get(cell, 0) | DOTS[x % 2][y % 4]
            owner[cell] = style  # a later series wins a shared cell: eval points stay visible
    lines = []
    for row in range(height):
        label = _axis_label(high_y) if row == 0 else _axis_label(low_y) if row == height - 1 else ""
        text = Text(f"{label:>{AXIS - 1}}│", style="dim", no_wrap=True, end="")
        for column in range(plot_width):
            bits = cells.get((column, row))
            if bits:
                text.append(chr(0x2800 + bits), style=owner[(column, row)])
            else:
                text.append(" ")
        lines.append(text)
    return lines


class LossChart(Widget):
    """Training loss and evaluation loss by step, from the trainer's progress events."""

    LOSS_STYLE = "cyan"
    EVAL_STYLE = "magenta"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.loss: list[Point] = []
        self.eval_loss: list[Point] = []
        self.note = "no loss yet"

    def clear(self, note: str = "no loss yet") -> None:
        self.loss, self.eval_loss, self.note = [], [], note
        self.refresh()

    def add(self, loss: Sequence[Point] = (), eval_loss: Sequence[Point] = ()) -> None:
        """Append points (step, value); a step seen again replaces the older value."""
        if loss:
            self.loss = _merge(self.loss, loss)
        if eval_loss:
            self.eval_loss = _merge(self.eval_loss, eval_loss)
        if loss or eval_loss:
            self.refresh()

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        title = Text(no_wrap=True, overflow="ellipsis", end="")
        if not self.loss and not self.eval_loss:
            title.append(f"loss: {self.note}", style="dim")
            return title
        if self.loss:
            value = self.loss[-1][1]
            title.append("━ loss ", style=f"bold {self.LOSS_STYLE}")
            title.append(f"{_fmt(value)} ")
        if self.eval_loss:
            value_e = self.eval_loss[-1][1]
            title.append("━ eval ", style=f"bold {self.EVAL_STYLE}")
            title.append(f"{_fmt(value_e)} ")
        steps = [point[0] for point in self.loss + self.eval_loss]
        title.append(f" steps {int(min(steps))}–{int(max(steps))}", style="dim")
        if log_scale([point[1] for point in self.loss + self.eval_loss]):
            title.append(" · log y", style="dim")
        title.truncate(width, overflow="ellipsis")  # a wrapped title pushes the plot down
        lines = [title]
        series = [(self.loss, self.LOSS_STYLE), (self.eval_loss, self.EVAL_STYLE)]
        lines += plot(series, width, max(height - 1, 1))
        return Text("\n").join(lines)


def _merge(old: list[Point], new: Sequence[Point]) -> list[Point]:
    if old and new and new[0][0] > old[-1][0]:
        return old + list(new)  # the usual case: later steps
    merged = {step: value for step, value in old}
    merged.update({step: value for step, value in new})
    return sorted(merged.items())
