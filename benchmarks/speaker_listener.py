"""MPE simple_speaker_listener through PettingZoo (mpe2): agents of two kinds, whose actions differ
in size (a speaker with 3 words, a listener with 5 moves), trained with padding and a mask.

Each algorithm trains on scenarios/external/speaker-listener.toml with its defaults for external
envs, on one torch thread, then plays greedy evaluation episodes (benchmarks/mpe.py's run_one);
the random row is the random baseline's evaluation. Return: summed over the 2 agents, who are both
paid the listener's distance (so it is twice one agent's). Writes benchmarks/results/speaker_listener.json.

    python benchmarks/speaker_listener.py --jobs 2                 # 100k steps, 2 seeds, 100 episodes
    python benchmarks/speaker_listener.py --only mappo --seeds 1 --steps 20000 --episodes 10
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import platform
import statistics
import time
from pathlib import Path

import torch
from mpe import ALGOS, ci95, run_one

SCENARIO = str(Path(__file__).resolve().parent.parent / "scenarios" / "external" / "speaker-listener.toml")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[], choices=[*ALGOS, "random"])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time, each in its own process")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "speaker_listener.json")
    args = ap.parse_args()
    algos = args.only or [*ALGOS, "random"]
    jobs = [(algo, seed) for seed in range(1, args.seeds + 1) for algo in algos]
    runs: list[dict] = []
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=spawn) as pool:
        futures = [pool.submit(run_one, algo, seed, args.steps, args.episodes, SCENARIO) for algo, seed in jobs]
        for fut in concurrent.futures.as_completed(futures):
            r = fut.result()
            runs.append(r)
            print(f"{r['algo']:<8}{r['seed']:>5}{r['env_steps']:>11,}{r['cpu_seconds']:>9.1f}{r['return']:>10.1f}",
                  flush=True)
    table = []
    for algo in algos:
        returns = [r["return"] for r in sorted(runs, key=lambda r: r["seed"]) if r["algo"] == algo]
        table.append({"algo": algo, "seeds": len(returns), "returns": returns,
                      "return_mean": statistics.fmean(returns), "return_ci95": ci95(returns)})
        print(f"{algo:<8} return {statistics.fmean(returns):8.1f} ± {ci95(returns):.1f}  (seeds: "
              + ", ".join(f"{x:.1f}" for x in returns) + ")")
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "torch_threads": 1, "steps": args.steps, "seeds": args.seeds, "episodes": args.episodes,
            "scenario": "scenarios/external/speaker-listener.toml"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "table": table, "runs": runs}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
