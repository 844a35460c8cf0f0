"""What the external-environment adapters share: importing an optional package, the absent
oracle, padding the observations and actions of agents with different sizes, and the one KPI
they report."""

from __future__ import annotations

import importlib
from dataclasses import replace
from types import ModuleType

import torch

from marl_tui.config import EXTERNAL_KPI
from marl_tui.envs.base import ActionSpace, BatchedEnv, Oracle, StepResult, continuous_space
from marl_tui.errors import UserError

# Where the optional packages come from: kind -> the marl-tui extra that installs them.
EXTRAS = {"pettingzoo": "pettingzoo", "vmas": "vmas"}

def import_optional(module: str, kind: str) -> ModuleType:
    """Import `module`, or a UserError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = exc.name or module
        raise UserError(f"kind = {kind!r} needs the Python package {missing!r}, which is not installed: "
                        f"pip install 'marl-tui[{EXTRAS[kind]}]'") from None


class ExternalEnv(BatchedEnv):
    """What every external adapter's BatchedEnv shares: no oracle, a step's info (the team reward
    and every agent's observation: the generic scene panel draws them, an external env has no
    domain quantities marl-tui knows), and the one KPI."""

    def oracle(self) -> Oracle:
        # Views show "no oracle" where a figure would be.
        return Oracle(values={}, summary="no oracle (external environment)", kpis={}, team_return=float("nan"))

    def kpis(self, info: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | float]:
        # The reward summed over agents, averaged over copies: a 0-dim tensor (no sync).
        return {EXTERNAL_KPI: info["team_reward"].mean()}

    def _result(self, obs: torch.Tensor, state: torch.Tensor, reward: torch.Tensor) -> StepResult:
        """A step's result [B, N, O] / [B, N]; every copy's episode ends at the horizon."""
        done = torch.full((self.n_envs,), self.t >= self.spec.episode_length, device=self.device)
        return StepResult(obs, state, reward, done, {"team_reward": reward.sum(-1), "obs": obs})


def padded_width(sizes: list[int]) -> int:
    """Agents whose observations differ in size are zero-padded to the largest (README:
    "Your own environment"); the networks see one width."""
    return max(sizes)


def joint_action_space(spaces: list[ActionSpace], where: str) -> ActionSpace:
    """The one space the learners act in for agents acting in `spaces` (agent i in spaces[i]).

    One space when every agent shares it. Agents whose actions differ in size are padded to the
    largest (README: "Your own environment"): Discrete(n_i) agents act in Discrete(max n_i),
    never picking an index >= n_i (EnvSpec.action_mask); Box(d_i) agents carry max d_i numbers,
    of which the adapter passes agent i its first d_i. Refused, in one line: discrete agents beside
    continuous ones, and a number two agents share whose bounds differ.
    """
    first = spaces[0]
    if all(s == first for s in spaces):
        return first
    for i, s in enumerate(spaces):
        if s.kind != first.kind:
            raise UserError(f"{where}: agent {i} acts in {s.describe()} but agent 0 in {first.describe()}; "
                            "marl-tui trains agents whose actions are all discrete or all continuous: "
                            "make them one kind (e.g. [model] continuous_actions)")
    sizes = tuple(s.n if s.kind == "discrete" else s.dims for s in spaces)
    if first.kind == "discrete":
        return ActionSpace("discrete", n=max(sizes), per_agent=sizes)
    low, high = [], []
    for k in range(max(sizes)):  # number k's bounds: the same for every agent that has it
        having = [(i, s.dim_range(k)) for i, s in enumerate(spaces) if k < s.dims]
        (i0, bounds), *rest = having
        for i, other in rest:
            if other != bounds:
                raise UserError(f"{where}: number {k} of agent {i}'s action lies in [{other[0]:g}, {other[1]:g}] "
                                f"but agent {i0}'s in [{bounds[0]:g}, {bounds[1]:g}]; marl-tui pads actions of "
                                "different sizes but needs the numbers agents share to share bounds: "
                                "give them the same bounds")
        low.append(bounds[0])
        high.append(bounds[1])
    return replace(continuous_space(low, high), per_agent=sizes)


def check_agents(found: int, expected: int, where: str) -> None:
    if found != expected:
        raise UserError(f"{where}: the environment has {found} agents but the scenario says agents = "
                        f"{expected}: set agents = {found}")
