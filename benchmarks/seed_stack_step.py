"""CPU milliseconds of one batched step with S seeds stacked in one learner, against one seed.

    .venv/bin/python benchmarks/seed_stack_step.py --algo maddpg [--scenarios pricing,fulfillment]
        [--seeds 1,5] [--warmup 12000] [--steps 25] [--repeats 3] [--threads 1]

For any algorithm whose class declares supports_seed_stack. Each seed is built as a solo run builds
it (build_run: global RNG seeded, env, learner), at the scenario's default hyperparameters and
copies. One seed is the plain solo learner; S > 1 seeds are those solos stacked (cls.stack), acting
on every seed's rows at once, seeds-major. A batched step is what the learner does per env step:
update (when ready), act, observe. The envs step too, but their time is not counted (the harness
steps each seed's env either way). One torch thread: process CPU time, which other work on the
machine inflates far less than wall time; with --threads T > 1, wall time (the point is using T
cores). malloc keeps freed memory, as in a training process (train/allocator.py). First
`--warmup` env steps per seed (an off-policy learner past its warm-up), then `--steps` timed
batched steps; `--repeats` rounds alternate the seed counts and the median is reported. For an
on-policy learner choose --steps as a multiple of its rollout length, so updates are counted in
proportion.

Prints a table and writes benchmarks/results/seed_stack_step_ALGO.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from marl_tui.algos.base import Algorithm, Transition
from marl_tui.algos.registry import algorithm_class
from marl_tui.config import load_scenario
from marl_tui.envs.base import BatchedEnv
from marl_tui.train.allocator import keep_freed_memory
from marl_tui.train.build import build_run
from marl_tui.train.run_config import RunConfig

RESULTS = Path(__file__).resolve().parent / "results"
FIRST_SEED = 0  # seeds FIRST_SEED .. FIRST_SEED + S - 1


class Lockstep:
    """S envs stepped together; their rows side by side, seeds-major, as the stacked learner takes them."""

    def __init__(self, envs: list[BatchedEnv], clock: Callable[[], float]) -> None:
        self.envs, self.clock = envs, clock
        firsts = [env.reset(FIRST_SEED + s) for s, env in enumerate(envs)]
        self.obs = [o for o, _ in firsts]
        self.state = [st for _, st in firsts]

    def step(self, algo: Algorithm) -> float:
        """One batched step of algo on every seed; returns the seconds (on the clock) spent in algo's calls."""
        cpu = self.clock()
        if algo.ready() and len(self.envs) > 1:
            algo.update_seeds()  # type: ignore[attr-defined]
        elif algo.ready():
            algo.update()
        out = algo.act(torch.cat(self.obs), torch.cat(self.state), explore=True)
        spent = self.clock() - cpu
        parts = []
        for s, (env, actions) in enumerate(zip(self.envs, out.actions.chunk(len(self.envs)), strict=True)):
            res = env.step(actions)
            parts.append(Transition(obs=self.obs[s], state=self.state[s], actions=actions,
                                    reward=res.reward * env.spec.reward_scale, next_obs=res.obs,
                                    next_state=res.state, terminated=torch.zeros_like(res.done),
                                    truncated=res.done,
                                    extras={k: v.chunk(len(self.envs))[s] for k, v in out.extras.items()}))
            self.obs[s], self.state[s] = (env.reset() if env.t >= env.spec.episode_length
                                          else (res.obs, res.state))
        batch = Transition(**{f: torch.cat([getattr(p, f) for p in parts])
                              for f in ("obs", "state", "actions", "reward", "next_obs", "next_state",
                                        "terminated", "truncated")},
                           extras={k: torch.cat([p.extras[k] for p in parts]) for k in out.extras})
        cpu = self.clock()
        algo.observe(batch)
        return spent + self.clock() - cpu


def ms_per_step(algo_name: str, scenario: str, seeds: int, warmup: int, steps: int,
                clock: Callable[[], float]) -> float:
    runs = [build_run(RunConfig(scenario=load_scenario(scenario), algo=algo_name, seed=FIRST_SEED + s))
            for s in range(seeds)]
    cls = algorithm_class(algo_name)
    algo = runs[0].algo if seeds == 1 else cls.stack([r.algo for r in runs])  # type: ignore[attr-defined]
    lockstep = Lockstep([r.env for r in runs], clock)
    for _ in range(-(-warmup // runs[0].env.n_envs)):
        lockstep.step(algo)
    spent = sum(lockstep.step(algo) for _ in range(steps))
    return spent / steps * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algo", default="maddpg")
    p.add_argument("--scenarios", default="pricing,fulfillment")
    p.add_argument("--seeds", default="1,5", help="seed counts to time, comma-separated (the first is the base)")
    p.add_argument("--warmup", type=int, default=12_000, help="env steps per seed before timing")
    p.add_argument("--steps", type=int, default=25, help="batched steps timed")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (more than one: wall time)")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    clock = time.process_time if a.threads == 1 else time.perf_counter
    if not getattr(algorithm_class(a.algo), "supports_seed_stack", False):
        raise SystemExit(f"{a.algo} does not support stacked seeds (supports_seed_stack is False)")
    torch.set_num_threads(a.threads)
    keep_freed_memory()  # as a training process does (train/worker.py, headless/runs.py)
    counts = [int(s) for s in a.seeds.split(",")]
    rows = []
    load_before = os.getloadavg()
    kind = "CPU" if a.threads == 1 else "wall"
    print(f"{a.algo}: {kind} ms per batched step (update when ready + act + observe), {a.threads} thread(s), "
          f"median of {a.repeats}")
    print(f"{'scenario':<14}" + "".join(f"{f'S={s}':>10}" for s in counts) + f"{'ratio':>16}")
    for scenario in a.scenarios.split(","):
        times: dict[int, list[float]] = {s: [] for s in counts}
        for _ in range(a.repeats):  # alternate, so a change in the machine's load hits every count
            for s in counts:
                times[s].append(ms_per_step(a.algo, scenario, s, a.warmup, a.steps, clock))
        median = {s: statistics.median(v) for s, v in times.items()}
        base = counts[0]
        ratios = {s: median[s] / median[base] for s in counts[1:]}
        print(f"{scenario:<14}" + "".join(f"{median[s]:>10.1f}" for s in counts)
              + "".join(f"{f'{s}/{base}: {r:.2f}':>16}" for s, r in ratios.items()))
        rows.append({"scenario": scenario, "ms_per_step": {str(s): round(median[s], 2) for s in counts},
                     "all_ms": {str(s): [round(t, 2) for t in v] for s, v in times.items()},
                     "ratio": {f"{s}/{base}": round(r, 2) for s, r in ratios.items()}})
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "algo": a.algo,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "torch": torch.__version__,
            "threads": a.threads, "clock": kind,
            "load_average_before_after": [load_before, os.getloadavg()],
            "warmup_env_steps": a.warmup, "timed_steps": a.steps, "repeats": a.repeats}
    tag = "" if a.threads == 1 else f"_threads{a.threads}"
    out = a.out or RESULTS / f"seed_stack_step_{a.algo}{tag}.json"
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
