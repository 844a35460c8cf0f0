"""What fixing glibc malloc's thresholds (marl_tui/train/allocator.py) buys a headless run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/allocator.py [--pairs N] [--only SCENARIO/ALGO]

The same run twice, headless, each in a process of its own: one with malloc as glibc leaves
it, one as the trainer sets it. They take turns of a quarter of a second (the method of
benchmarks/tui_speed.py, whose machinery this reuses), in fresh pairs of processes: with
glibc's moving thresholds a process's speed depends on where its threshold happened to
land, so a figure from one pair says little. Per pair: the ratio of env steps per second
(tuned / default, geometric mean of its blocks) and the page faults per batched step of
each. Figure: geometric mean of the pairs with a 95 % interval over pairs.

Linux with glibc only. Prints a table and writes benchmarks/results/allocator.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
from pathlib import Path
from typing import Any

import tui_speed as turns

CONFIGS = [("pricing", "random", 256), ("pricing", "mappo", 256), ("pricing", "maddpg", 64),
           ("warehouse", "mappo", 64), ("fulfillment", "qmix", 128)]
BLOCKS = 2  # per pair of processes
CYCLES = 12


def _faults(pid: int) -> int:
    """Minor page faults of a whole process so far (/proc/PID/stat, field 10)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def one_pair(scenario: str, algo: str, n_envs: int) -> dict[str, Any]:
    run = turns._run(scenario, algo, n_envs)
    default = turns._Headless("default", run, tuned_malloc=False)
    tuned = turns._Headless("tuned", run)
    arms = (default, tuned)
    try:
        asyncio.run(turns._block([tuned, default], 3))  # warm-up: buffers filling, first updates
        start = {a.name: (a.steps, _faults(a.pid)) for a in arms}
        rows = [asyncio.run(turns._block([tuned, default], CYCLES)) for _ in range(BLOCKS)]
        faults = {a.name: (_faults(a.pid) - start[a.name][1]) / max(1, (a.steps - start[a.name][0]) / n_envs)
                  for a in arms}
    finally:
        default.close()
        tuned.close()
    ratio = turns._interval([r["tuned"] / r["default"] for r in rows])["ratio"]
    return {"ratio": ratio, "default_steps_per_s": sum(r["default"] for r in rows) / len(rows),
            "tuned_steps_per_s": sum(r["tuned"] for r in rows) / len(rows),
            "faults_per_step": faults}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=4, help="fresh pairs of processes per run (default 4)")
    parser.add_argument("--only", metavar="SCENARIO/ALGO", action="append", default=None,
                        help="measure only this run (repeatable), e.g. fulfillment/qmix")
    parser.add_argument("--out", type=Path, default=turns.ROOT / "benchmarks" / "results" / "allocator.json")
    args = parser.parse_args()
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        parser.error("this measures glibc's malloc: run it on Linux with glibc")
    if args.pairs < 2:
        parser.error("--pairs: at least 2 (the interval is over pairs)")
    configs = [c for c in CONFIGS if not args.only or f"{c[0]}/{c[1]}" in args.only]
    if not configs:
        parser.error(f"--only: pick from {', '.join(f'{c[0]}/{c[1]}' for c in CONFIGS)}")

    rows = []
    for scenario, algo, n_envs in configs:
        pairs = [one_pair(scenario, algo, n_envs) for _ in range(args.pairs)]
        row = {"scenario": scenario, "algo": algo, "envs": n_envs, "pairs": pairs,
               **turns._interval([p["ratio"] for p in pairs])}
        rows.append(row)
        print(f"  {scenario}/{algo}: tuned {row['ratio']:.1%} of default ({turns._span(row)}); pairs "
              + " ".join(f"{p['ratio']:.1%}" for p in pairs), flush=True)

    print()
    print(f"tuned malloc / glibc's default, headless, taking turns of {turns.TURN_SECONDS} s; "
          f"{args.pairs} fresh pairs of processes x {BLOCKS} blocks of {CYCLES} pairs of turns")
    print(f"{'run':<20}{'envs':>5}{'default/s':>11}{'tuned/s':>10}{'speed':>8}{'interval':>16}"
          f"{'faults/step':>13}{'(default)':>11}")
    for r in rows:
        ps = r["pairs"]
        mean = {k: sum(p[k] for p in ps) / len(ps) for k in ("default_steps_per_s", "tuned_steps_per_s")}
        faults = {k: sum(p["faults_per_step"][k] for p in ps) / len(ps) for k in ("default", "tuned")}
        print(f"{r['scenario'] + '/' + r['algo']:<20}{r['envs']:>5}{mean['default_steps_per_s']:>11,.0f}"
              f"{mean['tuned_steps_per_s']:>10,.0f}{r['ratio']:>8.1%}{turns._span(r):>16}"
              f"{faults['tuned']:>13,.1f}{faults['default']:>11,.0f}")

    result = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "glibc": platform.libc_ver()[1], "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
        "turn_seconds": turns.TURN_SECONDS, "blocks_per_pair": BLOCKS, "cycles": CYCLES,
        "runs": rows,
        "notes": "ratio = env steps per second of the tuned run / the default run, geometric mean "
                 "over fresh pairs of processes (low/high: 95 % interval over pairs); "
                 "faults_per_step = minor page faults per batched step of each process.",
    }
    turns.write_result(args.out, result)


if __name__ == "__main__":
    main()
