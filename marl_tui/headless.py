"""`marl-tui train`: the same trainer as the app, with no terminal needed.

The trainer runs in a worker thread; the main thread prints progress every few
seconds (plain lines, or JSON lines with --jsonl), writes the run directory, and
at the end evaluates the greedy policy and prints a summary.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from marl_tui.config import HEADLINE_KPI, Scenario
from marl_tui.train.records import Stats
from marl_tui.train.rundir import default_run_dir, init_run_dir, write_json

PROGRESS_SECONDS = 5.0


def fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:,.0f}"


def progress_line(stats: Stats, scenario: Scenario, oracle_kpis: dict[str, float],
                  oracle_return: float) -> str:
    pct = 100.0 * stats.env_steps / max(stats.total_steps, 1)
    key = HEADLINE_KPI[scenario.kind]
    kpi = stats.kpis.get(key)
    parts = [
        f"[{pct:5.1f}%] step {stats.env_steps:,}/{stats.total_steps:,}",
        f"episodes {stats.episodes:,}",
        f"team return {fmt(stats.team_return)} (oracle {fmt(oracle_return)})",
        f"{key} {fmt(kpi)} (oracle {fmt(oracle_kpis.get(key))})",
        f"{stats.steps_per_second:,.0f} steps/s",
    ]
    return " · ".join(parts)


def progress_json(stats: Stats) -> str:
    return json.dumps(
        {
            "env_steps": stats.env_steps, "total_steps": stats.total_steps,
            "episodes": stats.episodes, "updates": stats.updates,
            "team_return": stats.team_return, "steps_per_second": round(stats.steps_per_second, 1),
            "kpis": {k: (None if math.isnan(v) else v) for k, v in stats.kpis.items()},
            "metrics": stats.metrics,
        }
    )


def run_headless(
    scenario: Scenario,
    algo: str,
    steps: int | None,
    seed: int | None,
    n_envs: int | None,
    device: str,
    out: Path | None,
    overrides: dict[str, Any],
    jsonl: bool = False,
    stream: TextIO = sys.stdout,
) -> int:
    from marl_tui.algos.registry import algorithm_class
    from marl_tui.train.trainer import RunConfig, Trainer

    algorithm_class(algo)  # unknown names fail before anything is written
    run_seed = scenario.seed if seed is None else seed
    run_dir = out if out is not None else default_run_dir(scenario.name, algo, run_seed)
    cfg = RunConfig(scenario=scenario, algo=algo, steps=steps, seed=seed, n_envs=n_envs,
                    device=device, overrides=overrides, out_dir=run_dir)
    trainer = Trainer(cfg)  # validates everything before the folder is made
    init_run_dir(trainer, run_dir)

    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    oracle = trainer.oracle
    if not jsonl:
        say(f"marl-tui: training {algo} on {scenario.name} for {trainer.total_steps:,} steps "
            f"({trainer.env.n_envs} copies, seed {run_seed}, {trainer.device}) -> {run_dir}")
        say(f"reference: {oracle.summary}")
    thread = trainer.start_thread()
    started = time.monotonic()
    last = started
    while thread.is_alive():
        thread.join(timeout=0.2)
        if time.monotonic() - last >= PROGRESS_SECONDS and thread.is_alive():
            last = time.monotonic()
            stats = trainer.stats
            say(progress_json(stats) if jsonl else
                progress_line(stats, scenario, oracle.kpis, oracle.team_return))
    wall = time.monotonic() - started
    stats = trainer.stats
    if stats.error:
        print(f"marl-tui: training stopped: {stats.error}", file=sys.stderr, flush=True)
        return 1
    evaluation = trainer.evaluate()
    summary = {
        "scenario": scenario.name, "algo": algo, "seed": run_seed, "steps": stats.env_steps,
        "wall_seconds": round(wall, 3),
        "steps_per_second": round(stats.env_steps / wall, 1) if wall > 0 else None,
        "status": stats.status, "device": str(trainer.device), "envs": trainer.env.n_envs,
        "kpis": evaluation, "training_kpis": stats.kpis, "oracle": oracle.values,
        "oracle_kpis": oracle.kpis, "oracle_team_return": oracle.team_return,
        "hyperparameters": dataclasses.asdict(trainer.hp),
    }
    write_json(run_dir / "summary.json", summary)
    if jsonl:
        say(json.dumps({"summary": str(run_dir / "summary.json")}))
    else:
        say(final_table(evaluation, oracle.kpis | {"team_return": oracle.team_return}, wall, stats))
        say(f"run directory: {run_dir}")
    return 0


def final_table(evaluation: dict[str, float], oracle_kpis: dict[str, float], wall: float,
                stats: Stats) -> str:
    rows = [f"greedy evaluation after {stats.env_steps:,} steps ({wall:.1f} s, "
            f"{stats.env_steps / max(wall, 1e-9):,.0f} steps/s):",
            f"  {'kpi':<22}{'learned':>14}{'oracle':>14}"]
    for k, v in evaluation.items():
        rows.append(f"  {k:<22}{fmt(v):>14}{fmt(oracle_kpis.get(k)):>14}")
    return "\n".join(rows)
