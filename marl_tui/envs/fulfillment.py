"""Store fulfilment: N stores decide who ships each incoming order (REFERENCE §4).

Each step one order appears at a uniform point X of the area x area square;
every store's stock and load are drawn afresh (i.i.d. per step), so the
cheapest able store is the exact per-step optimum. Store i would ship at

    cost_i = distance_weight_i * |pos_i - X| + load_weight_i * load_i + inventory_weight_i / inv_i

and cannot ship at all when inv_i = 0 or load_i = max_load. Each store
accepts (1) or declines (0); the team pays

- "resolved": the cheapest feasible accepter serves, plus redundant_penalty per
  extra accepter (infeasible accepters count as extra); miss_penalty if no
  feasible store accepts.
- "strict": the cost of the only accepter if exactly one, feasible, store
  accepts; miss_penalty otherwise.

Every store is paid the team reward / N (cooperative). The reward of step t
concerns the order shown in the observation at t; the next order is then drawn.

The reference values (the cheapest able store and two baselines) are computed in
`fulfillment_oracle.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from marl_tui.envs.base import ActionSpace, BatchedEnv, EnvSpec, Oracle, StepResult
from marl_tui.envs.fulfillment_oracle import ORACLE_GRID, Params, reference
from marl_tui.envs.rng import CounterRNG

# Stands in for "cannot ship" in info["cost"] (with info["feasible"]) so means and plots stay finite.
INFEASIBLE_COST = 1e6
# Normalised cost shown to agents for a store that cannot ship: above every feasible one (<= 1).
INFEASIBLE_OBS = 2.0


@dataclass
class _Draw:
    """One order per copy and every store's situation: [B, 2], [B, N], [B, N]."""

    order_xy: torch.Tensor
    inventory: torch.Tensor
    load: torch.Tensor


def _sample(rng: CounterRNG, p: Params, dtype: torch.dtype) -> _Draw:
    """Draw the next order, stock and load of every copy (one RNG call per copy)."""
    n = len(p.positions)
    u = rng.uniform(2 + 2 * n, dtype=torch.float64)  # float64: floor() never sees a rounded-up 1.0
    inventory = (u[:, 2 : 2 + n] * (p.max_inventory + 1)).floor().clamp_max(p.max_inventory)
    load = (u[:, 2 + n :] * (p.max_load + 1)).floor().clamp_max(p.max_load)
    return _Draw((u[:, :2] * p.area).to(dtype), inventory.to(dtype), load.to(dtype))


@dataclass
class _Costs:
    distance: torch.Tensor  # [B, N]
    feasible: torch.Tensor  # [B, N] bool
    cost: torch.Tensor  # [B, N], INFEASIBLE_COST where it cannot ship
    oracle_store: torch.Tensor  # [B] long, -1 when declining everywhere is best
    oracle_cost: torch.Tensor  # [B]


def _costs(d: _Draw, positions: torch.Tensor, weights: torch.Tensor, p: Params) -> _Costs:
    """weights: [3, N], each store's distance, load and inventory weights."""
    distance = (positions[None] - d.order_xy[:, None]).norm(dim=-1)
    feasible = (d.inventory > 0) & (d.load < p.max_load)
    raw = weights[0] * distance + weights[1] * d.load + weights[2] / d.inventory.clamp_min(1)
    cost = torch.where(feasible, raw, torch.full_like(raw, INFEASIBLE_COST))
    best, store = cost.min(dim=-1)
    # The oracle is the best team action: if even the cheapest able store costs more
    # than a miss (never with the bundled numbers), nobody should accept.
    serve = feasible.any(-1) & (best <= p.miss_penalty)
    oracle_store = torch.where(serve, store, torch.full_like(store, -1))
    oracle_cost = torch.where(serve, best, torch.full_like(best, p.miss_penalty))
    return _Costs(distance, feasible, cost, oracle_store, oracle_cost)


def _one_hot(store: torch.Tensor, n: int) -> torch.Tensor:
    """[B] store indices (-1 = none) as a [B, N] bool mask."""
    return torch.arange(n, device=store.device) == store[:, None]


class FulfillmentEnv(BatchedEnv):
    """B copies of the order-assignment game; actions [B, N] with 1 = accept."""

    def __init__(self, scenario: Any, n_envs: int, seed: int,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(n_envs, seed, device)
        self.model = scenario.model
        self.p = Params.of(self.model)
        self.positions = torch.tensor(self.p.positions, dtype=torch.float32, device=self.device)
        self.weights = torch.tensor([self.p.distance_weight, self.p.load_weight, self.p.inventory_weight],
                                    dtype=torch.float32, device=self.device)
        n = len(self.p.positions)
        self.spec = EnvSpec(
            n_agents=n,
            agent_names=tuple(f"store {i + 1}" for i in range(n)),
            obs_dim=7 if self.model.observation == "ranked" else 3,
            state_dim=3 * n + 2,
            action_space=ActionSpace("discrete", n=2),
            episode_length=scenario.episode_length,
            reward_scale=self.model.reward_scale,
            cooperative=True,
        )
        # Nothing is drawn before reset(), so reset(seed) and a fresh env with that seed agree.
        zeros = torch.zeros(n_envs, n, device=self.device)
        self._show(_Draw(torch.zeros(n_envs, 2, device=self.device), zeros, zeros))

    # --- dynamics ---------------------------------------------------------------
    def _show(self, draw: _Draw) -> None:
        self.order = draw
        self.costs = _costs(draw, self.positions, self.weights, self.p)

    def _features(self) -> torch.Tensor:
        """Per store [inv, dist, load], each scaled to [0, 1]: [B, N, 3]."""
        d = self.order
        return torch.stack([
            d.inventory / self.p.max_inventory,
            self.costs.distance / (self.p.area * math.sqrt(2)),
            d.load / self.p.max_load,
        ], dim=-1)

    def _obs(self) -> torch.Tensor:
        own = self._features()
        if self.model.observation == "own":
            return own
        c = self.costs
        n = self.spec.n_agents
        norm = torch.where(c.feasible, c.cost / self.p.cost_scale, INFEASIBLE_OBS)
        # Rank 0 = cheapest able store; a store that cannot ship gets rank 1.
        cheaper = (norm[:, None, :] < norm[:, :, None]) & c.feasible[:, None, :]
        rank = torch.where(c.feasible, cheaper.sum(-1) / n, 1.0)
        # Best rival: the smallest normalised cost among the other stores.
        others = norm[:, None, :].expand(-1, n, -1).masked_fill(
            torch.eye(n, dtype=torch.bool, device=self.device), INFEASIBLE_OBS
        )
        rival = others.min(-1).values
        extra = torch.stack([c.feasible.float(), norm, rank, rival], dim=-1)
        return torch.cat([own, extra], dim=-1)

    def _state(self) -> torch.Tensor:
        order = self.order.order_xy / self.p.area
        return torch.cat([self._features().flatten(1), order], dim=-1)

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        self._reseed(seed)
        self.t = 0
        self._show(_sample(self.rng, self.p, torch.float32))
        return self._obs(), self._state()

    def _team_cost(self, accept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(team cost [B], store that ships [B] or -1) for the current order."""
        c, p = self.costs, self.p
        n_accept = accept.sum(-1)
        if self.model.reward == "strict":
            only = accept.long().argmax(-1)
            ok = (n_accept == 1) & c.feasible.gather(-1, only[:, None]).squeeze(-1)
            served_cost = c.cost.gather(-1, only[:, None]).squeeze(-1)
            team = torch.where(ok, served_cost, p.miss_penalty)
        else:
            offers = torch.where(accept & c.feasible, c.cost, torch.inf)
            best, only = offers.min(-1)
            ok = torch.isfinite(best)
            redundant = self.model.redundant_penalty * (n_accept - 1)
            team = torch.where(ok, best + redundant, p.miss_penalty)
        served_by = torch.where(ok, only, torch.full_like(only, -1))
        return team, served_by

    def step(self, actions: torch.Tensor) -> StepResult:
        if actions.shape != (self.n_envs, self.spec.n_agents):
            raise ValueError(
                f"actions must be [{self.n_envs}, {self.spec.n_agents}], got {tuple(actions.shape)}"
            )
        accept = actions.to(self.device).long() == 1
        team_cost, served_by = self._team_cost(accept)
        c, d = self.costs, self.order
        info = {
            "order_xy": d.order_xy,
            "inventory": d.inventory,
            "load": d.load,
            "distance": c.distance,
            "cost": c.cost,
            "feasible": c.feasible,
            "accept": accept,
            "served_by": served_by,
            "oracle_store": c.oracle_store,
            "team_cost": team_cost,
            "oracle_cost": c.oracle_cost,
        }
        n = self.spec.n_agents
        reward = (-team_cost / n)[:, None].expand(-1, n).contiguous()
        self.t += 1
        self._show(_sample(self.rng, self.p, torch.float32))
        done = torch.full((self.n_envs,), self.t >= self.spec.episode_length, device=self.device)
        return StepResult(self._obs(), self._state(), reward, done, info)

    # --- reference answer ---------------------------------------------------------
    def oracle(self) -> Oracle:
        v = reference(self.p)
        values = {k: v[k] for k in ("oracle_cost", "nearest_cost", "random_cost",
                                    "nearest_optimal_rate")}
        summary = (
            f"cheapest able store: cost {v['oracle_cost']:.3f} per order "
            f"(nearest store {v['nearest_cost']:.2f}, optimal {v['nearest_optimal_rate']:.1%}; "
            f"random able store {v['random_cost']:.2f})"
        )
        kpis = {
            "optimal_choice_rate": 1.0,
            "regret": 0.0,
            "conflict_rate": 0.0,
            "miss_rate": v["oracle_miss_rate"],
            "mean_cost": v["oracle_cost"],
        }
        return Oracle(
            values=values,
            summary=summary,
            kpis=kpis,
            team_return=-v["oracle_cost"] * self.spec.episode_length,
            has_policy=True,
            extra={k: v[k] for k in ("oracle_miss_rate", "quadrature_error")}
            | {"grid": ORACLE_GRID},
        )

    def oracle_actions(self) -> torch.Tensor:
        """1 for the cheapest able store of each copy, 0 elsewhere: [B, N] long."""
        return _one_hot(self.costs.oracle_store, self.spec.n_agents).long()

    def kpis(self, info: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | float]:
        """Business figures of one step, averaged over the copies.

        optimal_choice_rate: share of copies whose set of accepting stores is exactly
        the oracle's, i.e. only the cheapest able store accepted (nobody, when no
        store should ship). An order no store can ship counts as right whatever the stores
        did: every choice then costs the same miss (regret 0). regret: mean team cost minus mean oracle cost.
        conflict_rate: more than one store accepted. miss_rate: nobody shipped.
        mean_cost: mean team cost (penalties included).
        """
        accept = info["accept"].bool()
        wanted = _one_hot(info["oracle_store"], accept.shape[-1])
        team, best = info["team_cost"].float(), info["oracle_cost"].float()
        return {
            "optimal_choice_rate": ((accept == wanted).all(-1) | ~info["feasible"].any(-1)).float().mean(),
            "regret": (team.mean() - best.mean()),
            "conflict_rate": (accept.sum(-1) > 1).float().mean(),
            "miss_rate": (info["served_by"] < 0).float().mean(),
            "mean_cost": team.mean(),
        }

    # --- checkpoints ----------------------------------------------------------------
    def get_state(self) -> dict[str, torch.Tensor]:
        d = self.order
        return self._rng_state() | {
            "order_xy": d.order_xy.clone(),
            "inventory": d.inventory.clone(),
            "load": d.load.clone(),
        }

    def set_state(self, state: dict[str, torch.Tensor]) -> None:
        self._load_rng_state(state)
        self._show(_Draw(*(state[k].to(self.device, torch.float32)
                           for k in ("order_xy", "inventory", "load"))))
