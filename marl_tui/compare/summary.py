"""A comparison at one moment: per algorithm, the band of each charted metric over its seeds,
the final scores (mean, IQM, 95 % CI), when the target was reached, wall time; and the
probability that one algorithm improves on another. Built from RunData snapshots, no I/O.

"Final" is the greedy evaluation the run recorded at its latest checkpoint (the stream's
GreedyEpisode: the learned policy without exploration, over every copy).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from marl_tui.compare.jobs import Status
from marl_tui.compare.runs import Evaluation, RunData
from marl_tui.compare.stats import Band, Estimate, Improvement, estimate, improvement, seed_band
from marl_tui.compare.targets import TARGETS, Target, reached_at
from marl_tui.stream.frames import OracleView

TEAM_RETURN = "team_return"


@dataclass(frozen=True)
class Member:
    """One run of the comparison: where it is, what state it is in, what it has written."""

    algo: str
    seed: int
    run_dir: Path
    status: Status
    data: RunData | None  # None until the run directory has its config.toml
    error: str | None = None
    elapsed: float | None = None  # seconds this session has been training it (engines know)

    @property
    def wall_seconds(self) -> float | None:
        recorded = self.data.wall_seconds if self.data is not None else None
        return recorded if recorded is not None and self.status != "running" else self.elapsed

    @property
    def final(self) -> Evaluation | None:
        return self.data.evaluations[-1] if self.data is not None and self.data.evaluations else None

    @property
    def progress(self) -> float:
        if self.data is None:
            return 0.0
        return min(1.0, self.data.env_steps / max(1, self.data.info.total_steps))


def metric_of(ev: Evaluation, metric: str) -> float | None:
    return ev.team_return if metric == TEAM_RETURN else ev.kpis.get(metric)


@dataclass(frozen=True)
class AlgoResult:
    algo: str
    members: tuple[Member, ...]
    final: Mapping[str, Estimate | None]  # metric -> over the seeds with an evaluation
    reached: int  # seeds whose training reached the target
    steps_to_target: float | None  # mean over those seeds
    seconds_to_target: float | None  # ≈ wall x steps-to-target / steps (the run's mean speed)
    wall_seconds: float | None  # mean per run
    bands: Mapping[str, Band]  # charted metric -> mean and band over seeds

    def count(self, *statuses: Status) -> int:
        return sum(m.status in statuses for m in self.members)


@dataclass(frozen=True)
class Comparison:
    scenario: str
    kind: str | None
    oracle: OracleView | None
    target: Target | None
    metrics: tuple[str, ...]  # charted metrics, team return first
    algos: tuple[AlgoResult, ...]
    improvements: tuple[Improvement, ...]  # on the final team return, each pair once

    @property
    def finished(self) -> bool:
        return all(m.status in ("finished", "failed", "stopped") for a in self.algos for m in a.members)


def _grid(members: Sequence[Member], points: int) -> np.ndarray:
    last = max((m.data.env_steps for m in members if m.data is not None), default=0)
    return np.linspace(0.0, float(last), max(2, points))


def _curve(member: Member, metric: str, grid: np.ndarray) -> np.ndarray:
    """The run's training values at the grid points inside the span it has covered, NaN elsewhere."""
    out = np.full(grid.shape, np.nan)
    if member.data is None or metric not in member.data.curves:
        return out
    xs, ys = (np.asarray(a, dtype=float) for a in member.data.curves[metric])
    keep = np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    if xs.size == 0:
        return out
    inside = (grid >= xs[0]) & (grid <= xs[-1])
    out[inside] = np.interp(grid[inside], xs, ys)
    return out


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _algo_result(algo: str, members: tuple[Member, ...], metrics: Sequence[str], grid: np.ndarray,
                 target: Target | None, oracle: OracleView | None) -> AlgoResult:
    finals = [m.final for m in members if m.final is not None]
    final = {metric: estimate([v for ev in finals if (v := metric_of(ev, metric)) is not None])
             for metric in dict.fromkeys((TEAM_RETURN, *metrics))}
    steps, seconds = [], []
    if target is not None and oracle is not None:
        for m in members:
            if m.data is None or target.kpi not in m.data.curves:
                continue
            at = reached_at(*m.data.curves[target.kpi], target, oracle.values)
            if at is None:
                continue
            steps.append(at)
            wall = m.wall_seconds
            if wall is not None and m.data.env_steps:
                seconds.append(wall * at / m.data.env_steps)
    walls = [w for m in members if m.status == "finished" and (w := m.wall_seconds) is not None]
    bands = {metric: seed_band(grid, np.stack([_curve(m, metric, grid) for m in members]))
             for metric in metrics}
    return AlgoResult(algo=algo, members=members, final=final, reached=len(steps),
                      steps_to_target=_mean(steps), seconds_to_target=_mean(seconds),
                      wall_seconds=_mean(walls), bands=bands)


def summarize(scenario: str, members: Sequence[Member], metrics: Sequence[str] = (),
              points: int = 60) -> Comparison:
    """metrics: what to chart besides team return (default: the target's KPI, once known)."""
    datas = [m.data for m in members if m.data is not None and m.data.kind is not None]
    kind = datas[0].kind if datas else None
    oracle = datas[0].oracle if datas else None
    target = TARGETS.get(kind) if kind else None
    charted = tuple(dict.fromkeys((TEAM_RETURN, *(metrics or ([target.kpi] if target else [])))))
    grid = _grid(members, points)
    by_algo: dict[str, list[Member]] = {}
    for m in members:
        by_algo.setdefault(m.algo, []).append(m)
    algos = tuple(_algo_result(a, tuple(ms), charted, grid, target, oracle) for a, ms in by_algo.items())
    finals = {a.algo: [ev.team_return for m in a.members if (ev := m.final) is not None] for a in algos}
    improvements = tuple(improvement(x, finals[x], y, finals[y])
                         for x, y in itertools.combinations(finals, 2) if finals[x] and finals[y])
    return Comparison(scenario=scenario, kind=kind, oracle=oracle, target=target, metrics=charted,
                      algos=algos, improvements=improvements)
