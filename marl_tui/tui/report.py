"""`x` on the dashboard: RUN_DIR/report.md — the moment on screen in words and pictures.

The headline KPIs of the frame on screen against the oracle, the team return chart (plotext
text, readable anywhere) and an SVG of the whole screen beside it. Written atomically.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from marl_tui.config import ALGO_TITLES
from marl_tui.headless.report import kpi_rows, team_return_chart
from marl_tui.train.rundir import atomic_write_bytes
from marl_tui.train.stats import Stats

if TYPE_CHECKING:
    from textual.app import App

    from marl_tui.stream.frames import Frame, Ready
    from marl_tui.tui.session import RunRequest


def write_report(app: App, run_dir: Path, request: RunRequest, frame: Frame, ready: Ready,
                 team_history: tuple[tuple[float, ...], tuple[float, ...]]) -> Path:
    """Write report.md and report-step-N.svg (the screen) into run_dir; returns report.md."""
    step = frame.scene.step
    svg = f"report-step-{step}.svg"
    app.save_screenshot(svg, str(run_dir))
    oracle = ready.oracle
    view = "greedy view (no exploration)" if frame.greedy else "training"
    learned = dict(frame.stats.kpis)
    if frame.stats.team_return is not None:
        learned["team_return"] = frame.stats.team_return
    lines = [
        f"# {request.scenario.name} · {ALGO_TITLES.get(request.algo, request.algo)} · seed {request.resolved_seed}",
        "",
        f"Written {time.strftime('%Y-%m-%d %H:%M')} at {view} step {step:,} "
        f"(env steps {frame.scene.env_steps:,}, {frame.stats.episodes:,} episodes, {frame.stats.updates:,} updates).",
        "",
        f"Reference: {oracle.summary}",
        "",
        "## KPIs (last finished episode; greedy view: mean of the episodes watched) against the oracle",
        "",
        "```",
        *kpi_rows(learned, oracle.kpis | {"team_return": oracle.team_return}),
        "```",
    ]
    chart = team_return_chart(Stats(status="report", team_history=team_history), oracle.team_return)
    if chart:
        lines += ["", "## Team return per episode", "", "```", chart, "```"]
    lines += ["", "## The screen", "", f"![the dashboard at step {step:,}]({svg})", ""]
    path = Path(run_dir) / "report.md"
    atomic_write_bytes(path, "\n".join(lines).encode("utf-8"))
    return path
