"""Plotext charts: episode return per agent and team (with the oracle's line), and losses.

Histories arrive downsampled by the trainer (bounded); here they are cut again to one point
per plot column, and a chart only redraws when its data or size changed. A plot becomes the
screen's lines here (ansi_strips), not through Rich's Text.from_ansi and Textual's Content:
those cost more than plotext itself, on a CPU the training process shares.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from rich.ansi import AnsiDecoder
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual_plotext import PlotextPlot

from marl_tui.tui.fmt import downsample, num

Series = tuple[tuple[float, ...], tuple[float, ...]]
AGENT_COLORS = ("cyan", "magenta", "yellow", "blue", "white", "orange")


@dataclass
class ReturnData:
    team: Series = ((), ())
    agents: tuple[Series, ...] = ()
    agent_names: tuple[str, ...] = ()
    oracle_team: float | None = None
    episode_length: int = 0
    cooperative: bool = False  # every agent is paid the same share: per-agent lines add nothing


@dataclass
class LossData:
    series: dict[str, Series] = field(default_factory=dict)
    algo: str = ""


def loss_keys(series: dict[str, Series], limit: int = 4) -> list[str]:
    """The metrics a person calls losses; others (entropy, grad norms) only if there are none."""
    keys = [k for k in series if "loss" in k.lower() or k.startswith("L_")]
    return (keys or list(series))[:limit]


Y_TICKS_WIDTH = 10  # a y axis's tick labels and its line, e.g. "-167028.6┤"


def fit_title(parts: list[str], width: int) -> str:
    """As many of the parts as fit in width, joined by " · " (plotext drops a title too wide)."""
    title = ""
    for part in parts:
        longer = f"{title} · {part}" if title else part
        if len(longer) > width:
            break
        title = longer
    return title or (parts[0][: max(width, 0)] if parts else "")


SGR = re.compile(r"(\x1b\[[0-9;]*m)")
RESET = "\x1b[0m"


@lru_cache(maxsize=256)
def sgr_style(codes: str) -> Style:
    """The style a run of SGR escape codes (since the last reset) sets, as Rich reads it."""
    text = AnsiDecoder().decode_line(codes + "x")
    return Style.combine(span.style for span in text.spans if isinstance(span.style, Style))


def ansi_strips(ansi: str, width: int, pad: Style) -> list[Strip]:
    """Lines of SGR-coloured text (what plotext prints) as Strips `width` cells wide (padded
    in `pad`). Plotext colours every cell itself."""
    strips = []
    for line in ansi.removesuffix("\n").split("\n"):
        segments = []
        codes = ""
        for part in SGR.split(line):
            if not part:
                continue
            if part.startswith("\x1b["):
                codes = "" if part == RESET else codes + part
            else:
                segments.append(Segment(part, sgr_style(codes)))
        strips.append(Strip(segments).adjust_cell_length(width, pad))
    return strips


def _finite(xs: Any, ys: Any) -> tuple[list[float], list[float]]:
    out_x, out_y = [], []
    for x, y in zip(xs, ys, strict=False):
        if math.isfinite(y):
            out_x.append(x)
            out_y.append(y)
    return out_x, out_y


class ChartPanel(PlotextPlot):
    can_focus = True
    TITLE = ""
    HINT = ""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="panel chart")
        self.border_title = self.TITLE
        self._data: Any = None
        self._signature: Any = None
        self._drawn_for: Any = None  # (signature, size, theme) of the lines below
        self._lines: list[Strip] | None = None  # the plot, or None: a message instead
        self._message = Text("")

    def set_data(self, data: Any) -> bool:
        """Store new data; repaint only if it differs from what is drawn. True if repainted."""
        sig = self.signature(data)
        if sig == self._signature:
            return False
        self._signature = sig
        self._data = data
        self.refresh()
        return True

    def signature(self, data: Any) -> Any:
        raise NotImplementedError

    def points(self) -> int:
        return max(8, self.size.width - Y_TICKS_WIDTH)

    def render_line(self, y: int) -> Strip:
        """The plot line by line; a message ("no update yet", a failure) is rendered as usual."""
        key = (self._signature, self.size, self.app.theme)
        if key != self._drawn_for:
            self._drawn_for = key
            self._lines = self.draw_plot()
        if self._lines is None:
            return super().render_line(y)
        if y < len(self._lines):
            return self._lines[y]
        return Strip.blank(self.size.width, self.visual_style.rich_style)

    def render(self) -> Any:
        return self._message

    def draw_plot(self) -> list[Strip] | None:
        """Plot the data for the current size and theme; None (and a message) if there is no plot."""
        message = self.empty_message()
        if message:
            self._message = Text(message, style="dim", justify="center")
            return None
        plt = self.plt
        plt.clear_figure()
        width, height = self.size
        try:
            self.plot(plt)
            # What PlotextPlot.render does before it builds, then our own parse of the output.
            plt.plotsize(width, height)
            plt._set_size(width, height)
            plt.theme(self._get_plotext_theme_name(self.app.theme))
            return ansi_strips(plt.build(), width, self.visual_style.rich_style)
        except Exception as exc:  # noqa: BLE001 - a chart must never take the app down
            self._message = Text(f"cannot draw the chart: {exc}", style="red")
            return None

    def empty_message(self) -> str:
        return ""

    def title_room(self, y_axes: int) -> int:
        """Columns a title may take: plotext centres it on the plot area (the panel less its
        border and each y axis's tick labels) and drops it when it does not fit there."""
        return self.size.width - 4 - Y_TICKS_WIDTH * y_axes

    def plot(self, plt: Any) -> None:
        raise NotImplementedError


class ReturnChart(ChartPanel):
    TITLE = "episode return"
    HINT = "return of each finished episode per agent and for the team; ─ the oracle's team return"

    def signature(self, d: ReturnData) -> Any:
        xs = d.team[0]
        return (len(xs), xs[-1] if xs else None, d.oracle_team, len(d.agents))

    def empty_message(self) -> str:
        d: ReturnData | None = self._data
        if d is None or not d.team[0]:
            length = f" ({d.episode_length} steps)" if d and d.episode_length else ""
            return f"\n\nno finished episode yet{length}\nthe return of each episode is plotted here"
        return ""

    def plot(self, plt: Any) -> None:
        d: ReturnData = self._data
        n = self.points()
        x, y = downsample(*_finite(*d.team), n)
        # The oracle first: the learning curves are drawn over it where they meet it.
        if d.oracle_team is not None and math.isfinite(d.oracle_team) and x:
            lo, hi = (x[0], x[-1]) if x[-1] > x[0] else (x[0] - 1, x[0] + 1)
            plt.plot([lo, hi], [d.oracle_team] * 2, label="oracle (team)", color="red", marker="-")
        if not d.cooperative:  # per agent on the right axis: a share of the team's scale
            for i, (xs, ys) in enumerate(d.agents[:6]):
                ax, ay = downsample(*_finite(xs, ys), n)
                if ax:
                    name = d.agent_names[i] if i < len(d.agent_names) else f"agent {i + 1}"
                    plt.plot(ax, ay, label=f"{name} (right)", color=AGENT_COLORS[i % len(AGENT_COLORS)],
                             marker="braille", yside="right")
        plt.plot(x, y, label="team", color="green", marker="braille")
        last = d.team[1][-1] if d.team[1] else None
        parts = [f"team {num(last)}", f"oracle {num(d.oracle_team)}"]
        plt.title(fit_title(parts + (["every agent gets team/N"] if d.cooperative else []),
                            self.title_room(y_axes=1 if d.cooperative else 2)))
        plt.xlabel("env steps")


class LossChart(ChartPanel):
    TITLE = "losses"
    HINT = "the learner's losses after each update (critic/value and actor/policy, TD)"

    def signature(self, d: LossData) -> Any:
        keys = loss_keys(d.series)
        return tuple((k, len(d.series[k][0]), d.series[k][0][-1] if d.series[k][0] else None)
                     for k in keys) or d.algo

    def empty_message(self) -> str:
        d: LossData | None = self._data
        if d is None:
            return "\n\nno update yet"
        if d.algo in ("random", "oracle"):
            return f"\n\nthe {d.algo} baseline does not learn:\nno losses to plot"
        if not any(d.series[k][0] for k in loss_keys(d.series)):
            return "\n\nno update yet: losses appear after the first learning step"
        return ""

    def plot(self, plt: Any) -> None:
        d: LossData = self._data
        n = self.points()
        last = []
        for i, k in enumerate(loss_keys(d.series)):
            x, y = downsample(*_finite(*d.series[k]), n)
            if x:
                plt.plot(x, y, label=k, color=AGENT_COLORS[i % len(AGENT_COLORS)], marker="braille")
                last.append(f"{k} {num(y[-1], 3)}")
        plt.title(fit_title(last, self.title_room(y_axes=1)))
        plt.xlabel("env steps")
