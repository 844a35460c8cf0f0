"""Seeds batched in one process against one seed and against separate runs (issue 20, item 3).

For each algorithm × preset, one torch thread per process, the same budget per seed (a fifth of
the algorithm's default for that preset, or --steps):
  solo       one seed, `marl-tui train`'s loop in this process;
  batched    S seeds in this process, one stacked learner (train/seed_batch.py);
  separate   S seeds as separate processes, --workers at a time (what `compare` does without
             --batched-seeds: one per core).
--batched-threads N gives the batched run N torch threads (the others keep one). Wall and CPU
seconds of training only (no evaluation, no run directory). Target: batched S = 5
costs <= 2x one seed. Prints a table and writes benchmarks/results/batched_seeds.json.

    python benchmarks/batched_seeds.py [--algos maddpg,qmix,mappo] [--presets pricing,...] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from marl_tui.algos.registry import resolve_hparams
from marl_tui.config import load_scenario
from marl_tui.train.build import build_run
from marl_tui.train.controls import Controls
from marl_tui.train.run_config import RunConfig
from marl_tui.train.seed_batch import SeedBatch

RESULTS = Path(__file__).parent / "results" / "batched_seeds{}.json"  # {}: _threadsN beyond one


def config(algo: str, preset: str, seed: int, steps: int) -> RunConfig:
    return RunConfig(scenario=load_scenario(preset), algo=algo, steps=steps, seed=seed)


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def solo(algo: str, preset: str, seed: int, steps: int) -> tuple[float, float]:
    torch.set_num_threads(1)
    run = build_run(config(algo, preset, seed, steps))
    return timed(run.run)


def batched(algo: str, preset: str, seeds: int, steps: int, threads: int) -> tuple[float, float]:
    torch.set_num_threads(threads)
    controls = Controls()
    runs = [build_run(config(algo, preset, seed, steps), controls=controls) for seed in range(seeds)]
    batch = SeedBatch(runs)
    wall_cpu = timed(batch.run)
    assert all(r.stats.status == "finished" for r in runs), [r.stats.error for r in runs]
    return wall_cpu


def separate(algo: str, preset: str, seeds: int, steps: int, workers: int) -> float:
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(solo, [algo] * seeds, [preset] * seeds, range(seeds), [steps] * seeds))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--algos", default="maddpg,qmix,mappo")
    parser.add_argument("--presets", default="pricing,warehouse,fulfillment")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None, help="env steps per seed [default: a fifth of the default]")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--batched-threads", type=int, default=1, help="torch threads of the batched run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    print(f"{'algo':8} {'preset':12} {'steps':>8} {'solo s':>8} {'batched s':>10} {'x solo':>7} "
          f"{'separate s':>11} {'x solo':>7} {'batched CPU/seed':>17}")
    for algo in args.algos.split(","):
        for preset in args.presets.split(","):
            steps = args.steps or resolve_hparams(algo, load_scenario(preset)).steps // 5
            solo_wall, solo_cpu = solo(algo, preset, 0, steps)
            b_wall, b_cpu = batched(algo, preset, args.seeds, steps, args.batched_threads)
            sep_wall = separate(algo, preset, args.seeds, steps, args.workers)
            row = {"algo": algo, "preset": preset, "steps_per_seed": steps, "seeds": args.seeds,
                   "solo_wall_s": round(solo_wall, 2), "solo_cpu_s": round(solo_cpu, 2),
                   "batched_wall_s": round(b_wall, 2), "batched_cpu_s": round(b_cpu, 2),
                   "batched_threads": args.batched_threads,
                   "separate_wall_s": round(sep_wall, 2), "workers": args.workers,
                   "batched_over_solo": round(b_wall / solo_wall, 2),
                   "separate_over_solo": round(sep_wall / solo_wall, 2)}
            rows.append(row)
            print(f"{algo:8} {preset:12} {steps:>8,} {solo_wall:>8.1f} {b_wall:>10.1f} "
                  f"{row['batched_over_solo']:>6.2f}x {sep_wall:>11.1f} {row['separate_over_solo']:>6.2f}x "
                  f"{b_cpu / args.seeds:>16.1f}s", flush=True)
    results = Path(str(RESULTS).format(f"_threads{args.batched_threads}" if args.batched_threads > 1 else ""))
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": platform.processor() or platform.machine(),
        "cores": len(os.sched_getaffinity(0)), "load_average": os.getloadavg(), "torch": torch.__version__,
        "rows": rows}, indent=1) + "\n")
    print(f"wrote {results}")


if __name__ == "__main__":
    main()
