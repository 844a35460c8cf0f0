"""Many agents: speed, memory and learning quality as the number of stores N grows.

Pricing with 3, 10, 30 and 100 stores and fulfillment with 10, 30 and 100 stores, each algorithm
(MADDPG with its full critics and with the mean-field one, MAPPO, QMIX) at its default settings
for a fixed budget of env steps, one run per process (so peak memory is that run's), one torch
thread. Reported: env steps/s (wall and CPU), peak resident memory, and the greedy policy's
headline KPI after the budget (one episode of every copy, as the learning table evaluates).

The scenarios are the presets with more stores, built in code: scenario files stop at 64
agents. Pricing keeps the preset's total cross-price effect, g = 1 / (N - 1) (so (N-1) g = 1, as
3 stores with g = 0.5), which keeps the Nash price at 33.33 for every N; fulfillment keeps the
preset's 10 store positions and draws the others uniformly in its area (seed 0).

A run stops early at --max-seconds (the table says so): MADDPG's full critics grow as N^2 per
critic on pricing, where every store observes every price.

    python benchmarks/many_agents.py
    python benchmarks/many_agents.py --only pricing:30:maddpg-mf --max-seconds 60
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

SIZES = {"pricing": (3, 10, 30, 100), "fulfillment": (10, 30, 100)}
# name in the table -> (algorithm, hyperparameter overrides)
LEARNERS = {"maddpg": ("maddpg", {}), "maddpg-mf": ("maddpg", {"critic": "mean_field"}),
            "mappo": ("mappo", {}), "qmix": ("qmix", {})}
BUDGET = {"maddpg": 60_000, "maddpg-mf": 60_000, "mappo": 300_000, "qmix": 60_000}


def scenario_with(kind: str, n: int):  # -> marl_tui.config.Scenario
    import torch

    from marl_tui.config import load_scenario

    sc = load_scenario(kind)
    if kind == "pricing":
        model = dataclasses.replace(sc.model, g=1.0 / (n - 1))
    else:
        given = [list(p) for p in sc.model.positions][:n]
        gen = torch.Generator().manual_seed(0)
        extra = (torch.rand(max(0, n - len(given)), 2, generator=gen) * sc.model.area).tolist()
        model = dataclasses.replace(sc.model, positions=given + [[round(x, 3), round(y, 3)] for x, y in extra])
    return sc.with_overrides(agents=n, model=model, name=f"{kind}-{n}")


def child(kind: str, n: int, learner: str, steps: int, max_seconds: float) -> dict:
    import torch

    torch.set_num_threads(1)
    from marl_tui.config import HEADLINE_KPI
    from marl_tui.errors import UserError
    from marl_tui.train.build import build_run
    from marl_tui.train.run import Callback, Run
    from marl_tui.train.run_config import RunConfig

    class Deadline(Callback):
        def on_step(self, run: Run, outcome: object) -> None:
            if time.perf_counter() - started > max_seconds:
                run.controls.stop()

    algo, overrides = LEARNERS[learner]
    row = {"scenario": kind, "agents": n, "learner": learner, "budget": steps}
    try:
        run = build_run(RunConfig(scenario=scenario_with(kind, n), algo=algo, seed=0, steps=steps,
                                  overrides=overrides), extra=[Deadline()])
    except UserError as exc:  # the memory budget refuses it
        return row | {"refused": str(exc)}
    started, cpu = time.perf_counter(), time.process_time()
    run.run()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    kpis = run.evaluate(episodes=1) or {}
    key = HEADLINE_KPI[kind]
    best = run.oracle.kpis.get(key)
    learned = kpis.get(key)
    pct = 100 * learned / best if learned is not None and best not in (None, 0) and not math.isnan(best) else None
    return row | {
        "env_steps": run.env_steps, "stopped_early": run.status == "stopped", "copies": run.env.n_envs,
        "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "steps_per_second": round(run.env_steps / wall, 1),
        "steps_per_cpu_second": round(run.env_steps / cpu, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "kpi": key, "learned": learned, "oracle": best, "pct_of_oracle": pct, "kpis": kpis,
    }


def fmt(x: float | None, spec: str = ",.0f") -> str:
    return "—" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[], help="KIND:N:LEARNER (repeatable)")
    ap.add_argument("--max-seconds", type=float, default=90.0, help="wall seconds a run may take")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiply every budget by this")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "many_agents.json")
    args = ap.parse_args()
    if args.child:
        kind, n, learner, steps, cap = args.child
        print(json.dumps(child(kind, int(n), learner, int(steps), float(cap)), default=str))
        return
    jobs = ([(k, int(n), a) for k, n, a in (o.split(":") for o in args.only)] if args.only else
            [(k, n, a) for k, sizes in SIZES.items() for n in sizes for a in LEARNERS])
    print(f"{'scenario':<12}{'N':>4} {'learner':<10}{'env steps':>10}{'steps/s':>9}{'/CPU s':>9}"
          f"{'peak MiB':>9}  {'KPI':<20}{'learned':>9}{'oracle':>9}{'%':>7}", flush=True)
    rows = []
    for kind, n, learner in jobs:
        steps = int(BUDGET[learner] * args.steps_scale)
        done = subprocess.run([sys.executable, __file__, "--child", kind, str(n), learner, str(steps),
                               str(args.max_seconds)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            row = {"scenario": kind, "agents": n, "learner": learner, "failed": done.stderr.strip()[-400:]}
        else:
            row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        if "refused" in row or "failed" in row:
            print(f"{kind:<12}{n:>4} {learner:<10} {row.get('refused') or row['failed']}", flush=True)
        else:
            early = " (stopped at --max-seconds)" if row["stopped_early"] else ""
            print(f"{kind:<12}{n:>4} {learner:<10}{row['env_steps']:>10,}{fmt(row['steps_per_second']):>9}"
                  f"{fmt(row['steps_per_cpu_second']):>9}{fmt(row['peak_rss_mib']):>9}  {row['kpi']:<20}"
                  f"{fmt(row['learned'], ',.4g'):>9}{fmt(row['oracle'], ',.4g'):>9}"
                  f"{fmt(row['pct_of_oracle'], '.1f'):>7}{early}", flush=True)
        meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                "load_average": os.getloadavg(), "budgets": BUDGET, "steps_scale": args.steps_scale,
                "max_seconds": args.max_seconds}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"meta": meta, "runs": rows}, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
