"""The contract every learner (and baseline) follows, so one trainer drives them all.

The trainer calls, for every batched step:
    out = algo.act(obs, state, explore=True)        # actions [B, N] (+ what it must remember)
    algo.observe(Transition(...))                    # rewards already multiplied by reward_scale
    if algo.ready(): metrics = algo.update()         # dict of plain floats
and `algo.explain(obs, state)` when a view asks "why?": the algorithm's own Explain struct.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec
import torch

from marl_tui.envs.base import EnvSpec


@dataclass(frozen=True)
class Capabilities:
    """Declared, not discovered: what an algorithm can handle."""

    continuous: bool
    discrete: bool
    on_policy: bool
    centralised_critic: bool


class Explain(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """The numbers behind the study guide's equations for one decision of copy 0.

    Each algorithm subclasses it next to its code (MADDPGExplain, ...). Fields are plain data
    (numbers, strings, None, tuples of them) so a frame carries them through msgspec msgpack;
    tag=True tags each subclass with its class name, so a union of them decodes. msgspec
    does not inherit kw_only: a subclass with optional fields before required ones repeats it.
    """


class WhatIfValues(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """An algorithm's own view of one decision of copy 0 with agent i's action replaced
    (Algorithm.what_if): subclassed next to each algorithm's code, plain data like Explain."""


@dataclass(frozen=True)
class Counterfactual:
    """One decision of copy 0, as it was and with agent i's action replaced, and what a copy of
    the env made of each (the question Algorithm.what_if answers)."""

    obs: torch.Tensor  # [1, N, O] the observation the decision was taken on
    state: torch.Tensor  # [1, S]
    joint: torch.Tensor  # [2, N] as act() returns actions: row 0 as taken, row 1 with a_i replaced
    agent: int  # i
    reward: torch.Tensor  # [2, N] what each row earned, x reward_scale (the learners' units)
    next_state: torch.Tensor  # [2, S] the state each row led to


@dataclass
class ActOutput:
    actions: torch.Tensor  # [B, N]: float (continuous) or long (discrete)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # log-probs, values, ...


@dataclass
class Transition:
    obs: torch.Tensor  # [B, N, O]
    state: torch.Tensor  # [B, S]
    actions: torch.Tensor  # [B, N], or [B, N, d] for continuous actions of d > 1 numbers
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
    explain_type: ClassVar[type[Explain]]  # what explain() returns
    # False for a policy whose explore=False play is still random (the random baseline): no
    # greedy episodes are recorded or scored for it.
    has_greedy_policy: ClassVar[bool] = True
    capabilities: ClassVar[Capabilities]
    # The frozen dataclass of this algorithm's hyperparameters (field defaults = its defaults).
    Hyperparameters: ClassVar[type]
    # Defaults per scenario kind ("pricing", ...), over the dataclass's, under the scenario file's.
    defaults_by_kind: ClassVar[dict[str, dict[str, Any]]] = {}
    # Which hyperparameter the app's "exploration" knob sets (None: the algorithm has none).
    exploration_field: ClassVar[str | None] = None
    # True for a baseline that reads the env's true state (the oracle): it is built as
    # cls(spec, hp, device, env=env), and acts on whichever env `algo.env` points to.
    needs_env: ClassVar[bool] = False
    # What what_if() returns; None for a policy with no networks to ask (the baselines).
    what_if_type: ClassVar[type[WhatIfValues] | None] = None
    # True for a learner that trains several seeds as one stacked learner (train/seed_batch.py's
    # SeedStackable: stack, write_back, update_seeds).
    supports_seed_stack: ClassVar[bool] = False

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

    @abstractmethod
    def explain(self, obs: torch.Tensor, state: torch.Tensor) -> Explain:
        """The numbers behind the study guide's equations for copy 0 (an `explain_type`)."""

    def what_if(self, cf: Counterfactual) -> WhatIfValues | None:
        """What this algorithm's networks make of the decision as taken and as replaced (a
        `what_if_type`); None where it has none. Reads the networks only: nothing it holds
        (weights, buffers, generators) may change."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - nothing to restore
        """Restore everything state_dict() saved."""


def counterfactual_advantage(Q_taken: torch.Tensor, Q_each: torch.Tensor, pi_i: torch.Tensor) -> float:
    """COMA's A_i = Q(s, a) - sum_a' pi_i(a'|o_i) Q(s, (a_-i, a')): Q_each [A] is the critic's
    value with agent i's action replaced by each a', pi_i [A] its policy over them."""
    return float(Q_taken - (pi_i * Q_each).sum())


def floats(x: torch.Tensor) -> tuple[float, ...]:
    """A 1-D tensor as a tuple of Python floats, for an Explain field."""
    return tuple(x.tolist())


def float_rows(x: torch.Tensor) -> tuple[tuple[float, ...], ...]:
    """A 2-D tensor as a tuple of rows of Python floats, for an Explain field."""
    return tuple(tuple(row) for row in x.tolist())


def child_seed(high: int = 2**62) -> int:
    """A seed in [0, high) drawn from the global RNG, which the trainer seeded from the run's seed.

    Every learner draws its own streams' seeds this way at construction, so the same run seed
    gives the same run. `high` differs between algorithms for historical reasons (MADDPG and the
    baselines use 2**31 - 1); it stays, because changing it changes every run's numbers.
    """
    return int(torch.randint(0, high, (1,)))


def child_generator(high: int = 2**62) -> torch.Generator:
    """A CPU generator seeded with child_seed(high) (its seed: generator.initial_seed()).

    CPU, whatever the training device: draw on the CPU and move the result (.to(device)), so
    a checkpoint's generator state loads on any machine and CPU runs repeat exactly.
    """
    return torch.Generator(device="cpu").manual_seed(child_seed(high))


def mean_metrics(n: int, step: Callable[[], Mapping[str, float | torch.Tensor]]) -> dict[str, float]:
    """Call step() n times (n gradient steps) and average each metric over the calls.

    step() may return 0-dim tensors: they are summed where they are (in float64, as Python
    floats would be) and read to the host together, once, after the n steps."""
    sums: dict[str, float | torch.Tensor] = {}
    for _ in range(n):
        for k, v in step().items():
            v = v.detach().double() if isinstance(v, torch.Tensor) else v
            sums[k] = sums[k] + v if k in sums else v
    if not sums:
        return {}
    names = list(sums)
    device = next((v.device for v in sums.values() if isinstance(v, torch.Tensor)), None)
    means = torch.stack([torch.as_tensor(sums[k], dtype=torch.float64, device=device) for k in names]) / n
    return dict(zip(names, means.tolist(), strict=True))


def as_vectors(a: torch.Tensor, dims: int) -> torch.Tensor:
    """Continuous actions as the env takes them ([..., N] when dims == 1, else [..., N, dims])
    as [..., N, dims]: the learners' one shape."""
    return a.unsqueeze(-1) if dims == 1 else a


def as_env_actions(a: torch.Tensor, dims: int) -> torch.Tensor:
    """[..., N, dims] back to the env's shape (see as_vectors)."""
    return a.squeeze(-1) if dims == 1 else a


Bound = float | torch.Tensor  # a float, or one per action dim ([dims], see ActionSpace.bounds)


def scaled_to_bounds(x: torch.Tensor, low: Bound, high: Bound) -> torch.Tensor:
    """Map a value in [-1, 1] (tanh output) to [low, high]."""
    return low + (x + 1.0) * 0.5 * (high - low)


def bounds_to_unit(a: torch.Tensor, low: Bound, high: Bound) -> torch.Tensor:
    """Map an action in [low, high] back to [-1, 1] (what critics and policies see)."""
    return 2.0 * (a - low) / (high - low) - 1.0
