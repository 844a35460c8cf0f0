"""What the external-environment adapters share: importing an optional package, the absent
oracle, padding observations of agents with different sizes, and the one KPI they report."""

from __future__ import annotations

import importlib
from types import ModuleType

import torch

from marl_tui.config import EXTERNAL_KPI
from marl_tui.envs.base import ActionSpace, BatchedEnv, Oracle, StepResult
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


def same_action_space(spaces: list[ActionSpace], where: str) -> ActionSpace:
    """The one action space every agent shares, or a UserError: actions are not padded (an
    action a padded agent could pick would mean nothing to its env)."""
    first = spaces[0]
    for i, s in enumerate(spaces[1:], start=1):
        if s != first:
            raise UserError(f"{where}: agent {i} acts in {s.describe()} but agent 0 in {first.describe()}; "
                            "marl-tui trains agents that share one action space")
    return first


def check_agents(found: int, expected: int, where: str) -> None:
    if found != expected:
        raise UserError(f"{where}: the environment has {found} agents but the scenario says agents = "
                        f"{expected}: set agents = {found}")
