"""The episode-return and loss charts read right: team and oracle on one round axis, the
oracle's style its own, the legend outside the plot, series told apart without colour."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from rich.segment import Segment
from textual.app import App, ComposeResult

from marl_tui.tui.fmt import num, sparkline, tall_sparkline
from marl_tui.tui.widgets.charts import (
    ORACLE_MARKER,
    LossChart,
    LossData,
    ReturnChart,
    ReturnData,
    nice_step,
    round_ticks,
    tick_labels,
)

SIZE = (80, 16)  # one chart, as tall as the dashboard gives it (14 rows) and a little more


def curve(start: float, end: float, n: int = 60, wobble: float = 0.0) -> tuple[float, ...]:
    """A deterministic learning curve from start to end with a little regular noise."""
    return tuple(start + (end - start) * k / (n - 1) + wobble * math.sin(1.7 * k) for k in range(n))


STEPS = tuple(float(100 * (k + 1)) for k in range(60))

# Numbers as a random-baseline pricing run shows them: an agent's return is a third of the
# team's, and on a second axis store 3's line sat on the oracle's.
PRICING = ReturnData(
    team=(STEPS, curve(110_810, 131_000, wobble=2_500)),
    agents=((STEPS, curve(40_469, 46_000, wobble=900)), (STEPS, curve(36_221, 43_000, wobble=900)),
            (STEPS, curve(34_098, 42_000, wobble=900))),
    agent_names=("store 1", "store 2", "store 3"),
    oracle_team=166_666.7, episode_length=25, title_return=130_420.0,
)
WAREHOUSE = ReturnData(
    team=(STEPS, curve(2_011, 5_200, wobble=300)),
    agents=((STEPS, curve(-80.3, 1_900, wobble=120)), (STEPS, curve(900, 1_700, wobble=120)),
            (STEPS, curve(1_191, 1_600, wobble=120))),
    agent_names=("warehouse 1", "warehouse 2", "warehouse 3"),
    oracle_team=6_368.0, episode_length=48,
)


class ChartApp(App[None]):
    """One chart alone, as wide and tall as the dashboard's."""

    CSS = "ReturnChart, LossChart { height: 14; border: round white; }"

    def __init__(self, chart: ReturnChart | LossChart, data: Any) -> None:
        super().__init__()
        self.chart = chart
        self.data = data

    def compose(self) -> ComposeResult:
        yield self.chart

    def on_mount(self) -> None:
        self.chart.set_data(self.data)


async def rendered(data: ReturnData | LossData, monkeypatch: Any, no_color: bool = False,
                   size: tuple[int, int] = SIZE) -> list[list[Segment]]:
    """The chart's lines as segments, as the screen would show them."""
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    chart = ReturnChart() if isinstance(data, ReturnData) else LossChart()
    app = ChartApp(chart, data)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        assert app.no_color == no_color
        return [list(chart.render_line(y)) for y in range(chart.size.height)]


def text(line: list[Segment]) -> str:
    return "".join(s.text for s in line)


def plot_rows(lines: list[list[Segment]]) -> range:
    """The rows inside plotext's frame (┌ … └)."""
    texts = [text(line) for line in lines]
    top = next(k for k, t in enumerate(texts) if "┌" in t)
    bottom = next(k for k, t in enumerate(texts) if "└" in t)
    return range(top + 1, bottom)


def y_labels(lines: list[list[Segment]]) -> tuple[list[str], list[str]]:
    """Tick labels left of the plot's frame and any right of it."""
    left, right = [], []
    for k in plot_rows(lines):
        t = text(lines[k])
        m = re.match(r"\s*(\S*)[┤│]", t)
        if m and m.group(1):
            left.append(m.group(1))
        tail = t[t.rfind("│") + 1:] if "│" in t[1:] else ""
        right += [w for w in re.split(r"[\s├┤]+", tail) if w]
    return left, right


def significant_digits(label: str) -> int:
    digits = re.sub(r"[^0-9]", "", label).lstrip("0")
    return len(digits.rstrip("0")) if "." not in label else len(digits)


@pytest.mark.parametrize("data", [PRICING, WAREHOUSE], ids=["pricing", "warehouse"])
async def test_team_and_oracle_share_one_round_axis(data: ReturnData, monkeypatch: Any) -> None:
    lines = await rendered(data, monkeypatch)
    left, right = y_labels(lines)
    assert right == [], "no second (right) axis"
    assert len(left) >= 2
    assert all(significant_digits(label) <= 3 for label in left), left
    # the axis holds the oracle: the oracle's rule is inside the plot
    assert any(ORACLE_MARKER in text(lines[k]) for k in plot_rows(lines))


@pytest.mark.parametrize("data", [PRICING, WAREHOUSE], ids=["pricing", "warehouse"])
async def test_the_oracle_looks_like_no_other_series(data: ReturnData, monkeypatch: Any) -> None:
    lines = await rendered(data, monkeypatch)
    oracle_colors = {s.style.color for line in lines for s in line if ORACLE_MARKER in s.text}
    assert len(oracle_colors) == 1 and None not in oracle_colors
    others = {s.style.color for line in lines for s in line
              if s.text.strip() and ORACLE_MARKER not in s.text and s.style and s.style.color}
    assert oracle_colors.isdisjoint(others)
    assert sum(ORACLE_MARKER in text(line) for line in lines) == 2  # the legend and the plot


@pytest.mark.parametrize("data", [PRICING, WAREHOUSE], ids=["pricing", "warehouse"])
async def test_legend_sits_outside_the_plot(data: ReturnData, monkeypatch: Any) -> None:
    lines = await rendered(data, monkeypatch)
    inside = " ".join(text(lines[k]) for k in plot_rows(lines))
    for word in ("team", "oracle", "store", "warehouse"):
        assert word not in inside
    legend = text(lines[0])
    assert "team" in legend and "oracle" in legend
    # the legend names the team return the screen gave (the status line's), else the last point
    shown = data.title_return if data.title_return is not None else data.team[1][-1]
    assert f"team {num(shown)} " in legend


async def test_each_agent_gets_a_row_of_its_own_below_the_plot(monkeypatch: Any) -> None:
    lines = await rendered(PRICING, monkeypatch)
    below = [text(line) for line in lines[plot_rows(lines).stop + 1:]]
    for name in PRICING.agent_names:
        assert sum(t.startswith(name) for t in below) == 1
    assert all("%" in t for t in below if t.startswith("store"))  # its share of the team


@pytest.mark.parametrize("data", [PRICING, WAREHOUSE], ids=["pricing", "warehouse"])
async def test_without_colour_series_differ_by_marker(data: ReturnData, monkeypatch: Any) -> None:
    lines = await rendered(data, monkeypatch, no_color=True)
    rows = [text(lines[k]) for k in plot_rows(lines)]
    team = {ch for t in rows for ch in t if 0x2800 < ord(ch) <= 0x28FF}  # braille dots
    assert team and any(ORACLE_MARKER in t for t in rows)
    assert ORACLE_MARKER not in team


async def test_losses_have_a_marker_each_and_a_legend_above(monkeypatch: Any) -> None:
    data = LossData(series={"policy_loss": (STEPS, curve(0.02, -0.001)),
                            "value_loss": (STEPS, curve(0.9, 0.1))}, algo="mappo")
    lines = await rendered(data, monkeypatch, no_color=True)
    inside = "".join(text(lines[k]) for k in plot_rows(lines))
    assert "loss" not in inside
    assert "policy_loss" in text(lines[0]) and "value_loss" in text(lines[0])
    assert "•" in inside and any(0x2800 < ord(ch) <= 0x28FF for ch in inside)
    assert all(significant_digits(label) <= 3 for label in y_labels(lines)[0])


async def test_long_loss_numbers_move_a_series_to_a_second_legend_line(monkeypatch: Any) -> None:
    """Half an 80-column screen and numbers of six significant figures: no series loses its
    name; the plot gives up a row for the second legend line."""
    data = LossData(series={"policy_loss": (STEPS, curve(0.02, -0.00123457)),
                            "value_loss": (STEPS, curve(123456.7, 98765.43))}, algo="mappo")
    lines = await rendered(data, monkeypatch, size=(40, 16))
    legend = [text(line) for line in lines[:plot_rows(lines).start - 1]]
    assert len(legend) == 2
    assert "policy_loss" in legend[0] and "value_loss" in legend[1]


@pytest.mark.parametrize(("lo", "hi", "count", "labels"), [
    (110_810.4, 166_666.7, 3, ["120k", "140k", "160k"]),
    (-80.3, 6_368, 3, ["0", "2500", "5000"]),
    (0.1, 0.9, 4, ["0.2", "0.4", "0.6", "0.8"]),
    (4.5, 5.5, 2, ["4.5", "5.0", "5.5"]),
    (1_200_000, 3_900_000, 3, ["2M", "3M"]),
    (-0.0021, 0.0004, 2, ["-0.002", "0"]),
    (100, 120, 2, ["100", "110", "120"]),
    (0, 10, 4, ["0", "2.5", "5.0", "7.5", "10.0"]),  # a step of 2.5: one decimal more
])
def test_ticks_are_round_and_inside(lo: float, hi: float, count: int, labels: list[str]) -> None:
    ticks, step = round_ticks(lo, hi, count)
    assert lo <= min(ticks) and max(ticks) <= hi
    assert tick_labels(ticks, step) == labels


def test_steps_are_one_two_or_five_times_a_power_of_ten() -> None:
    assert [nice_step(span, 4) for span in (1, 7, 30, 55_000)] == [0.25, 2, 10, 20_000]


# ---------------------------------------------------------------------------- snapshots


@pytest.mark.parametrize(("data", "no_color"), [(PRICING, False), (WAREHOUSE, False), (PRICING, True)],
                         ids=["pricing", "warehouse", "pricing-no-color"])
def test_return_chart_snapshot(data: ReturnData, no_color: bool, snap_compare: Any,
                               monkeypatch: Any) -> None:
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(ChartApp(ReturnChart(), data), terminal_size=SIZE)


def test_a_tall_sparkline_is_the_one_line_sparkline_in_finer_steps() -> None:
    values = [0.0, 1.0, 2.0, 3.0, 4.0]
    assert tall_sparkline(values, 5, 1) == [sparkline(values, 5)]
    # Three lines: 24 eighths a column, the values fill 1, 7, 13, 19 and 24 of them.
    assert tall_sparkline(values, 5, 3) == ["   ▃█", "  ▅██", "▁▇███"]
    assert tall_sparkline([2.0, 2.0], 2, 2) == ["  ", "██"]  # no range: half height
