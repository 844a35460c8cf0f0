"""The batched environment contract every scenario follows.

B independent copies step together as torch tensors on one device. Every agent
takes one action per step: an integer index in [0, n) for discrete scenarios, a
float in [low, high] for continuous ones, or for continuous actions of `dims` > 1
numbers (external environments: MPE's 5 forces, VMAS's 2) a vector, each number
within its own bounds. Actions are [B, N] tensors, or [B, N, dims] when dims > 1. Agents whose
actions differ in size (an external env's speaker with 3 choices beside a listener with 5) share
the largest space, padded: `ActionSpace.per_agent` declares each agent's own size and
`EnvSpec.action_mask()` which indices or numbers are its own. All copies start and
end episodes together (fixed horizon); the trainer calls `reset()` after a
step reports done. Episodes end by time limit (truncation), so learners should
bootstrap from the final observation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from marl_tui.envs.rng import CounterRNG
from marl_tui.errors import UserError


@dataclass(frozen=True)
class ActionSpace:
    kind: Literal["continuous", "discrete"]
    low: float = 0.0  # continuous bounds (when they differ per dim: the lowest and the highest)
    high: float = 1.0
    n: int = 0  # discrete count
    dims: int = 1  # continuous: numbers in one agent's action
    # Continuous, dims > 1, bounds that differ per dim: each dim's (low, high); empty when
    # every dim shares [low, high].
    dim_bounds: tuple[tuple[float, float], ...] = ()
    # Agents whose actions differ in size: each agent's own count n_i (discrete) or d_i
    # (continuous), n or dims above being the largest. A discrete agent i picks only indices
    # < n_i; a continuous one carries dims numbers of which its env receives the first d_i (the
    # rest are padding, ignored). Empty when every agent acts in this one space.
    per_agent: tuple[int, ...] = ()

    def size(self, i: int) -> int:
        """Agent i's own number of choices (discrete) or of numbers (continuous)."""
        if self.per_agent:
            return self.per_agent[i]
        return self.n if self.kind == "discrete" else self.dims

    def own(self, i: int) -> ActionSpace:
        """Agent i's own action space, without padding."""
        if not self.per_agent:
            return self
        k = self.per_agent[i]
        if self.kind == "discrete":
            return replace(self, n=k, per_agent=())
        low, high = zip(*(self.dim_range(j) for j in range(k)), strict=True)
        return continuous_space(list(low), list(high))

    def describe(self) -> str:
        if self.per_agent:  # each agent's own, in the agents' order
            return " | ".join(self.own(i).describe() for i in range(len(self.per_agent)))
        if self.kind == "discrete":
            return f"discrete({self.n})"
        if self.dims == 1:
            return f"continuous[{self.low:g}, {self.high:g}]"
        if self.dim_bounds:
            return "continuous " + " × ".join(f"[{lo:g}, {hi:g}]" for lo, hi in self.dim_bounds)
        return f"continuous[{self.low:g}, {self.high:g}]^{self.dims}"

    def dim_range(self, k: int) -> tuple[float, float]:
        """(low, high) of dim k of a continuous action."""
        return self.dim_bounds[k] if self.dim_bounds else (self.low, self.high)

    def bounds(self, device: torch.device | str = "cpu") -> tuple[float | torch.Tensor, float | torch.Tensor]:
        """(low, high) to scale actions with: floats when every dim shares them (one number per
        agent keeps the same arithmetic as always), [dims] tensors when they differ per dim."""
        if not self.dim_bounds:
            return self.low, self.high
        lo, hi = zip(*self.dim_bounds, strict=True)
        return torch.tensor(lo, device=device), torch.tensor(hi, device=device)


def continuous_space(low: list[float], high: list[float]) -> ActionSpace:
    """The continuous ActionSpace of per-dim bounds (a Box's low and high, flattened)."""
    dims = len(low)
    same = len(set(low)) == 1 and len(set(high)) == 1
    per_dim = () if same else tuple(zip(low, high, strict=True))
    return ActionSpace("continuous", low=min(low), high=max(high), dims=dims, dim_bounds=per_dim)


@dataclass(frozen=True)
class EnvSpec:
    n_agents: int
    agent_names: tuple[str, ...]
    obs_dim: int  # per agent
    state_dim: int  # global state for centralised critics / mixers
    action_space: ActionSpace
    episode_length: int
    # Continuous scenarios: the values offered to discrete-action algorithms.
    action_levels: tuple[float, ...] = ()
    # Reward multiplier learners use (profits in money would swamp a network).
    reward_scale: float = 1.0
    # True when every agent is paid the same team reward (share of it).
    cooperative: bool = False

    def action_mask(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """[N, A] bool, True where index a (discrete) or number a (continuous) is agent i's own;
        A = action_space.n or .dims. Padding is last: agent i's own are a < action_space.size(i)."""
        space = self.action_space
        width = space.n if space.kind == "discrete" else space.dims
        sizes = torch.tensor([space.size(i) for i in range(self.n_agents)], device=device)
        return torch.arange(width, device=device) < sizes[:, None]


@dataclass
class StepResult:
    obs: torch.Tensor  # [B, N, O]
    state: torch.Tensor  # [B, S]
    reward: torch.Tensor  # [B, N], raw units (money, cost)
    done: torch.Tensor  # [B] bool; all equal for fixed-horizon scenarios
    info: dict[str, torch.Tensor]  # domain quantities, [B, N] or [B]


@dataclass(frozen=True)
class Oracle:
    """The exact or analytical reference for a scenario's parameters."""

    values: dict[str, Any]  # the keys `marl-tui info --json` prints under "oracle"
    summary: str  # one line for tables and panels
    kpis: dict[str, float]  # the scenario's KPIs when the oracle policy plays
    team_return: float  # expected team return of one episode under the oracle policy
    has_policy: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class BatchedEnv(ABC):
    """B copies of one scenario. Subclasses implement the model; this class keeps the RNG."""

    spec: EnvSpec

    def __init__(self, n_envs: int, seed: int, device: torch.device | str = "cpu") -> None:
        self.n_envs = n_envs
        self.device = torch.device(device)
        self.rng = CounterRNG(torch.arange(n_envs, device=self.device) + seed)
        self.t = 0  # step within the episode

    @abstractmethod
    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Start a new episode in every copy. A seed restarts the random streams."""

    @abstractmethod
    def step(self, actions: torch.Tensor) -> StepResult:
        """actions: [B, N] float (continuous) or long (discrete); [B, N, dims] when dims > 1."""

    @abstractmethod
    def oracle(self) -> Oracle:
        """Reference answer computed from this scenario's parameters."""

    def oracle_actions(self) -> torch.Tensor | None:
        """The oracle policy's actions for the current state, or None if it has no policy."""
        return None

    def to_native(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions in the scenario's own units (a discretised view maps indices to values)."""
        return actions

    @abstractmethod
    def kpis(self, info: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | float]:
        """The scenario's business figures for one step, averaged over the copies: 0-dim
        tensors on the env's device (or constants), so a loop can sum them without a sync."""

    # --- state for checkpoints -------------------------------------------------
    @abstractmethod
    def get_state(self) -> dict[str, torch.Tensor]:
        """Every tensor needed to continue exactly (the RNG included)."""

    @abstractmethod
    def set_state(self, state: dict[str, torch.Tensor]) -> None: ...

    def _reseed(self, seed: int | None) -> None:
        if seed is not None:
            self.rng = CounterRNG(torch.arange(self.n_envs, device=self.device) + seed)

    def _rng_state(self) -> dict[str, torch.Tensor]:
        return {f"rng.{k}": v for k, v in self.rng.state_dict().items()} | {
            "t": torch.tensor(self.t)
        }

    def _load_rng_state(self, state: dict[str, torch.Tensor]) -> None:
        self.rng.load_state_dict({"seeds": state["rng.seeds"], "counter": state["rng.counter"]})
        self.t = int(state["t"])


class DiscretisedEnv(BatchedEnv):
    """A continuous scenario seen through its action levels (for QMIX and friends)."""

    def __init__(self, inner: BatchedEnv) -> None:  # no super().__init__: it wraps `inner`
        self.inner = inner
        if inner.spec.action_space.kind != "continuous":
            raise ValueError("DiscretisedEnv needs a continuous scenario")
        if not inner.spec.action_levels:  # an external env's: marl-tui does not choose levels for it
            raise UserError("this environment's actions are continuous and it offers no action levels: "
                            "QMIX needs discrete actions; use mappo or maddpg")
        self.levels = torch.tensor(inner.spec.action_levels, device=inner.device)
        s = inner.spec
        self.spec = EnvSpec(
            n_agents=s.n_agents,
            agent_names=s.agent_names,
            obs_dim=s.obs_dim,
            state_dim=s.state_dim,
            action_space=ActionSpace("discrete", n=len(s.action_levels)),
            episode_length=s.episode_length,
            action_levels=s.action_levels,
            reward_scale=s.reward_scale,
            cooperative=s.cooperative,
        )
        self.n_envs, self.device = inner.n_envs, inner.device

    def to_native(self, actions: torch.Tensor) -> torch.Tensor:
        return self.levels[actions.long()]

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner.reset(seed)

    def step(self, actions: torch.Tensor) -> StepResult:
        return self.inner.step(self.to_native(actions))

    def oracle(self) -> Oracle:
        return self.inner.oracle()

    def oracle_actions(self) -> torch.Tensor | None:
        native = self.inner.oracle_actions()
        if native is None:
            return None
        return (native.unsqueeze(-1) - self.levels).abs().argmin(-1)

    def kpis(self, info: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | float]:
        return self.inner.kpis(info)

    def get_state(self) -> dict[str, torch.Tensor]:
        return self.inner.get_state()

    def set_state(self, state: dict[str, torch.Tensor]) -> None:
        self.inner.set_state(state)

    @property
    def t(self) -> int:  # type: ignore[override]
        return self.inner.t


# kind -> what builds its env from (scenario, n_envs, seed, device): a class or a function.
_ENV_BUILDERS = {
    "pricing": "marl_tui.envs.pricing:PricingEnv",
    "warehouse": "marl_tui.envs.warehouse:WarehouseEnv",
    "fulfillment": "marl_tui.envs.fulfillment:FulfillmentEnv",
    "pettingzoo": "marl_tui.envs.external.pettingzoo:make_pettingzoo",
    "vmas": "marl_tui.envs.external.vmas:VmasBatched",
}


def make_env(scenario: Any, n_envs: int | None = None, seed: int | None = None,
             device: torch.device | str = "cpu") -> BatchedEnv:
    """Build the batched env for a validated Scenario (see marl_tui.config)."""
    import importlib

    module, name = _ENV_BUILDERS[scenario.kind].split(":")
    build = getattr(importlib.import_module(module), name)
    return build(
        scenario,
        n_envs=scenario.parallel_envs if n_envs is None else n_envs,
        seed=scenario.seed if seed is None else seed,
        device=device,
    )
