"""Learning benchmark: every algorithm on every preset, default budgets, fixed seeds.

Prints a table (scenario, algo, steps, wall s, steps/s, KPI, oracle, % of oracle, target)
and writes benchmarks/results/learning.json. Targets are the issue's; a miss is shown, not hidden.

    python benchmarks/learning.py                      # the nine core runs + guide presets
    python benchmarks/learning.py --all                # every preset
    python benchmarks/learning.py --only pricing:mappo --only warehouse:qmix
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from marl_tui.config import HEADLINE_KPI, NASH_BAND_PCT, load_scenario
from marl_tui.train.build import build_run
from marl_tui.train.run_config import RunConfig

CORE = ["pricing", "warehouse", "fulfillment", "pricing-guide", "warehouse-guide"]
EXTRA = ["pricing-logit", "warehouse-shared-truck", "fulfillment-strict"]
ALGOS = ["maddpg", "mappo", "qmix"]

Check = Callable[[dict[str, float], dict[str, float | None]], tuple[bool, str]]


def target(scenario: str, algo: str) -> Check | None:
    """The issue's target for a run, as a check on (greedy KPIs, oracle values)."""
    if scenario == "pricing-guide":
        return lambda k, o: (k["mean_price"] >= 9.8, "mean price ≥ 9.8")
    if scenario == "pricing":
        return lambda k, o: (
            abs(k["profit_vs_nash"]) <= NASH_BAND_PCT and k["exploitability"] <= 0.02 * k["mean_profit"],
            f"profit within ±{NASH_BAND_PCT:g} % of Nash, exploitability ≤ 2 %",
        )
    if scenario == "warehouse":
        need = 98.0 if algo == "mappo" else 95.0
        return lambda k, o: (k["pct_of_optimal"] >= need, f"≥ {need:g} % of optimum")
    if scenario == "fulfillment":
        if algo == "qmix":
            return lambda k, o: (k["optimal_choice_rate"] >= 0.98 and k["regret"] <= 0.1,
                                 "≥ 98 % optimal, regret ≤ 0.1")
        return lambda k, o: (k["optimal_choice_rate"] >= 0.95, "≥ 95 % optimal")
    if scenario == "warehouse-guide":
        return lambda k, o: (k["mean_order"] <= 0.5, "orders ≈ 0")
    return None


def run_one(scenario: str, algo: str, seed: int) -> dict:
    sc = load_scenario(scenario)
    trainer = build_run(RunConfig(scenario=sc, algo=algo, seed=seed))
    started = time.perf_counter()
    stats = trainer.run()
    wall = time.perf_counter() - started
    kpis = trainer.evaluate(episodes=4)
    oracle = trainer.oracle
    key = HEADLINE_KPI[sc.kind]
    learned, best = kpis.get(key), oracle.kpis.get(key)
    pct = 100.0 * learned / best if best not in (None, 0) and not math.isnan(best) else None
    check = target(scenario, algo)
    met, goal = check(kpis, oracle.values) if check else (None, "report only")
    return {
        "scenario": scenario, "algo": algo, "seed": seed, "steps": stats.env_steps,
        "wall_seconds": round(wall, 2), "steps_per_second": round(stats.env_steps / wall, 1),
        "kpi": key, "learned": learned, "oracle": best, "pct_of_oracle": pct,
        "kpis": kpis, "oracle_kpis": oracle.kpis, "oracle_values": oracle.values,
        "target": goal, "met": met, "status": stats.status,
    }


def fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:,.4g}" if abs(x) < 1e4 else f"{x:,.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--all", action="store_true", help="also the logit, shared-truck and strict presets")
    ap.add_argument("--only", action="append", default=[], help="SCENARIO:ALGO (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "learning.json")
    args = ap.parse_args()
    if args.only:
        jobs = [tuple(o.split(":")) for o in args.only]
    else:
        jobs = [(s, a) for s in CORE + (EXTRA if args.all else []) for a in ALGOS]
    rows = []
    header = f"{'scenario':<24}{'algo':<8}{'steps':>11}{'wall s':>9}{'steps/s':>10}  " \
             f"{'KPI':<20}{'learned':>10}{'oracle':>10}{'% oracle':>9}  target"
    print(header, flush=True)
    for scenario, algo in jobs:
        r = run_one(scenario, algo, args.seed)
        rows.append(r)
        mark = {True: "met", False: "MISSED", None: ""}[r["met"]]
        print(f"{scenario:<24}{algo:<8}{r['steps']:>11,}{r['wall_seconds']:>9.1f}{r['steps_per_second']:>10,.0f}  "
              f"{r['kpi']:<20}{fmt(r['learned']):>10}{fmt(r['oracle']):>10}{fmt(r['pct_of_oracle']):>9}  "
              f"{r['target']} {mark}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
            "cpus": torch.get_num_threads(), "torch": torch.__version__}
    args.out.write_text(json.dumps({"meta": meta, "runs": rows}, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
