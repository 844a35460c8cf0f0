"""CPU milliseconds of one MADDPG update and of one whole training step, per preset.

One torch thread; after 12,000 env steps (the replay buffer past warm-up), 3 updates to warm
up, then 25 updates and 25 training steps (act, env step, observe, update) timed by process CPU
time, which a machine loaded by other work inflates far less than wall time. To compare two
versions of the code on the same machine state, run it alternately against each tree:

    for i in 1 2 3; do for t in OLD NEW; do PYTHONPATH=$t python benchmarks/maddpg_step.py; done; done

Prints one JSON line {preset: ms per update, "preset:step": ms per training step}. A name
KIND:N is the preset with N stores (many_agents.scenario_with); NAME=VALUE sets a hyperparameter
of every run, e.g. the growth of the two critics with N:

    python benchmarks/maddpg_step.py pricing:3 pricing:10 pricing:30 buffer_size=20000 critic=\"mean_field\"
"""

from __future__ import annotations

import json
import sys
import time

import torch
from many_agents import scenario_with

from marl_tui.config import load_scenario
from marl_tui.train.build import build_run
from marl_tui.train.run_config import RunConfig

PRESETS = ("pricing", "warehouse", "fulfillment")


def main() -> None:
    torch.set_num_threads(1)
    out = {}
    overrides = {k: json.loads(v) for k, _, v in (a.partition("=") for a in sys.argv[1:] if "=" in a)}
    for name in [a for a in sys.argv[1:] if "=" not in a] or PRESETS:
        kind, _, n = name.partition(":")
        scenario = scenario_with(kind, int(n)) if n else load_scenario(name)
        run = build_run(RunConfig(scenario=scenario, algo="maddpg", seed=0, steps=12_000, overrides=overrides))
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
