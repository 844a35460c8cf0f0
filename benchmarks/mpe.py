"""MPE simple_spread through PettingZoo (mpe2), beside EPyMARL's published figures.

Each algorithm trains 200k env steps on scenarios/external/simple-spread.toml with its defaults for
external envs, for 5 seeds, on one torch thread; then plays 100 greedy evaluation episodes.
Prints a table (return summed over agents: mean and 95 % CI over seeds; env steps per CPU-second
of training) and writes benchmarks/results/mpe.json. CPU-seconds, not wall seconds: the machine is
shared, and EPyMARL's figures are per CPU-second too. The random row is the random baseline's
evaluation (no training).

    python benchmarks/mpe.py --jobs 3             # everything (runs 3 at a time; about an hour)
    python benchmarks/mpe.py --only mappo --seeds 1 --steps 20000 --episodes 10   # a quick look
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import multiprocessing
import platform
import statistics
import time
from pathlib import Path

import torch
from scipy import stats

from marl_tui.config import load_scenario
from marl_tui.train.build import build_run
from marl_tui.train.run_config import RunConfig

SCENARIO = str(Path(__file__).resolve().parent.parent / "scenarios" / "external" / "simple-spread.toml")
ALGOS = ["qmix", "mappo", "maddpg"]
# EPyMARL (Papoudakis et al. 2021, MPE "Spread", return summed over agents; throughput measured
# on this class of machine, per CPU-second). MADDPG's is approximate ("~266").
EPYMARL_RETURN = {"qmix": -54.2, "mappo": -60.1, "maddpg": -50.8, "random": -79.2}
EPYMARL_STEPS_PER_CPU_S = {"qmix": 490.0, "mappo": 702.0, "maddpg": 266.0}


def run_one(algo: str, seed: int, steps: int, episodes: int, scenario: str = SCENARIO) -> dict:
    torch.set_num_threads(1)  # each run on one thread, in its own process
    sc = load_scenario(scenario)
    trainer = build_run(RunConfig(scenario=sc, algo=algo, seed=seed, steps=steps))
    cpu, wall = time.process_time(), time.perf_counter()
    result = trainer.run() if algo != "random" else None
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    kpis = trainer.evaluate(episodes=episodes)
    assert kpis is not None
    env_steps = result.env_steps if result is not None else 0
    return {"algo": algo, "seed": seed, "env_steps": env_steps, "status": result.status if result else "—",
            "cpu_seconds": round(cpu, 2), "wall_seconds": round(wall, 2),
            "steps_per_cpu_second": round(env_steps / cpu, 1) if env_steps else None,
            "return": kpis["team_return"], "episodes": episodes}


def ci95(values: list[float]) -> float:
    """Half-width of the 95 % confidence interval of the mean (Student t over seeds)."""
    if len(values) < 2:
        return math.nan
    return float(stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[], choices=[*ALGOS, "random"])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200_000)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time, each in its own process")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "mpe.json")
    args = ap.parse_args()
    algos = args.only or [*ALGOS, "random"]
    # Seed by seed across the algorithms, and the JSON rewritten after every run: a benchmark
    # stopped early still has every algorithm on its first seeds.
    jobs = [(algo, seed) for seed in range(1, args.seeds + 1) for algo in algos]
    runs: list[dict] = []
    print(f"{'algo':<8}{'seed':>5}{'env steps':>11}{'CPU s':>9}{'steps/CPU-s':>13}{'return':>10}", flush=True)
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=spawn) as pool:
        futures = [pool.submit(run_one, algo, seed, args.steps, args.episodes) for algo, seed in jobs]
        for fut in concurrent.futures.as_completed(futures):
            r = fut.result()
            runs.append(r)
            rate = "—" if r["steps_per_cpu_second"] is None else f"{r['steps_per_cpu_second']:,.0f}"
            print(f"{r['algo']:<8}{r['seed']:>5}{r['env_steps']:>11,}{r['cpu_seconds']:>9.1f}{rate:>13}"
                  f"{r['return']:>10.1f}", flush=True)
            write(args, algos, runs)
    print()
    for line in table_lines(write(args, algos, runs)):
        print(line)
    print(f"wrote {args.out}")


def summarise(algos: list[str], runs: list[dict]) -> list[dict]:
    table = []
    for algo in algos:
        rs = sorted((r for r in runs if r["algo"] == algo), key=lambda r: r["seed"])
        if not rs:
            continue
        returns = [r["return"] for r in rs]
        rates = [r["steps_per_cpu_second"] for r in rs if r["steps_per_cpu_second"]]
        table.append({"algo": algo, "seeds": len(rs), "return_mean": statistics.fmean(returns),
                      "return_ci95": ci95(returns), "epymarl_return": EPYMARL_RETURN[algo],
                      "steps_per_cpu_second": statistics.fmean(rates) if rates else None,
                      "epymarl_steps_per_cpu_second": EPYMARL_STEPS_PER_CPU_S.get(algo)})
    return table


def write(args: argparse.Namespace, algos: list[str], runs: list[dict]) -> list[dict]:
    table = summarise(algos, runs)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "torch_threads": 1, "steps": args.steps, "seeds": args.seeds, "episodes": args.episodes,
            "scenario": "scenarios/external/simple-spread.toml"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "table": table, "runs": runs}, indent=2) + "\n")
    return table


def table_lines(table: list[dict]) -> list[str]:
    lines = [f"{'algo':<8}{'seeds':>6}{'return (95 % CI)':>22}{'EPyMARL':>9}{'steps/CPU-s':>13}{'EPyMARL':>9}"
             f"{'ratio':>7}"]
    for t in table:
        rate, theirs = t["steps_per_cpu_second"], t["epymarl_steps_per_cpu_second"]
        ratio = f"{rate / theirs:.1f}x" if rate and theirs else "—"
        lines.append(f"{t['algo']:<8}{t['seeds']:>6}{t['return_mean']:>12.1f} ± {t['return_ci95']:<7.1f}"
                     f"{t['epymarl_return']:>9.1f}{(f'{rate:,.0f}' if rate else '—'):>13}"
                     f"{(f'{theirs:,.0f}' if theirs else '—'):>9}{ratio:>7}")
    return lines

if __name__ == "__main__":
    main()
