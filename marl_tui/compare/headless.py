"""A comparison without a terminal: a line per job start and end, a progress line every
PROGRESS_SECONDS, then the final table (also what `compare RUN_DIR...` prints)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TextIO

from marl_tui.compare.jobs import JobState
from marl_tui.compare.stats import Estimate, Interval
from marl_tui.compare.summary import TEAM_RETURN, AlgoResult, Comparison, Member
from marl_tui.config import ALGO_TITLES
from marl_tui.tui.fmt import DASH, num

PROGRESS_SECONDS = 10.0


def say(stream: TextIO, line: str) -> None:
    # The terminal may have gone away: the jobs go on and the files are still written.
    with contextlib.suppress(OSError, ValueError):
        print(line, file=stream, flush=True)


def job_line(state: JobState) -> str:
    job = state.job
    took = f" after {state.elapsed():.1f} s" if state.elapsed() is not None else ""
    if state.status == "running":
        return f"start    {job.name} -> {job.run_dir}"
    if state.status == "finished":
        return f"done     {job.name}{took}"
    if state.status == "stopped":
        if state.error == "not started":
            return f"skipped  {job.name} (stopped before it started)"
        return f"stopped  {job.name}{took}: resumable (`marl-tui resume {job.run_dir}`)"
    return f"FAILED   {job.name}{took}: {state.error} (log: {job.log})"


def progress_line(members: Sequence[Member]) -> str:
    done = sum(m.status in ("finished", "failed", "stopped") for m in members)
    share = sum(1.0 if m.status == "finished" else m.progress for m in members) / max(1, len(members))
    running = [f"{m.algo}-s{m.seed} {100 * m.progress:.0f}%" for m in members if m.status == "running"]
    queued = sum(m.status == "queued" for m in members)
    parts = [f"[{100 * share:5.1f}%] {done}/{len(members)} runs over"]
    if running:
        parts.append("running: " + ", ".join(running))
    if queued:
        parts.append(f"queued {queued}")
    return " · ".join(parts)


def _ci(ci: Interval | None) -> str:
    return f"[{num(ci.low)}, {num(ci.high)}]" if ci is not None else DASH


def _row(a: AlgoResult, kpi: str) -> str:
    e: Estimate | None = a.final.get(kpi)
    n = len(a.members)
    failed = a.count("failed")
    runs = f"{a.count('finished')}/{n}" + (f" {failed}✗" if failed else "")
    steps = f"{a.steps_to_target:,.0f}" if a.steps_to_target is not None else DASH
    secs = f"≈{a.seconds_to_target:.0f}" if a.seconds_to_target is not None else DASH
    wall = f"{a.wall_seconds:.0f}" if a.wall_seconds is not None else DASH
    return (f"{ALGO_TITLES.get(a.algo, a.algo)[:8]:<8} {runs:>6} {num(e.mean if e else None):>8} "
            f"{num(e.iqm if e else None):>8} {_ci(e.iqm_ci if e else None):>19} {a.reached:>3}/{n:<2} "
            f"{steps:>9} {secs:>5} {wall:>5}")


def final_table(c: Comparison) -> str:
    """At most 80 columns: a row per algorithm, then the probability of improvement."""
    kpi = c.target.kpi if c.target else TEAM_RETURN
    lines = [f"{c.scenario}: final greedy {kpi} over seeds"
             + (f" · target: {c.target.text}" if c.target else "")]
    if c.oracle is not None and kpi in c.oracle.kpis:
        lines[0] += f" ({num(c.oracle.kpis[kpi])} oracle)"
    lines.append(f"{'algo':<8} {'runs':>6} {'mean':>8} {'IQM':>8} {'IQM 95% CI':>19} {'hit':>6} "
                 f"{'steps→hit':>9} {'s→hit':>5} {'wall':>5}")
    lines += [_row(a, kpi) for a in c.algos]
    for i in c.improvements:
        ci = f" {_ci(i.ci)}" if i.ci else ""
        lines.append(f"P({ALGO_TITLES.get(i.x, i.x)} > {ALGO_TITLES.get(i.y, i.y)}) on final team return: "
                     f"{i.probability:.2f}{ci}")
    for a in c.algos:
        for m in a.members:
            if m.status == "failed":
                lines.append(f"FAILED {m.algo}-s{m.seed}: {m.error or (m.data.error if m.data else '?')}")
    return "\n".join(lines)
