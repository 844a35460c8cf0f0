"""Find an algorithm by name and build it with its hyperparameters resolved.

Hyperparameters come, later ones winning, from: the algorithm's dataclass
defaults, its defaults for the scenario's kind, the scenario file's
[train.ALGO] table, and finally options given on the command line or in the app.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from msgspec import Meta

from marl_tui.algos.base import Algorithm, Explain, WhatIfValues
from marl_tui.config import ALGOS, STEPS, Scenario, check_table, did_you_mean, with_ranges
from marl_tui.envs.base import BatchedEnv
from marl_tui.errors import UserError

_WHERE = {
    "maddpg": "marl_tui.algos.maddpg:MADDPG",
    "mappo": "marl_tui.algos.mappo:MAPPO",
    "qmix": "marl_tui.algos.qmix:QMIX",
    "random": "marl_tui.algos.baselines:RandomPolicy",
    "oracle": "marl_tui.algos.baselines:OraclePolicy",
}
assert set(_WHERE) == set(ALGOS)


# Ranges for hyperparameters, by name, shared by every algorithm that has them (the
# algorithms' dataclasses stay plain). The CLI's --lr and --gamma are checked against these too.
# They are the ranges of each knob's meaning: loop counts stay countable (an update of 1e9
# epochs never ends), weights stay where float32 arithmetic does not overflow. Sizes that cost
# memory (buffers, rollouts, batches) are weighed against the machine in train/budget.py.
_STEPS = Meta(ge=0, le=10**15, description="env steps (0: none)")
_LOOPS = Meta(ge=1, le=100, description="a loop count per update")
HPARAM_RULES: dict[str, Meta] = {
    "steps": STEPS,
    "gamma": Meta(ge=0, lt=1, description="discount factor"),
    "lr": Meta(gt=0, le=1, description="learning rate"),
    "critic_lr": Meta(gt=0, le=1, description="critic learning rate"),
    "hidden": Meta(ge=1, le=4096, description="hidden units"),
    "mixer_hidden": Meta(ge=1, le=4096, description="mixer hidden units"),
    "tau": Meta(gt=0, le=1, description="soft target update rate"),
    "gae_lambda": Meta(ge=0, le=1, description="GAE lambda"),
    "clip_eps": Meta(gt=0, le=1, description="PPO clip range"),
    "eps_start": Meta(ge=0, le=1, description="epsilon"),
    "eps_end": Meta(ge=0, le=1, description="epsilon"),
    "batch_size": Meta(ge=1, le=10**7, description="transitions per gradient step"),
    "buffer_size": Meta(ge=1, le=10**9, description="replay capacity in transitions"),
    "rollout_length": Meta(ge=1, le=100_000, description="batched steps per rollout"),
    "epochs": Meta(ge=1, le=100, description="passes over the rollout per update"),
    "minibatches": Meta(ge=1, le=4096, description="minibatches per epoch"),
    "updates_per_step": _LOOPS,
    **dict.fromkeys(("learning_starts", "eps_anneal_steps", "noise_decay_steps",
                     "target_update_interval"), _STEPS),
    "entropy_coef": Meta(ge=0, le=100, description="weight of the entropy bonus"),
    "value_coef": Meta(ge=0, le=100, description="weight of the value loss"),
    "action_reg": Meta(ge=0, le=100, description="weight of the action regulariser"),
    "noise_std": Meta(ge=0, le=1, description="exploration noise: a fraction of the action range, or epsilon"),
    "noise_final": Meta(ge=0, le=1, description="final exploration noise"),
    "grad_clip": Meta(gt=0, le=1e6, description="largest gradient norm"),
    "huber_delta": Meta(gt=0, le=1e6, description="Huber threshold of the value loss, in return stds"),
    "gumbel_temperature": Meta(ge=0.01, le=100, description="Gumbel-softmax temperature"),
    # sigma = e^init_log_std in the unit action space [-1, 1]: e^-20 is no noise at all, e^2 all noise.
    "init_log_std": Meta(ge=-20, le=2, description="initial log sigma in the unit action space"),
}
_RULES = tuple(HPARAM_RULES.items())


def algorithm_class(name: str) -> type[Algorithm]:
    if name not in _WHERE:
        raise UserError(f"unknown algorithm {name!r}{did_you_mean(name, ALGOS)}; choose one of: {', '.join(ALGOS)}")
    module, cls = _WHERE[name].split(":")
    return getattr(importlib.import_module(module), cls)


def resolve_hparams(name: str, scenario: Scenario, overrides: dict[str, Any] | None = None) -> Any:
    """The algorithm's hyperparameters for this scenario, checked against HPARAM_RULES."""
    cls = algorithm_class(name)
    table: dict[str, Any] = dict(cls.defaults_by_kind.get(scenario.kind, {}))
    table.update(scenario.train.get(name, {}))
    table.update({k: v for k, v in (overrides or {}).items() if v is not None})
    checked = check_table(with_ranges(cls.Hyperparameters, _RULES), table, f"train.{name}", scenario.source)
    return cls.Hyperparameters(**{k: getattr(checked, k) for k in table})


def make_algorithm(name: str, env: BatchedEnv, hp: Any, device: torch.device) -> Algorithm:
    cls = algorithm_class(name)
    if cls.needs_env:  # a baseline that reads the true state (the oracle)
        return cls(env.spec, hp, device, env=env)  # type: ignore[call-arg]
    return cls(env.spec, hp, device)


def needs_discrete(name: str) -> bool:
    return not algorithm_class(name).capabilities.continuous


def explain_types() -> tuple[type[Explain], ...]:
    """What every algorithm's explain() may return (a frame decodes any of them)."""
    return tuple(algorithm_class(name).explain_type for name in ALGOS)


def what_if_types() -> tuple[type[WhatIfValues], ...]:
    """What the algorithms' what_if() may return (a what-if answer decodes any of them)."""
    return tuple(t for name in ALGOS if (t := algorithm_class(name).what_if_type) is not None)
