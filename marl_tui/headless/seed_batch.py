"""`marl-tui train-seeds`: several seeds of one algorithm trained batched in one process
(train/seed_batch.py), each into its own run directory exactly as `marl-tui train` would write it
(so each is watched, evaluated, compared and resumed on its own). `marl-tui compare
--batched-seeds` runs it; progress lines follow the first seed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from marl_tui.config import Scenario
from marl_tui.errors import UserError
from marl_tui.headless.output import Out
from marl_tui.headless.runs import ending, follow
from marl_tui.headless.signals import StopOnSignal, signal_name
from marl_tui.train.rundir import check_new, init_run_dir, lock_run_dir


def run_seed_batch(
    scenario: Scenario,
    algo: str,
    seeds: Sequence[int],
    outs: Sequence[Path],
    steps: int | None,
    n_envs: int | None,
    device: str,
    overrides: dict[str, Any],
    jsonl: bool = False,
    stream: TextIO | None = None,
    checkpoint_every: int | None = None,
) -> int:
    """Train `seeds` batched, seed i into outs[i]. Returns the exit code: 0 when every seed
    finished, else the first other seed's (1: a fault, 128 + n: a signal)."""
    o = Out(stream)
    with StopOnSignal(o) as signals:
        from marl_tui.algos.registry import algorithm_class
        from marl_tui.train.build import build_run
        from marl_tui.train.controls import Controls
        from marl_tui.train.run_config import RunConfig
        from marl_tui.train.seed_batch import SeedBatch, check_stackable

        check_stackable(algorithm_class(algo))
        if len(seeds) != len(outs):
            raise UserError(f"{len(seeds)} seeds but {len(outs)} --out folders: give one --out per --seed")
        if len(set(seeds)) != len(seeds):
            raise UserError(f"--seed {', '.join(map(str, seeds))}: a seed is given twice; give each once")
        for out in outs:
            check_new(out)
        controls = Controls()  # one pair for all: a signal stops every seed
        trainers = [build_run(RunConfig(scenario=scenario, algo=algo, steps=steps, seed=seed, n_envs=n_envs,
                                        device=device, overrides=overrides, out_dir=out,
                                        checkpoint_every=checkpoint_every),
                              controls=controls, training_frames=False)
                    for seed, out in zip(seeds, outs, strict=True)]
        batch = SeedBatch(trainers)
        if signals.signum is not None:
            o.err(f"marl-tui: stopped by {signal_name(signals.signum).split(' ')[0]} during start-up, "
                  "before the run directories were made; nothing was written; start again with the "
                  "same command")
            return 128 + signals.signum
        with contextlib.ExitStack() as locks:
            for trainer, out in zip(trainers, outs, strict=True):
                init_run_dir(trainer, out)
                locks.enter_context(contextlib.closing(lock_run_dir(out)))
            signals.attach(trainers[0])
            lead = trainers[0]
            if not jsonl:
                o.say(f"marl-tui: training {algo} on {scenario.name}, seeds {', '.join(map(str, seeds))} "
                      f"batched, {lead.total_steps:,} steps each ({lead.env.n_envs} copies per seed, "
                      f"{lead.device}) -> {', '.join(map(str, outs))}")
                o.say(f"reference: {lead.oracle.summary}")
            started = time.monotonic()

            def train() -> None:
                with contextlib.suppress(Exception):  # each run holds its error for its ending
                    batch.run()

            thread = threading.Thread(target=train, name="marl-tui-seeds", daemon=True)
            thread.start()
            follow(thread, lead, o, jsonl, signals)
            wall = time.monotonic() - started
            codes = [ending(trainer, out, o, jsonl, signals, wall, 0)
                     for trainer, out in zip(trainers, outs, strict=True)]
        return next((code for code in codes if code), 0)
