"""What `marl-tui train` / `resume` print while training: a rich progress bar with the live
KPIs on a terminal, plain lines without one, or one JSON object per interval (--jsonl).

rich is imported only when the bar is shown.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from marl_tui.config import HEADLINE_KPI, Scenario
from marl_tui.text import printable_lines
from marl_tui.train.stats import Stats

if TYPE_CHECKING:
    from marl_tui.train.run import Run

PROGRESS_SECONDS = 5.0  # plain lines and JSON lines
BAR_SECONDS = 0.25  # the progress bar on a terminal


def fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:,.0f}"


def finite(x: Any) -> Any:
    """JSON has no NaN/inf: they become null."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def json_safe(d: dict[str, float]) -> dict[str, Any]:
    return {k: finite(v) for k, v in d.items()}


def progress_line(stats: Stats, scenario: Scenario, oracle_kpis: dict[str, float],
                  oracle_return: float) -> str:
    # Batched steps overshoot the budget by part of a step: never "100.1%".
    pct = min(100.0, 100.0 * stats.env_steps / max(stats.total_steps, 1))
    key = HEADLINE_KPI[scenario.kind]
    kpi = stats.kpis.get(key)
    parts = [
        f"[{pct:5.1f}%] step {stats.env_steps:,}/{stats.total_steps:,}",
        f"episodes {stats.episodes:,}",
        f"team return {fmt(stats.team_return)} (oracle {fmt(oracle_return)})",
        f"{key} {fmt(kpi)} (oracle {fmt(oracle_kpis.get(key))})",
        f"{stats.steps_per_second:,.0f} steps/s" if stats.steps_per_second else "— steps/s (first second)",
    ]
    return " · ".join(parts)


def progress_json(stats: Stats) -> str:
    return json.dumps(
        {
            "env_steps": stats.env_steps, "total_steps": stats.total_steps,
            "episodes": stats.episodes, "updates": stats.updates,
            "team_return": finite(stats.team_return),
            "steps_per_second": round(stats.steps_per_second, 1),
            "kpis": json_safe(stats.kpis),
            "metrics": json_safe(stats.metrics),
        }
    )


def is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError, AttributeError):
        return False


class Out:
    """Prints that never raise: after SIGHUP the terminal is gone and writes fail (EIO)."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = sys.stdout if stream is None else stream
        self.alive = True

    def say(self, line: str, raw: bool = False) -> None:
        """Print to the output; user-supplied text in it is made printable unless `raw` (our own
        colours: the chart)."""
        self._write(self.stream, line if raw else printable_lines(line))

    def err(self, line: str) -> None:
        self._write(sys.stderr, printable_lines(line))

    def _write(self, stream: TextIO, line: str) -> None:
        try:
            print(line, file=stream, flush=True)
        except (OSError, ValueError):
            if stream is self.stream:
                self.alive = False


class Progress:
    """Progress shown while training: plain lines, JSON lines, or a rich bar on a terminal."""

    def __init__(self, out: Out, trainer: Run, jsonl: bool) -> None:
        self.out, self.trainer, self.jsonl = out, trainer, jsonl
        self.bar: Any = None
        self.closed = False
        self.last = time.monotonic()
        self.shown_steps = -1  # env steps of the last plain line (none yet)
        tty = False
        with contextlib.suppress(Exception):
            tty = out.stream.isatty()
        if tty and not jsonl and os.environ.get("TERM") != "dumb":
            self._start_bar()

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress
        from rich.table import Column

        console = Console(file=self.out.stream)
        # Three columns short of the edge: a full-width last line leaves the cursor at the margin,
        # where the terminal's echo of ^C starts a new line and the bar's redraw lands one off.
        console.width = max(console.width - 3, 20)
        self.bar = RichProgress(
            TextColumn("[bold]{task.percentage:>5.1f}%"), BarColumn(bar_width=24),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"), TimeRemainingColumn(),
            # The live KPIs wrap under themselves on a narrow terminal instead of being cut.
            TextColumn("{task.fields[live]}", table_column=Column(no_wrap=False, ratio=1)),
            console=console, auto_refresh=False, transient=False,
        )
        self.task = self.bar.add_task("train", total=self.trainer.total_steps, live="")
        self.bar.start()

    def tick(self, final: bool = False) -> None:
        if self.closed:
            return
        now = time.monotonic()
        stats = self.trainer.stats
        if self.bar is not None:
            if now - self.last < BAR_SECONDS and not final:
                return
            self.last = now
            key = HEADLINE_KPI[self.trainer.scenario.kind]
            o = self.trainer.oracle
            live = (f"return {fmt(stats.team_return)} (oracle {fmt(o.team_return)}) · "
                    f"{key} {fmt(stats.kpis.get(key))} (oracle {fmt(o.kpis.get(key))}) · "
                    f"{stats.steps_per_second:,.0f} steps/s")
            try:
                self.bar.update(self.task, completed=stats.env_steps, live=live)
                self.bar.refresh()
            except (OSError, ValueError):
                self.out.alive = False
            return
        # A line every PROGRESS_SECONDS or every tenth of the budget, whichever comes first, and
        # one at the end: a run of a few seconds shows its progress too.
        tenth = stats.env_steps * 10 // max(stats.total_steps, 1) > self.shown_steps * 10 // max(stats.total_steps, 1)
        if not (final or tenth or now - self.last >= PROGRESS_SECONDS) or stats.env_steps == self.shown_steps:
            return
        self.last, self.shown_steps = now, stats.env_steps
        o = self.trainer.oracle
        self.out.say(progress_json(stats) if self.jsonl else
                     progress_line(stats, self.trainer.scenario, o.kpis, o.team_return))

    def close(self) -> None:
        self.tick(final=True)
        if self.bar is not None:
            with contextlib.suppress(Exception):
                self.bar.stop()
            self.bar = None
        self.closed = True


class EvaluationProgress:
    """The final evaluation as a phase: a rich bar on a terminal, a plain line every few seconds
    otherwise, JSON lines with --jsonl."""

    def __init__(self, out: Out, steps: int, jsonl: bool) -> None:
        self.out, self.steps, self.jsonl = out, steps, jsonl
        self.bar: Any = None
        self.last = time.monotonic()
        if is_tty(out.stream) and not jsonl and os.environ.get("TERM") != "dumb":
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn
            from rich.progress import Progress as RichProgress

            console = Console(file=out.stream)
            console.width = max(console.width - 3, 20)
            self.bar = RichProgress(TextColumn("evaluating"), BarColumn(bar_width=24),
                                    TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
                                    console=console, auto_refresh=False, transient=True)
            self.task = self.bar.add_task("evaluate", total=steps)
            self.bar.start()

    def tick(self, done: int) -> None:
        now = time.monotonic()
        if self.bar is not None:
            if now - self.last >= BAR_SECONDS:
                self.last = now
                try:
                    self.bar.update(self.task, completed=done)
                    self.bar.refresh()
                except (OSError, ValueError):
                    self.out.alive = False
            return
        if now - self.last >= PROGRESS_SECONDS:
            self.last = now
            self.out.say(json.dumps({"phase": "evaluation", "step": done, "steps": self.steps}) if self.jsonl else
                         f"evaluating: step {done:,}/{self.steps:,}")

    def close(self) -> None:
        if self.bar is not None:
            with contextlib.suppress(Exception):
                self.bar.stop()
            self.bar = None
