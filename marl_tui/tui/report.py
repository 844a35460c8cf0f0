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
    from marl_tui.tui.screens.dashboard import DashboardScreen


def write_report(screen: DashboardScreen) -> Path:
    """Write report.md and report-step-N.svg into the run directory; returns report.md."""
    session, frame = screen.session, screen.frame
    run_dir, ready = session.run_dir, session.source.ready if session.source else None
    if run_dir is None or frame is None or ready is None:
        raise OSError("no run directory or no step on screen yet")
    request = session.request
    step = frame.scene.step
    svg = f"report-step-{step}.svg"
    screen.app.save_screenshot(svg, str(run_dir))
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
    chart = team_return_chart(Stats(status="report", team_history=screen.charts.team.snapshot()),
                              oracle.team_return)
    if chart:
        lines += ["", "## Team return per episode", "", "```", chart, "```"]
    lines += ["", "## The screen", "", f"![the dashboard at step {step:,}]({svg})", ""]
    path = Path(run_dir) / "report.md"
    atomic_write_bytes(path, "\n".join(lines).encode("utf-8"))
    return path
