"""A comparison chart: per algorithm, the mean over seeds (its letter: D MADDPG, P MAPPO, Q QMIX)
and its 95 % band (the band's edges in the lower-case letter), with the reference lines (- the
oracle, ~ a second line such as the collusive price). Characters tell the curves apart, so the
chart reads without colour (NO_COLOR); colours only help.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.strip import Strip
from textual_plotext import PlotextPlot

from marl_tui.compare.stats import Band
from marl_tui.config import ALGO_TITLES
from marl_tui.tui.fmt import humanise, num
from marl_tui.tui.widgets.charts import Y_TICKS_WIDTH, ansi_strips


@dataclass(frozen=True)
class AlgoStyle:
    mark: str  # the mean's character; the band's edges use its lower case
    color: str


ALGO_STYLES = {
    "maddpg": AlgoStyle("D", "cyan"),
    "mappo": AlgoStyle("P", "magenta"),
    "qmix": AlgoStyle("Q", "yellow"),
    "random": AlgoStyle("R", "blue"),
    "oracle": AlgoStyle("O", "white"),
}
LINE_MARKS = ("-", "~", "=")  # reference lines in order: the oracle's first
LINE_COLORS = ("red", "green", "orange")


def style_of(algo: str) -> AlgoStyle:
    return ALGO_STYLES.get(algo, AlgoStyle(algo[:1].upper() or "?", "white"))


def legend(algos: Sequence[str], lines: Sequence[tuple[str, float]]) -> list[str]:
    """The key the charts share: each algorithm's characters, each reference line's."""
    items = [f"{style_of(a).mark}/{style_of(a).mark.lower()} {ALGO_TITLES.get(a, a)} mean/95% band" for a in algos]
    items += [f"{LINE_MARKS[i % len(LINE_MARKS)]} {label} {num(v)}" for i, (label, v) in enumerate(lines)]
    return items


@dataclass(frozen=True)
class ChartData:
    metric: str
    bands: tuple[tuple[str, Band], ...]  # (algorithm, its band), in the table's order
    lines: tuple[tuple[str, float], ...]  # (label, value) reference lines


def _points(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    keep = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]
    return [x for x, _ in keep], [y for _, y in keep]



def fit_title(parts: list[str], width: int) -> str:
    """As many of the parts as fit in width, joined by " · " (plotext drops a title too wide)."""
    title = ""
    for part in parts:
        longer = f"{title} · {part}" if title else part
        if len(longer) > width:
            break
        title = longer
    return title or (parts[0][: max(width, 0)] if parts else "")

class CompareChart(PlotextPlot):
    """One metric of a comparison. Redraws only when its data, size or theme changed."""

    can_focus = True

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="panel compare-chart")
        self._data: ChartData | None = None
        self._drawn_for: Any = None
        self._lines: list[Strip] | None = None
        self._message = Text("")

    def set_data(self, data: ChartData) -> None:
        if data != self._data:
            self._data = data
            self.border_title = humanise(data.metric)
            self.refresh()

    def render(self) -> Any:
        return self._message

    def render_line(self, y: int) -> Strip:
        key = (self._data, self.size, self.app.theme)
        if key != self._drawn_for:
            self._drawn_for = key
            self._lines = self._draw()
        if self._lines is None:
            return super().render_line(y)
        if y < len(self._lines):
            return self._lines[y]
        return Strip.blank(self.size.width, self.visual_style.rich_style)

    def _draw(self) -> list[Strip] | None:
        d = self._data
        if d is None or not any(_points(b.xs, b.mean)[0] for _, b in d.bands):
            self._message = Text("\nno finished episode yet:\neach algorithm's mean over seeds\n"
                                 "and its 95% band appear here", style="dim", justify="center")
            return None
        plt = self.plt
        plt.clear_figure()
        width, height = self.size
        try:
            self._draw_into(plt, d)
            plt.plotsize(width, height)
            plt._set_size(width, height)
            plt.theme(self._get_plotext_theme_name(self.app.theme))
            return ansi_strips(plt.build(), width, self.visual_style.rich_style)
        except Exception as exc:  # noqa: BLE001 - a chart must never take the app down
            self._message = Text(f"cannot draw the chart: {exc}", style="red")
            return None

    def _draw_into(self, plt: Any, d: ChartData) -> None:
        xs_all = [x for _, b in d.bands for x in _points(b.xs, b.mean)[0]]
        lo_x, hi_x = min(xs_all), max(xs_all)
        hi_x = hi_x if hi_x > lo_x else lo_x + 1
        for i, (_, value) in enumerate(d.lines):  # first, so the curves are drawn over them
            plt.plot([lo_x, hi_x], [value, value], marker=LINE_MARKS[i % len(LINE_MARKS)],
                     color=LINE_COLORS[i % len(LINE_COLORS)])
        last = []
        for algo, band in d.bands:
            s = style_of(algo)
            for edge in (band.low, band.high):
                ex, ey = _points(band.xs, edge)
                if ex:
                    plt.plot(ex, ey, marker=s.mark.lower(), color=s.color)
            mx, my = _points(band.xs, band.mean)
            if mx:
                plt.plot(mx, my, marker=s.mark, color=s.color)
                last.append(f"{s.mark} {num(my[-1])}")
        plt.xlim(lo_x, hi_x)
        ticks = [lo_x + k * (hi_x - lo_x) / 4 for k in range(5)]
        plt.xticks(ticks, [num(t, 3) for t in ticks])
        plt.title(fit_title([humanise(d.metric), *last], self.size.width - 4 - Y_TICKS_WIDTH))
        plt.xlabel("env steps")
