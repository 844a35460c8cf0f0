"""What the flight recorder (marl_tui/train/callbacks/recorder.py) costs a headless run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/recorder.py [--blocks N]

The same run twice, headless, each in a process of its own and each writing a run directory
(checkpoints every 2,000 batched steps, as `marl-tui train` does): one with the recorder, one
without. They take turns of a quarter of a second (the method of benchmarks/tui_speed.py, whose
machinery this reuses). Figure: recorded / plain env steps per second, the geometric mean of
the blocks with a 95 % interval; and the size of the stream each recorded run wrote.

Linux (SIGSTOP). Prints a table and writes benchmarks/results/recorder.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import tui_speed as turns

from marl_tui.stream.store import records_path

CONFIGS = [("pricing", "random", 256), ("pricing", "mappo", 256), ("warehouse", "mappo", 64),
           ("fulfillment", "qmix", 128)]


def measure(scenario: str, algo: str, n_envs: int, blocks: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        recorded_dir, plain_dir = Path(tmp) / "recorded", Path(tmp) / "plain"
        recorded = turns._Headless("recorded", turns._run(scenario, algo, n_envs, recorded_dir))
        plain = turns._Headless("plain", turns._run(scenario, algo, n_envs, plain_dir), recorder=False)
        try:
            asyncio.run(turns._block([recorded, plain], 4))  # warm-up: buffers filling, first updates
            rows = [asyncio.run(turns._block([recorded, plain], turns.CYCLES)) for _ in range(blocks)]
        finally:
            recorded.close()
            plain.close()
        size = records_path(recorded_dir).stat().st_size
        steps = recorded.steps
    result = turns._interval([r["recorded"] / r["plain"] for r in rows])
    result.update(stream_bytes=size, env_steps=steps,
                  plain_env_steps_per_s=sum(r["plain"] for r in rows) / len(rows))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=6, help="blocks of turns per run (default 6)")
    parser.add_argument("--out", type=Path, default=turns.ROOT / "benchmarks" / "results" / "recorder.json")
    args = parser.parse_args()
    rows = []
    for scenario, algo, n_envs in CONFIGS:
        r = measure(scenario, algo, n_envs, args.blocks)
        rows.append({"scenario": scenario, "algo": algo, "envs": n_envs, **r})
        print(f"  {scenario}/{algo}: recorded {r['ratio']:.1%} of plain ({turns._span(r)}), stream "
              f"{r['stream_bytes'] / 1e6:.2f} MB after {r['env_steps']:,} env steps", flush=True)
    print()
    print(f"{'run':<20}{'envs':>5}{'plain/s':>11}{'recorded':>10}{'interval':>16}{'stream MB':>11}{'env steps':>12}")
    for r in rows:
        print(f"{r['scenario'] + '/' + r['algo']:<20}{r['envs']:>5}{r['plain_env_steps_per_s']:>11,.0f}"
              f"{r['ratio']:>10.1%}{turns._span(r):>16}{r['stream_bytes'] / 1e6:>11.2f}{r['env_steps']:>12,}")
    turns.write_result(args.out, {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
        "blocks": args.blocks, "cycles": turns.CYCLES, "turn_seconds": turns.TURN_SECONDS, "rows": rows,
        "notes": "recorded = a headless run with its flight recorder; plain = the same run with the "
                 "recorder removed; both write checkpoints. ratio = recorded / plain env steps per "
                 "second of their own turns, geometric mean over blocks, 95 % interval.",
    })


if __name__ == "__main__":
    main()
