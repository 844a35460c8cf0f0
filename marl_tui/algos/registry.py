"""Find an algorithm by name and build it with its hyperparameters resolved.

Hyperparameters come, later ones winning, from: the algorithm's dataclass
defaults, its defaults for the scenario's kind, the scenario file's
[train.ALGO] table, and finally options given on the command line or in the app.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from marl_tui.algos.base import Algorithm, Explain
from marl_tui.config import ALGOS, Scenario, build_dataclass, rule
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


# Ranges for hyperparameters, by name, shared by every algorithm that has them.
_COUNT = rule("a count", lo=1)
_STEPS = rule("env steps (0: none)", lo=0)
_WEIGHT = rule("a weight or scale", lo=0)
HPARAM_RULES: dict[str, dict[str, Any]] = {
    "steps": rule("training budget in environment steps", lo=1),
    "gamma": rule("discount factor", lo=0, hi=1, hi_open=True),
    "lr": rule("learning rate", lo=0, lo_open=True, hi=1),
    "critic_lr": rule("critic learning rate", lo=0, lo_open=True, hi=1),
    "hidden": rule("hidden units", lo=1, hi=4096),
    "mixer_hidden": rule("mixer hidden units", lo=1, hi=4096),
    "tau": rule("soft target update rate", lo=0, lo_open=True, hi=1),
    "gae_lambda": rule("GAE lambda", lo=0, hi=1),
    "clip_eps": rule("PPO clip range", lo=0, lo_open=True, hi=1),
    "eps_start": rule("epsilon", lo=0, hi=1),
    "eps_end": rule("epsilon", lo=0, hi=1),
    **dict.fromkeys(("batch_size", "buffer_size", "rollout_length", "epochs", "minibatches",
                     "updates_per_step"), _COUNT),
    **dict.fromkeys(("learning_starts", "eps_anneal_steps", "noise_decay_steps",
                     "target_update_interval"), _STEPS),
    **dict.fromkeys(("entropy_coef", "value_coef", "noise_std", "noise_final", "action_reg", "grad_clip",
                     "huber_delta", "gumbel_temperature"), _WEIGHT),
}


def algorithm_class(name: str) -> type[Algorithm]:
    if name not in _WHERE:
        raise UserError(f"unknown algorithm {name!r}; choose one of: {', '.join(ALGOS)}")
    module, cls = _WHERE[name].split(":")
    return getattr(importlib.import_module(module), cls)


def resolve_hparams(name: str, scenario: Scenario, overrides: dict[str, Any] | None = None) -> Any:
    cls = algorithm_class(name)
    table: dict[str, Any] = dict(cls.defaults_by_kind.get(scenario.kind, {}))
    table.update(scenario.train.get(name, {}))
    table.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return build_dataclass(cls.Hyperparameters, table, f"train.{name}", scenario.source, HPARAM_RULES)


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
