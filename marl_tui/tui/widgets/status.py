"""The status line: what runs, in which state, how far, how fast, and how far from the oracle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual.widgets import Static

from marl_tui.stream.frames import Frame, Progress
from marl_tui.tui.fmt import DASH, RATE_KPIS, finite, humanise, kpi_value, num
from marl_tui.tui.widgets.panel import Fit

STATE_MARK = {
    "building": ("◌ building", "bold $text-muted"),
    "starting": ("◌ starting", "bold"),
    "running": ("▶ running", "bold green"),
    "paused": ("‖ paused", "bold yellow"),
    "finished": ("✓ finished", "bold cyan"),
    "watching": ("◉ watching", "bold cyan"),
    "stopped": ("■ stopped", "bold"),
    "error": ("✗ error", "bold red"),
}


@dataclass
class StatusInfo:
    """Everything the status line shows, as plain data."""

    scenario: str
    algo: str
    state: str
    frame: Frame | None = None  # the moment on screen: its step and the figures at that step
    progress: Progress | None = None  # counters that tick between frames
    speed: float | None = None  # batched steps/s limit, None = max
    headline: str = ""  # the scenario's headline KPI key
    oracle_kpis: dict[str, float] = field(default_factory=dict)
    oracle_return: float | None = None
    run_dir: str | None = None
    n_envs: int | None = None
    greedy: bool = False  # the greedy evaluation view is on
    episode_hold: bool = False  # the run holds still at every episode's end (o)


def _gap(value: Any, ref: Any) -> str:
    if not (finite(value) and finite(ref)):
        return ""
    diff = value - ref
    if abs(ref) > 1e-12:
        return f" ({num(diff, 3, signed=True)}, {100 * diff / abs(ref):+.1f}%)"
    return f" ({num(diff, 3, signed=True)})"


def speed_label(speed: float | None, short: bool = False) -> str:
    """The speed limit, in steps (each steps every copy) a second."""
    if speed is None:
        return "speed max"
    unit = "step" if speed == 1 else "steps"
    return f"speed {speed:g}/s" if short else f"speed limit {speed:g} {unit}/s"


def _items(info: StatusInfo, short: bool = False) -> list[list[tuple[str, str]]]:
    """The status line's pieces, each a list of (text, style) kept together on one line."""
    f, p = info.frame, info.progress
    label, style = STATE_MARK.get(info.state, (info.state, "bold"))
    style = style.replace("$text-muted", "dim")
    items: list[list[tuple[str, str]]] = [
        [(f"{info.scenario} · {info.algo}", "bold")],
        [(label, style)],
    ]
    if info.greedy:
        items.append([(" GREEDY EVAL ", "reverse bold")])
    if p is None:
        items.append([("building the environment, its oracle and the networks…", "dim")])
        return items
    if f is None:
        items.append([("step —", "bold")])
    else:  # the frame's moment: every panel shows this step
        s = f.stats
        items += [
            [(f"{'greedy step' if f.greedy else 'step'} {f.scene.step:,}", "bold")],
            # Finished episodes (the scenario panel names the one being played).
            [(f"{'eps watched' if short else 'episodes watched'} {s.episodes:,}" if f.greedy else
              f"{'eps done' if short else 'episodes done'} {s.episodes:,}", "")],
            [(f"{'upd' if short else 'updates'} {s.updates:,}", "")],
        ]
        if s.exploration:
            name, value = s.exploration
            items.append([(f"{name} {num(value, 3)}", "")])
        if info.headline:
            value = s.kpis.get(info.headline)
            ref = info.oracle_kpis.get(info.headline)
            gap = _gap(value, ref)
            if info.headline in RATE_KPIS and finite(value) and finite(ref):
                gap = f" ({100 * (value - ref):+.1f} points)"
            elif short and "," in gap:
                gap = " (" + gap.split(", ")[1]
            no_oracle = not info.oracle_kpis  # an external env: nothing knows its best answer
            items.append([("" if short or no_oracle else "gap to oracle: ", ""),
                          (f"{humanise(info.headline)} {kpi_value(info.headline, value)}", "bold"),
                          (" (no oracle)" if no_oracle else f" vs oracle {kpi_value(info.headline, ref)}{gap}", "")])
        if info.oracle_return is not None:
            label = ("greedy return" if f.greedy else "return") if short else \
                ("greedy team return" if f.greedy else "team return")
            versus = f" vs {num(info.oracle_return)}" if finite(info.oracle_return) else ""
            items.append([(f"{label} {num(s.team_return)}{versus}", "")])
    # Live counters, ahead of the frame while running: kept apart, dim.
    total = max(p.total_steps, 1)
    sps = p.steps_per_second if info.state == "running" and p.steps_per_second > 0 else None
    # Batched steps can overshoot the budget by part of a step: never "101%".
    items.append([("live: ", "dim"), (f"{'env' if short else 'env steps'} {p.env_steps:,}/{p.total_steps:,} "
                                      f"({min(100.0, 100 * p.env_steps / total):.0f}%)", "dim")])
    # Throughput counts env steps (every copy); the speed limit counts steps, like "step N".
    items.append([(f"{num(sps, 3) if sps else DASH} {'env/s' if short else 'env steps/s'}", "dim")])
    items.append([(speed_label(info.speed, short), "dim")])
    if info.episode_hold:
        items.append([("holds at episode ends (o)", "bold yellow")])
    return items


def status_text(info: StatusInfo, width: int = 10_000) -> Text:
    """Pack the pieces into as few lines as the width allows; the run directory last."""
    t = Text()
    col = 0
    for item in _items(info, short=width < 100):
        size = sum(len(x) for x, _ in item)
        if col and col + 3 + size > width:
            t.append("\n")
            col = 0
        elif col:
            t.append(" · ", style="dim")
            col += 3
        for x, st in item:
            t.append(x, style=st)
        col += size
    if info.run_dir:
        t.append(f"\nrun directory: {info.run_dir}", style="dim")
    return t


class StatusLine(Static):
    """Two or three lines at the top of the dashboard."""

    DEFAULT_CSS = "StatusLine { height: auto; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(Text(""), id=id)
        self.info: StatusInfo | None = None
        self._last: Text | None = None
        self._lines = 0
        self._width = 0

    def show(self, info: StatusInfo) -> None:
        self.info = info
        key = status_text(info)
        if key != self._last:  # unchanged while paused: no repaint
            self._last = key
            self._draw()

    def _draw(self) -> None:
        """Draw for the current width. The height is set here, and the content is replaced
        without a new layout (layouts are what costs), unless the line count changed."""
        if self.info is None:
            return
        width = self.size.width
        if width <= 0:  # not laid out yet
            self.update(Fit(lambda w, info=self.info: status_text(info, w)))
            return
        text = status_text(self.info, width)
        lines = sum(max(1, -(-len(line) // width)) for line in text.plain.split("\n"))
        if width != self._width:
            self._width, self._lines = width, 0
        # Numbers change length as a run goes: a line that wraps for a moment keeps its
        # height at this width, so the screen is not laid out (and every panel repainted) again.
        if lines > self._lines:
            self._lines = lines
            self.styles.height = lines
        self.update(text, layout=False)

    def on_resize(self) -> None:
        self._draw()

    @property
    def plain(self) -> str:
        """The status as plain text (tests and benchmarks read it)."""
        return self._last.plain if self._last is not None else ""

    @property
    def step(self) -> int | None:
        """The frame's step on screen (tests read it)."""
        if self.info is None or self.info.frame is None:
            return None
        return self.info.frame.scene.step
