"""Plotext charts: the team's episode return against the oracle's (each agent in a row of its
own below), and losses.

Histories arrive downsampled by the trainer (bounded); here they are cut again to one point
per plot column, and a chart only redraws when its data or size changed. A plot becomes the
screen's lines here (ansi_strips), not through Rich's Text.from_ansi and Textual's Content:
those cost more than plotext itself, on a CPU the training process shares.

What a chart shows is read off lines around the plot, never inside it: a legend line above
(plotext's own legend covers the first points, where learning shows), and every series has
a marker of its own, so a terminal without colour (NO_COLOR) still tells them apart.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from rich.ansi import AnsiDecoder
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual_plotext import PlotextPlot

from marl_tui.tui.fmt import SPARK, downsample, num, sparkline

Series = tuple[tuple[float, ...], tuple[float, ...]]
# plotext's colour names and their ANSI numbers (its "yellow" is no colour: "orange" is 3).
ANSI = {"red": 1, "green": 2, "orange": 3, "blue": 4, "magenta": 5, "cyan": 6, "gray+": 7,
        "blue+": 12, "cyan+": 14}
# No series is red: red, and the heavy rule, are the oracle's alone.
AGENT_COLORS = ("cyan", "magenta", "orange", "blue+", "gray+", "cyan+")
TEAM_COLOR = "green"
ORACLE_COLOR = "red"
ORACLE_MARKER = "━"  # plotext's frame is drawn with thin rules: a heavy one is no axis
TEAM_MARKER = "braille"
TEAM_SAMPLE = "⠤⠤"  # how the team's braille line looks in the legend
# The losses: a marker each (braille first: the finest line), for a terminal without colour.
LOSS_MARKERS = (("braille", "⠤⠤"), ("•", "••"), ("+", "++"), ("x", "xx"))


@dataclass
class ReturnData:
    team: Series = ((), ())
    agents: tuple[Series, ...] = ()
    agent_names: tuple[str, ...] = ()
    oracle_team: float | None = None
    episode_length: int = 0
    cooperative: bool = False  # every agent is paid the same share: per-agent lines add nothing
    # The team return the legend names: the status line's figure, given by the screen so the
    # two always agree (None: the last point plotted).
    title_return: float | None = None


@dataclass
class LossData:
    series: dict[str, Series] = field(default_factory=dict)
    algo: str = ""


def loss_keys(series: dict[str, Series], limit: int = 4) -> list[str]:
    """The metrics a person calls losses; others (entropy, grad norms) only if there are none."""
    keys = [k for k in series if "loss" in k.lower() or k.startswith("L_")]
    return (keys or list(series))[:limit]


Y_TICKS_WIDTH = 7  # a y axis's tick labels and its line, e.g. "-167.5k┤"


def nice_step(span: float, count: int) -> float:
    """A step of 1, 2, 2.5 or 5 times a power of ten that cuts span into about count parts."""
    raw = span / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))


def round_ticks(lo: float, hi: float, count: int) -> tuple[list[float], float]:
    """Round values in [lo, hi], about count parts apart (two at least when count allows), and
    their step."""
    for parts in range(max(count, 1), 2 * max(count, 1) + 2):
        step = nice_step(hi - lo, parts)
        ticks = [k * step for k in range(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1)]
        if len(ticks) >= 2:
            break
    return ticks, step


def padded(lo: float, hi: float) -> tuple[float, float]:
    """[lo, hi] and a little room, so that no line runs along the frame (one value: ±10 %)."""
    if not hi > lo:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def tick_labels(ticks: list[float], step: float) -> list[str]:
    """Short round labels: thousands as k and millions as M when the step allows, and only
    the decimals the step needs ("112.5k", "0.25", "-3"); zero is "0" whatever the step."""
    top = max(abs(t) for t in ticks)
    scale, suffix = (1e6, "M") if top >= 1e6 and step >= 1e5 else \
        (1e3, "k") if top >= 1e4 and step >= 100 else (1.0, "")
    scaled = step / scale
    decimals = max(0, -math.floor(math.log10(scaled) + 1e-9))
    if round(scaled * 10 ** decimals, 6) % 1:  # 2.5 × 10^k needs one digit more
        decimals += 1
    return [f"{t / scale:.{decimals}f}{suffix}" if t else "0" for t in ticks]


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




def colored(name: str, base: Style) -> Style:
    """base (the panel's background) in one of plotext's colours, as plotext prints it."""
    return base + Style(color=Color.from_ansi(ANSI[name]))


LegendItem = tuple[str, str, str]  # (sample of the marker, its colour, text)


def legend_layout(items: list[LegendItem], width: int) -> list[list[LegendItem]]:
    """The legend's items packed into lines of `width`: every series is named, on a line of
    its own below when the numbers are long (a chart loses a row of plot for it)."""
    lines: list[list[LegendItem]] = [[]]
    used = 0
    for item in items:
        size = len(item[0]) + 1 + len(item[2])
        if lines[-1] and used + 2 + size > width:
            lines.append([])
            used = 0
        used += (2 if lines[-1] else 0) + size
        lines[-1].append(item)
    return lines


def legend_strips(lines: list[list[LegendItem]], width: int, pad: Style, notes: tuple[str, ...] = ()
                  ) -> list[Strip]:
    """The legend above a plot: each series' marker in its colour, then what it is; the notes
    after the last series where they fit (a note that does not is left off whole)."""
    strips = []
    for k, line in enumerate(lines):
        segments: list[Segment] = []
        used = 0
        for sample, color, text in line:
            lead = "  " if segments else ""
            segments += [Segment(lead, pad), Segment(sample, colored(color, pad)), Segment(f" {text}", pad)]
            used += len(lead) + len(sample) + 1 + len(text)
        for note in notes if k == len(lines) - 1 else ():
            if used + 2 + len(note) > width:
                break
            segments.append(Segment(f"  {note}", pad + Style(dim=True)))
            used += 2 + len(note)
        strips.append(Strip(segments).adjust_cell_length(width, pad))
    return strips


def canvas_style(plot: list[Strip], pad: Style) -> Style:
    """pad on the plot's own background (plotext paints its canvas in the theme's colour), so
    lines added around the plot look part of it."""
    first = next((seg.style for strip in plot for seg in strip if seg.style), None)
    return pad + Style(bgcolor=first.bgcolor) if first is not None and first.bgcolor else pad


def set_axes(plt: Any, xs: list[float], ys: list[float], plot_width: int, plot_rows: int) -> None:
    """One y axis just holding every value in ys, and x the steps shown, both with round tick
    labels (plotext labels values at even spacing: "166666.7"). The y axis does not stretch
    to round ends: rows are few, and an axis from 0 put a team far from its oracle on the
    oracle's row."""
    lo, hi = padded(min(ys), max(ys))
    plt.ylim(lo, hi)
    ticks, step = round_ticks(lo, hi, max(2, plot_rows // 2))
    plt.yticks(ticks, tick_labels(ticks, step))
    x0, x1 = min(xs), max(xs)
    if x1 > x0:
        ticks, step = round_ticks(x0, x1, max(2, plot_width // 14))
        plt.xticks(ticks, tick_labels(ticks, step))


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
        """The chart's lines for the current size and theme; None (and a message) if there is
        no plot."""
        message = self.empty_message()
        if message:
            self._message = Text(message, style="dim", justify="center")
            return None
        self.plt.clear_figure()
        try:
            return self.draw(self.size.width, self.size.height, self.visual_style.rich_style)
        except Exception as exc:  # noqa: BLE001 - a chart must never take the app down
            self._message = Text(f"cannot draw the chart: {exc}", style="red")
            return None

    def plot_strips(self, width: int, height: int, pad: Style) -> list[Strip]:
        """What PlotextPlot.render does before it builds, then our own parse of the output."""
        plt = self.plt
        plt.plotsize(width, height)
        plt._set_size(width, height)
        plt.theme(self._get_plotext_theme_name(self.app.theme))
        return ansi_strips(plt.build(), width, pad)

    def empty_message(self) -> str:
        return ""

    def draw(self, width: int, height: int, pad: Style) -> list[Strip]:
        raise NotImplementedError


# plotext's rows around the data: the frame above and below, and the x ticks' labels.
FRAME_ROWS = 3


class ReturnChart(ChartPanel):
    """The team's return and the oracle's on one axis; each agent in a row of its own below.

    Agents are not drawn on the team's axis: an agent earns a share of the team's return, so
    on a second axis its line could sit on the oracle's and read as beating it. A row each
    (a sparkline, every agent on one shared scale, with its last return and its share of the
    team's) cannot be mistaken for the team, never overlaps another agent, and costs no
    second plot."""

    TITLE = "episode return"
    HINT = ("the team's return per finished episode (⠤) and the oracle's (━), one axis; "
            "below, each agent's return on a scale the agents share")

    def signature(self, d: ReturnData) -> Any:
        xs = d.team[0]
        return (len(xs), xs[-1] if xs else None, d.oracle_team, len(d.agents), d.title_return)

    def empty_message(self) -> str:
        d: ReturnData | None = self._data
        if d is None or not d.team[0]:
            length = f" ({d.episode_length} steps)" if d and d.episode_length else ""
            return f"\n\nno finished episode yet{length}\nthe return of each episode is plotted here"
        return ""

    def draw(self, width: int, height: int, pad: Style) -> list[Strip]:
        d: ReturnData = self._data
        plt = self.plt
        n = self.points()
        x, y = downsample(*_finite(*d.team), n)
        oracle = d.oracle_team if d.oracle_team is not None and math.isfinite(d.oracle_team) else None
        agents = [] if d.cooperative else self.agent_series(d)
        # The plot keeps 4 rows of data at least; agents beyond that room are left off.
        agents = agents[: max(0, height - 1 - FRAME_ROWS - 4)]
        # The oracle first: the learning curve is drawn over it where they meet.
        if oracle is not None:
            lo, hi = (x[0], x[-1]) if x[-1] > x[0] else (x[0] - 1, x[0] + 1)
            plt.plot([lo, hi], [oracle] * 2, color=ORACLE_COLOR, marker=ORACLE_MARKER)
        plt.plot(x, y, color=TEAM_COLOR, marker=TEAM_MARKER)
        team = d.title_return if d.title_return is not None else (d.team[1][-1] if d.team[1] else None)
        items = [(TEAM_SAMPLE, TEAM_COLOR, f"team {num(team)}")]
        if oracle is not None:
            items.append((ORACLE_MARKER * 2, ORACLE_COLOR, f"oracle {num(oracle)}"))
        legend = legend_layout(items, width)
        plot_rows = height - len(legend) - len(agents)
        set_axes(plt, x, y + ([oracle] if oracle is not None else []),
                 width - Y_TICKS_WIDTH, plot_rows - FRAME_ROWS)
        plot = self.plot_strips(width, plot_rows, pad)
        pad = canvas_style(plot, pad)
        notes = ("every agent gets team/N",) if d.cooperative else ("x: env steps",)
        if not agents:
            return [*legend_strips(legend, width, pad, notes), *plot]
        # One scale for every agent's row, named in the legend: rows compare with each other.
        lo, hi = min(min(v) for _, v in agents), max(max(v) for _, v in agents)
        notes += (f"agents {SPARK[0]}{num(lo)} {SPARK[-1]}{num(hi)}",)
        return [*legend_strips(legend, width, pad, notes), *plot,
                *self.agent_strips(agents, (lo, hi), width, pad, team)]

    def agent_series(self, d: ReturnData) -> list[tuple[str, list[float]]]:
        out = []
        for i, (xs, ys) in enumerate(d.agents[: len(AGENT_COLORS)]):
            _, values = _finite(xs, ys)
            if values:
                out.append((d.agent_names[i] if i < len(d.agent_names) else f"agent {i + 1}", values))
        return out

    @staticmethod
    def agent_strips(agents: list[tuple[str, list[float]]], scale: tuple[float, float], width: int,
                     pad: Style, team: float | None) -> list[Strip]:
        """A row per agent: name, sparkline on the scale given, last return and its share of
        the team's last return (when the team's is positive: a share of a loss or of nothing
        says nothing)."""
        name_w = max(len(name) for name, _ in agents)
        tails = []
        for _, values in agents:
            share = f" {values[-1] / team:4.0%}" if team and team > 0 else ""
            tails.append(f" {num(values[-1])}{share}")
        spark_w = max(4, width - name_w - 1 - max(len(t) for t in tails))
        strips = []
        for i, ((name, values), tail) in enumerate(zip(agents, tails, strict=True)):
            style = colored(AGENT_COLORS[i], pad)
            spark = sparkline(values, spark_w, *scale) or SPARK[0]
            strips.append(Strip([Segment(f"{name:<{name_w}} ", pad), Segment(f"{spark:<{spark_w}}", style),
                                 Segment(tail, pad)]).adjust_cell_length(width, pad))
        return strips


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

    def draw(self, width: int, height: int, pad: Style) -> list[Strip]:
        d: LossData = self._data
        plt = self.plt
        n = self.points()
        items: list[LegendItem] = []
        all_x: list[float] = []
        all_y: list[float] = []
        for i, k in enumerate(loss_keys(d.series)):
            x, y = downsample(*_finite(*d.series[k]), n)
            if x:
                marker, sample = LOSS_MARKERS[i % len(LOSS_MARKERS)]
                color = AGENT_COLORS[i % len(AGENT_COLORS)]
                plt.plot(x, y, color=color, marker=marker)
                items.append((sample, color, f"{k} {num(y[-1], 3)}"))
                all_x += x
                all_y += y
        legend = legend_layout(items, width)
        plot_rows = height - len(legend)
        set_axes(plt, all_x, all_y, width - Y_TICKS_WIDTH, plot_rows - FRAME_ROWS)
        plot = self.plot_strips(width, plot_rows, pad)
        return [*legend_strips(legend, width, canvas_style(plot, pad), ("x: env steps",)), *plot]
