"""Time to target: how long until each algorithm's greedy policy first meets its target.

For every preset with a target (benchmarks/learning.py's) × algorithm at default settings, the
run trains as `marl-tui train` does; a callback pauses it before the first step and every
`budget / --evals` env steps to play the greedy policy for one episode of every copy (an env
of its own seed, as the final evaluation does; greedy play draws no random numbers, so training
goes on exactly as without the callback) and stops the run at the first evaluation that meets
the target. Reported: training wall seconds and process CPU seconds up to that evaluation,
evaluation time excluded (shown beside it), and the env steps. The cap per combination is the
algorithm's default budget × --cap (a run that never meets its target ends there and says so).

Targets are the learning table's (benchmarks/learning.target), except QMIX on pricing: QMIX
learns the team's Q_total and heads for the collusive price by design, so its target is the
mean profit within ±NASH_BAND_PCT of the collusive profit.

    python benchmarks/time_to_target.py                     # one torch thread, then default threads
    python benchmarks/time_to_target.py --threads 1 --only pricing:maddpg
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from learning import ALGOS, CORE, Check, fmt, target

from marl_tui.algos.registry import resolve_hparams
from marl_tui.compare.targets import Target
from marl_tui.config import NASH_BAND_PCT, load_scenario
from marl_tui.train.build import build_run
from marl_tui.train.loop import StepOutcome
from marl_tui.train.run import Callback, Run
from marl_tui.train.run_config import RunConfig

COLLUSIVE = Target("pricing", f"profit within ±{NASH_BAND_PCT:g} % of collusive",
                   near="collusive_profit", tolerance=NASH_BAND_PCT / 100)


def time_target(scenario: str, algo: str) -> tuple[Check, str] | None:
    """(check on (greedy KPIs, oracle values), its text): the learning table's, but QMIX's on
    pricing is the collusive profit (the learning table's asks Nash's exploitability of it)."""
    if scenario == "pricing" and algo == "qmix":
        return (lambda k, o: (COLLUSIVE.met(k[COLLUSIVE.kpi], o), COLLUSIVE.text)), COLLUSIVE.text
    check = target(scenario, algo)
    return None if check is None else (check, "")


class TargetWatch(Callback):
    """Every `every` env steps: greedy evaluation; stops the run the first time it meets `check`.

    Keeps the training clock apart from the evaluations' (wall and process CPU seconds)."""

    def __init__(self, every: int, check: Check) -> None:
        self.every, self.check = every, check
        self.next = every
        self.eval_wall = self.eval_cpu = 0.0
        self.evaluations = 0
        self.reached: tuple[int, float, float] | None = None  # env steps, training wall s, CPU s
        self.goal = ""
        self.last: dict[str, float] = {}

    def on_start(self, run: Run) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        self.evaluate(run)  # the untrained policy: a target met by chance shows as 0 steps

    def on_step(self, run: Run, outcome: StepOutcome) -> None:
        if run.env_steps >= self.next:
            self.next = (run.env_steps // self.every + 1) * self.every
            self.evaluate(run)

    def evaluate(self, run: Run) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        trained = (run.env_steps, wall - self.wall0 - self.eval_wall, cpu - self.cpu0 - self.eval_cpu)
        kpis = run.evaluate(episodes=1)
        self.eval_wall += time.perf_counter() - wall
        self.eval_cpu += time.process_time() - cpu
        self.evaluations += 1
        assert kpis is not None  # nothing asks it to stop
        self.last = kpis
        met, self.goal = self.check(kpis, run.oracle.values)
        if met:
            self.reached = trained
            run.controls.stop()


@dataclass
class Row:
    scenario: str
    algo: str
    threads: int
    copies: int
    target: str
    reached: bool
    env_steps: int  # at the first evaluation that met the target, else the cap reached
    train_wall_s: float  # evaluation excluded
    train_cpu_s: float  # process CPU seconds, evaluation excluded
    eval_wall_s: float  # all evaluations up to then
    evaluations: int
    every: int  # env steps between evaluations
    cap: int
    kpis: dict[str, float]  # the last evaluation's

    @property
    def steps_per_second(self) -> float:
        return self.env_steps / self.train_wall_s if self.train_wall_s > 0 else float("nan")


def time_one(scenario: str, algo: str, seed: int, threads: int, evals: int, cap: float,
             overrides: dict[str, Any], n_envs: int | None = None) -> Row | None:
    spec = time_target(scenario, algo)
    if spec is None:
        return None
    check, text = spec
    sc = load_scenario(scenario)
    budget = int(resolve_hparams(algo, sc, overrides).steps)
    every = max(1, budget // evals)
    torch.set_num_threads(threads)
    watch = TargetWatch(every, check)
    run = build_run(RunConfig(scenario=sc, algo=algo, seed=seed, steps=int(budget * cap),
                                    n_envs=n_envs, overrides=overrides), extra=[watch])
    wall, cpu = time.perf_counter(), time.process_time()
    run.run()
    if watch.reached is not None:
        steps, train_wall, train_cpu = watch.reached
    else:
        steps = run.env_steps
        train_wall = time.perf_counter() - wall - watch.eval_wall
        train_cpu = time.process_time() - cpu - watch.eval_cpu
    return Row(scenario=scenario, algo=algo, threads=threads, copies=run.env.n_envs,
               target=text or watch.goal, reached=watch.reached is not None, env_steps=steps,
               train_wall_s=round(train_wall, 2), train_cpu_s=round(train_cpu, 2),
               eval_wall_s=round(watch.eval_wall, 2), evaluations=watch.evaluations, every=every,
               cap=int(budget * cap), kpis=watch.last)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[], help="SCENARIO:ALGO (repeatable)")
    ap.add_argument("--threads", type=int, action="append", default=[],
                    help="torch threads (repeatable; default: 1, then torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--evals", type=int, default=100, help="evaluations per default budget")
    ap.add_argument("--cap", type=float, default=1.0, help="cap as a multiple of the default budget")
    ap.add_argument("--envs", type=int, default=None, help="parallel copies (default: the scenario's)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a hyperparameter of the algorithms run (repeatable; default settings otherwise)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "time_to_target.json")
    args = ap.parse_args()
    jobs = [tuple(o.split(":")) for o in args.only] or [(s, a) for s in CORE for a in ALGOS]
    threads = args.threads or [1, torch.get_num_threads()]
    overrides = {k: json.loads(v) for k, _, v in (o.partition("=") for o in args.set)}
    print(f"{'scenario':<18}{'algo':<7}{'thr':>4}{'env steps':>11}{'train s':>9}{'CPU s':>8}"
          f"{'eval s':>8}{'steps/s':>10}  target", flush=True)
    rows: list[Row] = []
    for n_threads in threads:
        for scenario, algo in jobs:
            r = time_one(scenario, algo, args.seed, n_threads, args.evals, args.cap, overrides, args.envs)
            if r is None:
                print(f"{scenario:<18}{algo:<7} no target: skipped", flush=True)
                continue
            rows.append(r)
            mark = "met" if r.reached else f"NOT within {r.cap:,} steps"
            print(f"{scenario:<18}{algo:<7}{n_threads:>4}{r.env_steps:>11,}{r.train_wall_s:>9.1f}"
                  f"{r.train_cpu_s:>8.1f}{r.eval_wall_s:>8.1f}{fmt(r.steps_per_second):>10}  {r.target} {mark}",
                  flush=True)
            write(args, overrides, rows)  # after every row: a long run's figures survive a stop
    print(f"wrote {args.out}")


def write(args: argparse.Namespace, overrides: dict[str, Any], rows: list[Row]) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "load_average": os.getloadavg(), "torch": torch.__version__, "seed": args.seed,
            "evals_per_budget": args.evals, "cap": args.cap, "envs": args.envs, "overrides": overrides}
    out = [asdict(r) | {"steps_per_second": round(r.steps_per_second, 1)} for r in rows]
    args.out.write_text(json.dumps({"meta": meta, "runs": out}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
