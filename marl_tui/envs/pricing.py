"""Bertrand price competition: N stores set prices each day (REFERENCE.md §2).

The demand model, best replies and the Nash / collusive reference live in
`pricing_oracle.py` (re-exported here); this module is the batched environment.
"""

from __future__ import annotations

import math

import torch

from marl_tui.config import PricingModel, Scenario
from marl_tui.envs.base import ActionSpace, BatchedEnv, EnvSpec, Oracle, StepResult
from marl_tui.envs.pricing_oracle import (
    PricingSolution,
    best_response,
    coefficient,
    demands,
    deviation_profits,
    exploitability,
    normalised_index,
    profit_vs_nash,
    profits,
    solve,
)

__all__ = [
    "PricingEnv",
    "PricingSolution",
    "best_response",
    "demands",
    "deviation_profits",
    "exploitability",
    "profits",
    "solve",
]


def _fmt(x: float) -> str:
    """Four significant figures, at least one decimal: 33.33, 2222.2, 0.1202."""
    digits = 3 - math.floor(math.log10(abs(x))) if x else 1
    return f"{x:.{min(max(digits, 1), 6)}f}"


class PricingEnv(BatchedEnv):
    """B copies of the N-store pricing game; actions are prices, rewards are profits.

    Observation of store i: yesterday's prices of all stores scaled to [0, 1],
    rotated so its own comes first, then its own profit x reward_scale.
    State: yesterday's scaled prices, nothing else. The day t is left out on purpose:
    episodes end by time limit and learners bootstrap from the last state, so a t / T
    feature would reach 1 only in states that are never trained on (Pardo et al. 2018,
    "Time limits in reinforcement learning"); the game itself does not depend on t.
    """

    def __init__(
        self, scenario: Scenario, n_envs: int, seed: int, device: torch.device | str = "cpu"
    ) -> None:
        super().__init__(n_envs, seed, device)
        self.model: PricingModel = scenario.model
        m, n = self.model, scenario.agents
        levels = m.action_levels
        self.spec = EnvSpec(
            n_agents=n,
            agent_names=tuple(f"store {i + 1}" for i in range(n)),
            obs_dim=n + 1,
            state_dim=n,
            action_space=ActionSpace("continuous", low=m.price_min, high=m.price_max),
            episode_length=scenario.episode_length,
            action_levels=tuple(
                m.price_min + (m.price_max - m.price_min) * k / (levels - 1) for k in range(levels)
            ),
            reward_scale=m.reward_scale,
            cooperative=False,
        )
        # rotation[i] lists the stores in the order store i sees them: itself first.
        self._rotation = (
            torch.arange(n, device=self.device)[:, None] + torch.arange(n, device=self.device)
        ) % n
        self.last_price = torch.zeros(n_envs, n, device=self.device)
        self.last_profit = torch.zeros(n_envs, n, device=self.device)

    # --- observations -------------------------------------------------------
    def _observe(self) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        scaled = (self.last_price - m.price_min) / (m.price_max - m.price_min)
        obs = torch.cat(
            [scaled[:, self._rotation], (self.last_profit * m.reward_scale).unsqueeze(-1)], -1
        )
        return obs, scaled

    # --- episode ------------------------------------------------------------
    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        self._reseed(seed)
        self.t = 0
        m = self.model
        # Yesterday is random so episodes do not all start from one price vector.
        u = self.rng.uniform(self.spec.n_agents)
        self.last_price = m.price_min + u * (m.price_max - m.price_min)
        self.last_profit = profits(self.last_price, m)
        return self._observe()

    def step(self, actions: torch.Tensor) -> StepResult:
        m = self.model
        price = actions.to(self.device, torch.float32).clamp(m.price_min, m.price_max)
        demand = demands(price, m)
        profit = (price - coefficient(m, "cost", price)) * demand
        self.last_price, self.last_profit = price, profit
        self.t += 1
        obs, state = self._observe()
        done = torch.full(
            (self.n_envs,), self.t >= self.spec.episode_length, dtype=torch.bool, device=self.device
        )
        return StepResult(
            obs, state, profit, done, {"price": price, "demand": demand, "profit": profit}
        )

    # --- reference ----------------------------------------------------------
    def solution(self) -> PricingSolution:
        return solve(self.model, self.spec.n_agents)

    def oracle(self) -> Oracle:
        s, n = self.solution(), self.spec.n_agents
        values = s.scalars()
        if not self.model.is_symmetric():  # each store's own answer, as scalars views can read
            for i in range(n):
                values |= {f"nash_price_{i + 1}": s.nash_prices[i], f"nash_profit_{i + 1}": s.nash_profits[i],
                           f"collusive_price_{i + 1}": s.collusive_prices[i]}
        return Oracle(
            values=values,
            summary=(
                f"Nash {_fmt(s.nash_price)} (profit {_fmt(s.nash_profit)}) · "
                f"collusive {_fmt(s.collusive_price)} ({_fmt(s.collusive_profit)})"
            ),
            kpis={
                "mean_price": s.nash_price,
                "mean_profit": s.nash_profit,
                "profit_vs_nash": 0.0,
                "collusion_index": normalised_index(s.nash_profit, s.nash_profit, s.collusive_profit),
                "price_index": normalised_index(s.nash_price, s.nash_price, s.collusive_price),
                "exploitability": 0.0,
            },
            team_return=n * s.nash_profit * self.spec.episode_length,
            has_policy=True,
        )

    def oracle_actions(self) -> torch.Tensor:
        prices = torch.tensor(self.solution().nash_prices, dtype=torch.float32, device=self.device)
        return prices.expand(self.n_envs, -1).clone()

    def kpis(self, info: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | float]:
        """mean price and profit over stores and copies; profit_vs_nash: the mean profit's signed
        distance to the mean Nash profit in % (the target is the band |.| <= NASH_BAND_PCT);
        collusion and price indexes: 0 at Nash, 1 at joint-profit maximum; exploitability:
        the mean gain of a store's best unilateral deviation."""
        s = self.solution()
        mean_price = info["price"].mean()
        mean_profit = info["profit"].mean()
        # float64: the gain is a small difference of large profits.
        gain = exploitability(info["price"].double(), self.model)
        return {
            "mean_price": mean_price,
            "mean_profit": mean_profit,
            "profit_vs_nash": profit_vs_nash(mean_profit, s.nash_profit),
            "collusion_index": normalised_index(mean_profit, s.nash_profit, s.collusive_profit),
            "price_index": normalised_index(mean_price, s.nash_price, s.collusive_price),
            "exploitability": gain.mean(),
        }

    # --- checkpoints --------------------------------------------------------
    def get_state(self) -> dict[str, torch.Tensor]:
        return {
            "last_price": self.last_price.clone(),
            "last_profit": self.last_profit.clone(),
            **self._rng_state(),
        }

    def set_state(self, state: dict[str, torch.Tensor]) -> None:
        self.last_price = state["last_price"].to(self.device, torch.float32).clone()
        self.last_profit = state["last_profit"].to(self.device, torch.float32).clone()
        self._load_rng_state(state)
