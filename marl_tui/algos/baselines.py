"""Reference players every chart can be compared with: uniform random, and the oracle."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from marl_tui.algos.base import ActOutput, Algorithm, Capabilities, Explain, child_generator
from marl_tui.algos.masking import ActionMask
from marl_tui.envs.base import BatchedEnv, EnvSpec
from marl_tui.errors import UserError


@dataclass(frozen=True)
class BaselineHyperparameters:
    steps: int = 20_000  # environment steps to play (baselines learn nothing: no gamma, no lr)


class RandomExplain(Explain):
    """Nothing to explain: every agent draws a uniform action; the panel says so."""


class OracleExplain(Explain):
    summary: str  # the scenario oracle's one-line answer (Nash prices, base-stock levels, ...)


class RandomPolicy(Algorithm):
    """Uniform random actions: the floor any learner must beat. Agents whose actions differ in
    size draw among their own (a padded continuous number is drawn too: its env never gets it)."""

    name = "random"
    title = "Random"
    has_greedy_policy = False
    capabilities = Capabilities(continuous=True, discrete=True, on_policy=False,
                                centralised_critic=False)
    Hyperparameters = BaselineHyperparameters
    explain_type = RandomExplain

    def __init__(self, spec: EnvSpec, hp: BaselineHyperparameters, device: torch.device) -> None:
        super().__init__(spec, hp, device)
        # Seeded from the global RNG, which the trainer seeds from the run's seed.
        self.generator = child_generator(high=2**31 - 1)
        # Greedy play (explore=False: the app's greedy view, evaluations) draws from its own
        # stream, so watching or evaluating a run does not change the run itself.
        self.eval_generator = torch.Generator(device="cpu").manual_seed(
            self.generator.initial_seed() + 1
        )
        self.mask = ActionMask(spec)

    def act(self, obs: torch.Tensor, state: torch.Tensor, explore: bool) -> ActOutput:
        generator = self.generator if explore else self.eval_generator
        shape = obs.shape[:2]
        space = self.spec.action_space
        if space.kind == "discrete":
            a = self.mask.random_index(shape, generator)
        else:  # vector actions: [B, N, d], each dim within its own bounds
            low, high = space.bounds()
            dims = () if space.dims == 1 else (space.dims,)
            a = low + (high - low) * torch.rand((*shape, *dims), generator=generator)
        return ActOutput(a.to(self.device))

    def explain(self, obs: torch.Tensor, state: torch.Tensor) -> RandomExplain:
        return RandomExplain()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state(),
                "eval_generator": self.eval_generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
        self.eval_generator.set_state(state["eval_generator"])


class OraclePolicy(Algorithm):
    """Plays the scenario's exact answer (Nash prices, base-stock orders, cheapest store).

    It reads the environment's true state, which no learner sees: it is the target line,
    not a competitor.
    """

    name = "oracle"
    title = "Oracle"
    capabilities = Capabilities(continuous=True, discrete=True, on_policy=False,
                                centralised_critic=False)
    Hyperparameters = BaselineHyperparameters
    needs_env = True  # built with env=..., see Algorithm.needs_env
    explain_type = OracleExplain

    def __init__(self, spec: EnvSpec, hp: BaselineHyperparameters, device: torch.device,
                 env: BatchedEnv) -> None:
        super().__init__(spec, hp, device)
        if not env.oracle().has_policy:
            raise UserError("this scenario's oracle is a value, not a policy: pick another algorithm")
        self.env = env

    def act(self, obs: torch.Tensor, state: torch.Tensor, explore: bool) -> ActOutput:
        return ActOutput(self.env.oracle_actions())

    def explain(self, obs: torch.Tensor, state: torch.Tensor) -> OracleExplain:
        return OracleExplain(summary=self.env.oracle().summary)
