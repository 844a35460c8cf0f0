"""The contract every learner (and baseline) follows, so one trainer drives them all.

The trainer calls, for every batched step:
    out = algo.act(obs, state, explore=True)        # actions [B, N] (+ what it must remember)
    algo.observe(Transition(...))                    # rewards already multiplied by reward_scale
    if algo.ready(): metrics = algo.update()         # dict of plain floats
and `algo.explain(obs, state)` when a view asks "why?".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from marl_tui.envs.base import EnvSpec


@dataclass(frozen=True)
class Capabilities:
    """Declared, not discovered: what an algorithm can handle."""

    continuous: bool
    discrete: bool
    on_policy: bool
    centralised_critic: bool


@dataclass
class ActOutput:
    actions: torch.Tensor  # [B, N]: float (continuous) or long (discrete)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # log-probs, values, ...


@dataclass
class Transition:
    obs: torch.Tensor  # [B, N, O]
    state: torch.Tensor  # [B, S]
    actions: torch.Tensor  # [B, N]
    reward: torch.Tensor  # [B, N], already x spec.reward_scale
    next_obs: torch.Tensor
    next_state: torch.Tensor
    terminated: torch.Tensor  # [B] bool: a real end, no bootstrap
    truncated: torch.Tensor  # [B] bool: time limit, bootstrap from next_obs
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


class Algorithm(ABC):
    """One learner for all agents of a scenario."""

    name: ClassVar[str]
    title: ClassVar[str]  # shown in the app, e.g. "MAPPO"
    capabilities: ClassVar[Capabilities]
    # Which hyperparameter the app's "exploration" knob sets (None: the algorithm has none).
    exploration_field: ClassVar[str | None] = None

    def __init__(self, spec: EnvSpec, hp: Any, device: torch.device) -> None:
        self.spec = spec
        self.hp = hp
        self.device = device

    @abstractmethod
    def act(self, obs: torch.Tensor, state: torch.Tensor, explore: bool) -> ActOutput: ...

    def observe(self, transition: Transition) -> None:  # noqa: B027 - baselines remember nothing
        """Store what learning needs."""

    def ready(self) -> bool:
        """True when update() has something to learn from."""
        return False

    def update(self) -> dict[str, float]:
        """One learning step; returns scalar metrics (losses, entropy/epsilon, grad norms...)."""
        return {}

    def exploration(self) -> tuple[str, float] | None:
        """The current exploration figure for the status line, e.g. ("epsilon", 0.31)."""
        return None

    def explain(self, obs: torch.Tensor, state: torch.Tensor) -> dict[str, Any]:
        """The numbers behind the study guide's equations, as plain Python data, for copy 0."""
        return {"algo": self.name}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - nothing to restore
        """Restore everything state_dict() saved."""


def scaled_to_bounds(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Map a value in [-1, 1] (tanh output) to [low, high]."""
    return low + (x + 1.0) * 0.5 * (high - low)


def bounds_to_unit(a: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Map an action in [low, high] back to [-1, 1] (what critics and policies see)."""
    return 2.0 * (a - low) / (high - low) - 1.0
