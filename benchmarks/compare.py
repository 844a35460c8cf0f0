"""What a comparison costs: `marl-tui compare` on N cores against one seed of each algorithm.

    .venv/bin/python benchmarks/compare.py [--seeds 5] [--steps N] [--jobs 2] [--engine local|ray]

First one seed of each algorithm, one after another (`marl-tui train`, one torch thread, as a
comparison's job runs), then the whole matrix with `marl-tui compare --headless --jobs J`.
Figures: the matrix's wall time; the sum of the single runs; the ideal for the matrix (seeds x
that sum / J: perfect sharing of J cores, no start-up cost); and the matrix's wall over the
ideal. The load average before and after is recorded: the figures mean little on a busy machine.

Prints a table and writes benchmarks/results/compare[_TAG].json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ALGOS = ("maddpg", "mappo", "qmix")
ROOT = Path(__file__).resolve().parent.parent


def _run(argv: list[str], cwd: Path) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "marl_tui", *argv], cwd=cwd, env=env, check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="pricing")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=None, help="env steps per run [default: per algorithm]")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--engine", default="local", choices=("local", "ray"))
    p.add_argument("--tag", default="")
    a = p.parse_args()
    steps = ["--steps", str(a.steps)] if a.steps else []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        single = {algo: _run(["train", a.scenario, "--algo", algo, *steps, "--out", f"one-{algo}"], cwd)
                  for algo in ALGOS}
        matrix = _run(["compare", a.scenario, "--algos", ",".join(ALGOS), "--seeds", str(a.seeds), *steps,
                       "--jobs", str(a.jobs), "--engine", a.engine, "--out", "matrix", "--headless"], cwd)
    total = sum(single.values())
    ideal = a.seeds * total / a.jobs
    result = {
        "scenario": a.scenario, "seeds": a.seeds, "steps": a.steps or "default", "jobs": a.jobs,
        "engine": a.engine, "single_seconds": {k: round(v, 1) for k, v in single.items()},
        "sum_one_seed_each": round(total, 1), "matrix_seconds": round(matrix, 1),
        "ideal_seconds": round(ideal, 1), "matrix_over_ideal": round(matrix / ideal, 2),
        "cores": os.cpu_count(), "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version(),
    }
    print(f"one seed each ({', '.join(f'{k} {v:.1f} s' for k, v in single.items())}): {total:.1f} s")
    print(f"{len(ALGOS)} x {a.seeds} matrix on {a.jobs} jobs ({a.engine}): {matrix:.1f} s; ideal "
          f"{ideal:.1f} s (seeds x sum / jobs); ratio {matrix / ideal:.2f}")
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    out = ROOT / "benchmarks" / "results" / f"compare{'_' + a.tag if a.tag else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
