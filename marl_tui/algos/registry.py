"""Find an algorithm by name and build it with its hyperparameters resolved.

Hyperparameters come, later ones winning, from: the algorithm's dataclass
defaults, its defaults for the scenario's kind, the scenario file's
[train.ALGO] table, and finally options given on the command line or in the app.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import torch

from marl_tui.algos.base import Algorithm
from marl_tui.config import ALGOS, Scenario, build_dataclass
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


def algorithm_class(name: str) -> type[Algorithm]:
    if name not in _WHERE:
        raise UserError(f"unknown algorithm {name!r}; choose one of: {', '.join(ALGOS)}")
    module, cls = _WHERE[name].split(":")
    return getattr(importlib.import_module(module), cls)


def resolve_hparams(name: str, scenario: Scenario, overrides: dict[str, Any] | None = None) -> Any:
    cls = algorithm_class(name)
    table: dict[str, Any] = dict(getattr(cls, "defaults_by_kind", {}).get(scenario.kind, {}))
    table.update(scenario.train.get(name, {}))
    table.update({k: v for k, v in (overrides or {}).items() if v is not None})
    hp_cls = cls.Hyperparameters  # type: ignore[attr-defined]
    return build_dataclass(hp_cls, table, f"train.{name}", scenario.source)


def hparams_dict(hp: Any) -> dict[str, Any]:
    return dataclasses.asdict(hp)


def make_algorithm(name: str, env: BatchedEnv, hp: Any, device: torch.device) -> Algorithm:
    cls = algorithm_class(name)
    if name == "oracle":
        return cls(env.spec, hp, device, env=env)  # type: ignore[call-arg]
    return cls(env.spec, hp, device)


def needs_discrete(name: str) -> bool:
    return not algorithm_class(name).capabilities.continuous
