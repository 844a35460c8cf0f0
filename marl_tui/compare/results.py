"""A comparison's results files, written into its folder:

- results.json: marl-eval's format (instadeepai/marl-eval; BenchMARL and Mava export it):
  {env: {task: {algorithm: {"run_<seed>": {"step_<i>": {"step_count": int, "<metric>": [..]},
  ..., "absolute_metrics": {"<metric>": [..]}}}}}}. env is the scenario's kind, task its name;
  each step is a checkpoint's greedy evaluation, absolute_metrics the last one. Each list holds
  one value, the mean over every copy of the evaluation episode (the stream keeps no per-copy
  values). "return" is the team return (marl-eval's default metric), then the scenario's KPIs.
- runs.csv: one row per run (status, steps, wall time, target, final values, error).
- summary.csv: per algorithm and metric: seeds, mean, IQM and their 95 % bootstrap CIs.
- improvement.csv: P(X > Y) on the final team return for each pair, with its 95 % CI.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from marl_tui.compare.runs import Evaluation
from marl_tui.compare.stats import Interval
from marl_tui.compare.summary import TEAM_RETURN, Comparison, Member
from marl_tui.compare.targets import reached_at
from marl_tui.train.rundir import atomic_write_bytes

RESULTS_JSON, RUNS_CSV, SUMMARY_CSV, IMPROVEMENT_CSV = "results.json", "runs.csv", "summary.csv", "improvement.csv"
RETURN = "return"  # marl-eval's name for the episode return


def _metrics(ev: Evaluation) -> dict[str, list[float]]:
    """A metric with no finite value (a run that diverged) is left out: JSON has no NaN."""
    values = {RETURN: ev.team_return, **ev.kpis}
    return {k: [v] for k, v in values.items() if math.isfinite(v)}


def marl_eval(comparison: Comparison) -> dict[str, Any]:
    """The marl-eval JSON document of every run that has at least one evaluation."""
    algos: dict[str, Any] = {}
    for result in comparison.algos:
        runs: dict[str, Any] = {}
        for m in sorted(result.members, key=lambda m: m.seed):
            evals = m.data.evaluations if m.data is not None else ()
            if not evals:
                continue
            run: dict[str, Any] = {f"step_{i}": {"step_count": ev.env_steps, **_metrics(ev)}
                                   for i, ev in enumerate(evals, start=1)}
            run["absolute_metrics"] = _metrics(evals[-1])
            runs[f"run_{m.seed}"] = run
        if runs:
            algos[result.algo] = runs
    return {comparison.kind or "unknown": {comparison.scenario: algos}}


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows([["" if v is None else v for v in row] for row in rows])
    return buf.getvalue().encode()


def _ci(ci: Interval | None) -> list[float | None]:
    return [None, None] if ci is None else [ci.low, ci.high]


def _reached(m: Member, comparison: Comparison) -> float | None:
    t, o = comparison.target, comparison.oracle
    if t is None or o is None or m.data is None or t.kpi not in m.data.curves:
        return None
    return reached_at(*m.data.curves[t.kpi], t, o.values)


def runs_csv(comparison: Comparison) -> bytes:
    members = [m for a in comparison.algos for m in a.members]
    kpis = sorted({k for m in members if m.final is not None for k in m.final.kpis})
    header = ["algorithm", "seed", "status", "env_steps", "total_steps", "wall_seconds",
              "target_reached_at", f"final_{TEAM_RETURN}", *(f"final_{k}" for k in kpis), "run_dir", "error"]
    rows = []
    for m in members:
        ev = m.final
        rows.append([m.algo, m.seed, m.status, m.data.env_steps if m.data else None,
                     m.data.info.total_steps if m.data else None, m.wall_seconds, _reached(m, comparison),
                     ev.team_return if ev else None, *((ev.kpis.get(k) if ev else None) for k in kpis),
                     str(m.run_dir), m.error or (m.data.error if m.data else None)])
    return _csv(header, rows)


def summary_csv(comparison: Comparison) -> bytes:
    header = ["algorithm", "metric", "seeds", "mean", "mean_ci_low", "mean_ci_high", "iqm", "iqm_ci_low",
              "iqm_ci_high", "seeds_reached_target", "steps_to_target", "seconds_to_target", "wall_seconds"]
    rows = []
    for a in comparison.algos:
        for metric, e in a.final.items():
            if e is not None:
                rows.append([a.algo, metric, e.n, e.mean, *_ci(e.mean_ci), e.iqm, *_ci(e.iqm_ci), a.reached,
                             a.steps_to_target, a.seconds_to_target, a.wall_seconds])
    return _csv(header, rows)


def improvement_csv(comparison: Comparison) -> bytes:
    rows = [[i.x, i.y, TEAM_RETURN, i.probability, *_ci(i.ci)] for i in comparison.improvements]
    return _csv(["x", "y", "metric", "p_x_better", "ci_low", "ci_high"], rows)


def write_results(folder: Path, comparison: Comparison) -> list[Path]:
    """Write the four files (each atomically); returns their paths."""
    files = {RESULTS_JSON: (json.dumps(marl_eval(comparison), indent=1) + "\n").encode(),
             RUNS_CSV: runs_csv(comparison), SUMMARY_CSV: summary_csv(comparison),
             IMPROVEMENT_CSV: improvement_csv(comparison)}
    for name, data in files.items():
        atomic_write_bytes(folder / name, data)
    return [folder / name for name in files]
