"""Memory stays flat on long runs: resident memory at 10k, 100k and 1M environment steps.

Each algorithm trains headless (the real Run, writing a run directory with metrics.csv
and checkpoints) in a fresh process, and its resident set size is read from
/proc/self/statm as the run passes each milestone. Bounded buffers and bounded chart
histories mean the 100k -> 1M growth should be a few MiB at most; the replay buffers of
MADDPG and QMIX are preallocated, so they are counted from the first step.

    python benchmarks/memory.py                       # all algorithms, pricing, 1M steps
    python benchmarks/memory.py --algos random mappo --steps 200000

Prints a table and writes benchmarks/results/memory.json. Not a test: it takes minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MILESTONES = (10_000, 100_000, 1_000_000)
HERE = Path(__file__).resolve().parent


def rss_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):  # not Linux: the peak is the best we have
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def child(algo: str, steps: int, envs: int, scenario: str) -> dict:
    import torch

    torch.set_num_threads(1)
    from marl_tui.config import load_scenario
    from marl_tui.train.build import build_run
    from marl_tui.train.run_config import RunConfig
    from marl_tui.train.rundir import init_run_dir

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        t = build_run(RunConfig(scenario=load_scenario(scenario), algo=algo, steps=steps, n_envs=envs,
                              out_dir=run_dir))
        init_run_dir(t, run_dir)
        start_rss = rss_mib()
        samples: dict[str, float] = {}
        marks = [m for m in MILESTONES if m <= steps]
        started = time.monotonic()
        thread = t.start_thread()
        while thread.is_alive():
            while marks and t.env_steps >= marks[0]:
                samples[str(marks.pop(0))] = round(rss_mib(), 1)
            thread.join(timeout=0.005)
        wall = time.monotonic() - started
        for m in marks:  # the last milestone when the budget ends exactly on it
            samples[str(m)] = round(rss_mib(), 1)
        if t.stats.error:
            raise SystemExit(f"{algo}: {t.stats.error}")
        ckpt = run_dir / "checkpoints" / "latest.pt"
        return {
            "algo": algo, "scenario": scenario, "envs": t.env.n_envs, "steps": t.env_steps,
            "rss_mib_after_setup": round(start_rss, 1), "rss_mib": samples,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10, 1),
            "wall_seconds": round(wall, 1), "steps_per_second": round(t.env_steps / wall),
            "checkpoint_mib": round(ckpt.stat().st_size / 2**20, 2) if ckpt.exists() else None,
            "chart_points": len(t.team_history.x),
            "metrics_rows": sum(1 for _ in (run_dir / "metrics.csv").open()) - 1,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algos", nargs="+", default=["random", "mappo", "qmix", "maddpg"])
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--envs", type=int, default=None, help="parallel copies [default: the scenario's]")
    ap.add_argument("--scenario", default="pricing")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "memory.json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.algos[0], args.steps, args.envs, args.scenario)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    results = []
    for algo in args.algos:
        cmd = [sys.executable, __file__, "--child", "--algos", algo, "--steps", str(args.steps),
               "--scenario", args.scenario]
        if args.envs:
            cmd += ["--envs", str(args.envs)]
        print(f"{algo}: training {args.steps:,} steps ...", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(f"{algo}: failed\n{proc.stderr}", file=sys.stderr)
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    marks = [str(m) for m in MILESTONES if m <= args.steps]
    head = f"{'algo':<8}{'envs':>6}" + "".join(f"{'RSS@' + _short(int(m)):>11}" for m in marks)
    head += f"{'growth':>9}{'peak':>8}{'ckpt':>8}{'steps/s':>9}"
    print(head)
    for r in results:
        rss = r["rss_mib"]
        growth = rss[marks[-1]] - rss[marks[1]] if len(marks) > 2 else rss[marks[-1]] - rss[marks[0]]
        line = f"{r['algo']:<8}{r['envs']:>6}" + "".join(f"{rss.get(m, float('nan')):>8.0f} MiB" for m in marks)
        line += f"{growth:>+6.1f}MiB{r['peak_rss_mib']:>5.0f}MiB{r['checkpoint_mib'] or 0:>6.1f}MiB"
        line += f"{r['steps_per_second']:>9,}"
        print(line)
    if len(marks) > 2:
        print(f"growth: RSS at {_short(int(marks[-1]))} minus RSS at {_short(int(marks[1]))} steps")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count()},
        "steps": args.steps, "milestones": marks, "results": results,
    }, indent=2) + "\n")
    print(f"written: {args.out}")


def _short(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1_000}k"


if __name__ == "__main__":
    main()
