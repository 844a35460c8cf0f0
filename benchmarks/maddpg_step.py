"""CPU milliseconds of one MADDPG update and of one whole training step, per preset.

One torch thread; after 12,000 env steps (the replay buffer past warm-up), 3 updates to warm
up, then 25 updates and 25 training steps (act, env step, observe, update) timed by process CPU
time, which a machine loaded by other work inflates far less than wall time. To compare two
versions of the code on the same machine state, run it alternately against each tree:

    for i in 1 2 3; do for t in OLD NEW; do PYTHONPATH=$t python benchmarks/maddpg_step.py; done; done

Prints one JSON line {preset: ms per update, "preset:step": ms per training step}.
"""

from __future__ import annotations

import json
import sys
import time

import torch

from marl_tui.config import load_scenario
from marl_tui.train.build import build_run
from marl_tui.train.run_config import RunConfig

PRESETS = ("pricing", "warehouse", "fulfillment")


def main() -> None:
    torch.set_num_threads(1)
    out = {}
    for name in sys.argv[1:] or PRESETS:
        run = build_run(RunConfig(scenario=load_scenario(name), algo="maddpg", seed=0, steps=12_000))
        run.run()
        for _ in range(3):
            run.algo.update()
        cpu = time.process_time()
        for _ in range(25):
            run.algo.update()
        out[name] = round((time.process_time() - cpu) / 25 * 1000, 2)
        cpu = time.process_time()
        for _ in range(25):
            run.train_step()
        out[f"{name}:step"] = round((time.process_time() - cpu) / 25 * 1000, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
