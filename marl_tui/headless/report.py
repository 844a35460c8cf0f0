"""The end of a headless run: the team-return chart, the KPI table, summary.json.

plotext is imported only when a chart is drawn.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marl_tui.config import NASH_BAND_PCT, has_oracle
from marl_tui.headless.output import Out, fmt
from marl_tui.train.rundir import write_json
from marl_tui.train.stats import Stats

if TYPE_CHECKING:
    from marl_tui.train.run import Run


def team_return_chart(stats: Stats, oracle_return: float, color: bool = False,
                      width: int = 72, height: int = 16) -> str | None:
    """Team return per episode over env steps, with the oracle's line (plotext, no Textual)."""
    xs, ys = stats.team_history
    if len(xs) < 2:
        return None
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(width, height)
    if not color:
        plt.theme("clear")
    plt.plot(list(xs), list(ys), label="team return", marker="braille")
    lo, hi = min(ys), max(ys)
    if oracle_return is not None and math.isfinite(oracle_return):
        plt.plot([xs[0], xs[-1]], [oracle_return, oracle_return], label="oracle (exact)", marker="-")
        lo, hi = min(lo, oracle_return), max(hi, oracle_return)
    pad = 0.08 * (hi - lo) if hi > lo else 1.0
    plt.ylim(lo - pad, hi + 2 * pad)  # room for the legend above the lines
    plt.title("team return per episode (training, mean over copies)")
    plt.xlabel("env steps")
    text = plt.build()
    plt.clear_figure()
    return text if color else plt.uncolorize(text)


def reference_of(trainer: Run) -> dict[str, float]:
    """The oracle's KPIs and team return: the column the learned values are compared with."""
    oracle = trainer.oracle
    return oracle.kpis | {"team_return": oracle.team_return}


def target_note(kpi: str, value: float) -> str:
    """What a KPI's target is, where it is a band rather than 'as close to the oracle as can be'."""
    if kpi == "profit_vs_nash" and math.isfinite(value):
        where = "within" if abs(value) <= NASH_BAND_PCT else ("above: collusion" if value > 0 else "below")
        return f"  target ±{NASH_BAND_PCT:g} %: {where}"
    return ""


def kpi_rows(evaluation: dict[str, float], reference: dict[str, float]) -> list[str]:
    """The KPI table: a header, then one row per KPI, learned against the oracle."""
    rows = [f"  {'kpi':<22}{'learned':>14}{'oracle':>14}"]
    rows += [f"  {k:<22}{fmt(v):>14}{fmt(reference.get(k)):>14}{target_note(k, v)}"
             for k, v in evaluation.items()]
    return rows


def final_table(evaluation: dict[str, float], reference: dict[str, float], stats: Stats,
                seconds: float, resumed_at: int = 0, part_seconds: float | None = None) -> str:
    """The KPI table under a line about the whole run: its steps and training seconds over all
    its parts (a resumed run says where this part began and what it took)."""
    head = (f"greedy evaluation after {stats.env_steps:,} steps ({seconds:.1f} s of training, "
            f"{stats.env_steps / max(seconds, 1e-9):,.0f} steps/s")
    if resumed_at and part_seconds is not None:
        head += (f", the whole run; resumed at step {resumed_at:,}, this part took "
                 f"{stats.env_steps - resumed_at:,} steps in {part_seconds:.1f} s")
    return "\n".join([head + "):", *kpi_rows(evaluation, reference)])


def run_summary(trainer: Run, stats: Stats, wall: float, steps_here: int) -> dict[str, Any]:
    """summary.json as the run ends (the ending adds status details and the evaluation)."""
    oracle = trainer.oracle
    return {
        "scenario": trainer.scenario.name, "algo": trainer.run_config.algo, "seed": trainer.seed,
        "steps": stats.env_steps, "total_steps": trainer.total_steps,
        "wall_seconds": round(wall, 3), "wall_seconds_total": round(trainer.elapsed_seconds(), 3),
        "steps_per_second": round(steps_here / wall, 1) if wall > 0 else None,
        "status": stats.status, "device": str(trainer.device), "envs": trainer.env.n_envs,
        "training_kpis": stats.kpis, "has_oracle": has_oracle(trainer.scenario.kind),
        "oracle": oracle.values, "oracle_kpis": oracle.kpis,
        "oracle_team_return": oracle.team_return,
        "hyperparameters": dataclasses.asdict(trainer.hp),
        "checkpoint": str(trainer.last_checkpoint) if trainer.last_checkpoint else None,
        "checkpoint_step": trainer.last_checkpoint_step,
    }


def write_result(path: Path, data: dict[str, Any], o: Out) -> bool:
    """Write summary.json or eval.json; a failure is a warning line, not the end of the run."""
    try:
        write_json(path, data)
    except OSError as exc:
        o.err(f"marl-tui: warning: could not write {path}: {exc.strerror}")
        return False
    return True
