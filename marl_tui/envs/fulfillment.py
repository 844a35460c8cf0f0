"""Store fulfilment: N stores decide who ships each incoming order (REFERENCE §4).

Each step one order appears at a uniform point X of the area x area square;
every store's stock and load are drawn afresh (i.i.d. per step), so the
cheapest able store is the exact per-step optimum. Store i would ship at

    cost_i = distance_weight * |pos_i - X| + load_weight * load_i + inventory_weight / inv_i

and cannot ship at all when inv_i = 0 or load_i = max_load. Each store
accepts (1) or declines (0); the team pays

- "resolved": the cheapest feasible accepter serves, plus redundant_penalty per
  extra accepter (infeasible accepters count as extra); miss_penalty if no
  feasible store accepts.
- "strict": the cost of the only accepter if exactly one, feasible, store
  accepts; miss_penalty otherwise.

Every store is paid the team reward / N (cooperative). The reward of step t
concerns the order shown in the observation at t; the next order is then drawn.

Reference values (FulfillmentEnv.oracle), computed, not sampled, from the scenario's
numbers. Given the order location X the stores are independent and a store's cost
takes (max_inventory + 1)(max_load + 1) equally likely values, +inf for the infeasible
ones, so given X everything is exact:

- oracle (cheapest able store, or nobody if even that costs more than a miss):
  E[min(min_i C_i, miss)] = int_0^miss prod_i P(C_i > c) dc, a step function integrated
  piece by piece between its sorted breakpoints;
- nearest store (ships whenever it can): P(able) E[C | able] + P(unable) miss; it is the
  oracle's choice with probability sum_v P(C_near = v) [v <= miss] prod_{j != near} P(C_j > v);
- random able store: store i ships with probability (1 - (1 - f)^N) / N, f = P(able),
  at its mean able cost; a miss when none is able.

The mean over X uniform on the square is a midpoint rule on a 128 x 128 grid, Richardson-
extrapolated with 64 x 64 (error O(h^2); the extrapolation moves the values by < 1e-4 and
the grid 256 / 512 values agree to ~1e-5). Bundled layout: oracle 3.7368, nearest 8.9226
(optimal 53.56 %), random 7.1826, in 0.1-0.4 s, cached per parameter set.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from marl_tui.envs.base import ActionSpace, BatchedEnv, EnvSpec, Oracle, StepResult
from marl_tui.envs.rng import CounterRNG

# Stands in for "cannot ship" in info["cost"] (with info["feasible"]) so means and plots stay finite.
INFEASIBLE_COST = 1e6
# Normalised cost shown to agents for a store that cannot ship: above every feasible one (<= 1).
INFEASIBLE_OBS = 2.0
# Quadrature points per side of the square for the reference values (see _reference).
ORACLE_GRID = 128


@dataclass(frozen=True)
class _Params:
    """The model's numbers as a hashable key (positions as a tuple) for the oracle cache."""

    positions: tuple[tuple[float, float], ...]
    area: float
    distance_weight: float
    load_weight: float
    inventory_weight: float
    max_inventory: int
    max_load: int
    miss_penalty: float

    @classmethod
    def of(cls, model: Any) -> _Params:
        return cls(
            positions=tuple((float(x), float(y)) for x, y in model.positions),
            area=float(model.area),
            distance_weight=float(model.distance_weight),
            load_weight=float(model.load_weight),
            inventory_weight=float(model.inventory_weight),
            max_inventory=int(model.max_inventory),
            max_load=int(model.max_load),
            miss_penalty=float(model.miss_penalty),
        )

    @property
    def cost_scale(self) -> float:
        """The dearest feasible cost: far corner, one below full load, one unit of stock."""
        worst = (
            self.distance_weight * self.area * math.sqrt(2)
            + self.load_weight * (self.max_load - 1)
            + self.inventory_weight
        )
        return worst if worst > 0 else 1.0


@dataclass
class _Draw:
    """One order per copy and every store's situation: [B, 2], [B, N], [B, N]."""

    order_xy: torch.Tensor
    inventory: torch.Tensor
    load: torch.Tensor


def _sample(rng: CounterRNG, p: _Params, dtype: torch.dtype) -> _Draw:
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


def _costs(d: _Draw, positions: torch.Tensor, p: _Params) -> _Costs:
    distance = (positions[None] - d.order_xy[:, None]).norm(dim=-1)
    feasible = (d.inventory > 0) & (d.load < p.max_load)
    raw = (
        p.distance_weight * distance
        + p.load_weight * d.load
        + p.inventory_weight / d.inventory.clamp_min(1)
    )
    cost = torch.where(feasible, raw, torch.full_like(raw, INFEASIBLE_COST))
    best, store = cost.min(dim=-1)
    # The oracle is the best team action: if even the cheapest able store costs more
    # than a miss (never with the bundled numbers), nobody should accept.
    serve = feasible.any(-1) & (best <= p.miss_penalty)
    oracle_store = torch.where(serve, store, torch.full_like(store, -1))
    oracle_cost = torch.where(serve, best, torch.full_like(best, p.miss_penalty))
    return _Costs(distance, feasible, cost, oracle_store, oracle_cost)


@dataclass(frozen=True)
class _Offsets:
    """What a feasible store adds to distance_weight * distance: load_weight * load +
    inventory_weight / inv over inv in 1..max_inventory, load in 0..max_load - 1.

    values: the distinct offsets, ascending [U]; counts: how many (inv, load) pairs give
    each [U]; q: the probability of one (inv, load) pair, 1 / ((max_inventory + 1)(max_load + 1)).
    """

    values: np.ndarray
    counts: np.ndarray
    q: float

    @classmethod
    def of(cls, p: _Params) -> _Offsets:
        inv = np.arange(1, p.max_inventory + 1, dtype=np.float64)
        load = np.arange(p.max_load, dtype=np.float64)
        every = (p.load_weight * load[None, :] + p.inventory_weight / inv[:, None]).ravel()
        values, counts = np.unique(every, return_counts=True)
        return cls(values, counts.astype(np.float64), 1.0 / ((p.max_inventory + 1) * (p.max_load + 1)))

    @property
    def feasible(self) -> float:
        """P(a store can ship) = max_inventory * max_load * q."""
        return float(self.counts.sum() * self.q)

    @property
    def mean(self) -> float:
        """Mean offset given the store can ship."""
        return float((self.values * self.counts).sum() / self.counts.sum())

    def survival(self, slack: np.ndarray) -> np.ndarray:
        """P(C > distance_weight * dist + slack) for one store: 1 - q #{offsets <= slack}."""
        below = np.concatenate([[0.0], np.cumsum(self.counts)])
        return 1.0 - self.q * below[np.searchsorted(self.values, slack, side="right")]


def _given_orders(p: _Params, o: _Offsets, xy: np.ndarray) -> np.ndarray:
    """Exact expectations over stock and load for orders at the points xy [G, 2]: [5, G].

    Rows: oracle cost, oracle miss probability, nearest-store cost, P(nearest store is the
    oracle's), sum of the distances to all stores (for the random-store baseline).
    """
    pos = np.asarray(p.positions, dtype=np.float64)
    n, u, g = len(pos), len(o.values), len(xy)
    dist = np.hypot(pos[None, :, 0] - xy[:, None, 0], pos[None, :, 1] - xy[:, None, 1])  # [G, N]
    base = p.distance_weight * dist
    # Oracle: E[min(min_i C_i, miss)] = int_0^miss prod_i P(C_i > c) dc (costs are >= 0).
    # The product is a step function that drops at each breakpoint base_i + offset_k. A
    # store's breakpoints are passed in offset order, so passing (i, k) multiplies the product
    # by S(k+1) / S(k), S(k) = 1 - q * (pairs with one of the k smallest offsets): sort all
    # N * U breakpoints, accumulate the log factors, integrate the steps up to the miss cost.
    surv = 1.0 - o.q * np.concatenate([[0.0], np.cumsum(o.counts)])
    step = np.tile(np.diff(np.log(surv)), n)  # log S never meets 0: inv = 0 always can happen
    breaks = (base[:, :, None] + o.values).reshape(g, n * u)
    order = np.argsort(breaks, axis=-1)
    edges = np.empty((g, n * u + 2))
    edges[:, 0], edges[:, -1] = 0.0, p.miss_penalty
    edges[:, 1:-1] = np.take_along_axis(breaks, order, -1).clip(0.0, p.miss_penalty)
    level = np.ones((g, n * u + 1))
    level[:, 1:] = np.exp(np.cumsum(step[order], axis=-1))
    oracle = (level * np.diff(edges, axis=-1)).sum(-1)
    miss = o.survival(p.miss_penalty - base).prod(-1)  # no able store at or below the miss cost
    # Nearest store: it ships whenever it can, at whatever cost.
    rows = np.arange(g)
    near = dist.argmin(-1)
    own = base[rows, near]
    nearest = o.feasible * (own + o.mean) + (1 - o.feasible) * p.miss_penalty
    # It is the oracle's store when its cost v = own + offset_k is <= miss and every other
    # store costs > v: P = sum_k q counts_k [v <= miss] prod_{j != near} P(C_j > v).
    # (Equal costs at two stores have probability 0 when distance_weight > 0; they count as
    # not optimal here, whereas the env's argmin would pick the lower index.)
    slack = (own[:, None] - base)[:, None, :] + o.values[None, :, None]  # [G, U, N]
    others = o.survival(slack)
    others[rows, :, near] = 1.0
    value = own[:, None] + o.values
    rate = (o.q * o.counts * (value <= p.miss_penalty) * others.prod(-1)).sum(-1)
    return np.stack([oracle, miss, nearest, rate, dist.sum(-1)])


def _grid_mean(p: _Params, o: _Offsets, side: int) -> np.ndarray:
    """Mean of _given_orders over the midpoints of a side x side grid on the square: [5]."""
    ticks = (np.arange(side) + 0.5) * (p.area / side)
    xy = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), -1).reshape(-1, 2)
    per_point = len(p.positions) * len(o.values) * (len(o.values) + 2)
    chunk = max(1, (1 << 19) // per_point)  # bounds memory; the sum does not depend on it
    total = sum(_given_orders(p, o, xy[s : s + chunk]).sum(-1) for s in range(0, len(xy), chunk))
    return total / len(xy)


def _values(p: _Params, o: _Offsets, mean: np.ndarray) -> dict[str, float]:
    """The reference values from the location means of _given_orders."""
    oracle, miss, nearest, rate, dist_sum = mean.tolist()
    # Random able store: each store can ship with probability f, independently, so store i
    # ships with probability f E[1 / (1 + Binomial(N - 1, f))] = (1 - (1 - f)^N) / N, at the
    # mean cost distance_weight * dist_i + mean offset given it can; a miss when none can.
    n, f = len(p.positions), o.feasible
    none = (1 - f) ** n
    able = p.distance_weight * dist_sum / n + o.mean
    return {
        "oracle_cost": oracle,
        "nearest_cost": nearest,
        "random_cost": (1 - none) * able + none * p.miss_penalty,
        "nearest_optimal_rate": rate,
        "oracle_miss_rate": max(miss, 0.0),
    }


@lru_cache(maxsize=16)
def _reference(p: _Params) -> dict[str, float]:
    """Mean cost per order of the oracle and two baselines, and the oracle's miss rate.

    Exact given the order location (_given_orders); the mean over the location is the
    midpoint rule on an ORACLE_GRID^2 grid, Richardson-extrapolated with the half-size grid
    (its error is O(h^2)). "quadrature_error" = max |extrapolated - fine grid| over the
    values bounds what is left (~1e-4 for the bundled layout, the remainder ~1e-5).
    """
    start = time.perf_counter()
    o = _Offsets.of(p)
    fine = _grid_mean(p, o, ORACLE_GRID)
    coarse = _grid_mean(p, o, ORACLE_GRID // 2)
    best = _values(p, o, (4 * fine - coarse) / 3)
    error = max(abs(v - best[k]) for k, v in _values(p, o, fine).items())
    return best | {"quadrature_error": error, "compute_seconds": time.perf_counter() - start}


def _one_hot(store: torch.Tensor, n: int) -> torch.Tensor:
    """[B] store indices (-1 = none) as a [B, N] bool mask."""
    return torch.arange(n, device=store.device) == store[:, None]


class FulfillmentEnv(BatchedEnv):
    """B copies of the order-assignment game; actions [B, N] with 1 = accept."""

    def __init__(self, scenario: Any, n_envs: int, seed: int,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(n_envs, seed, device)
        self.model = scenario.model
        self.p = _Params.of(self.model)
        self.positions = torch.tensor(self.p.positions, dtype=torch.float32, device=self.device)
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
        self.costs = _costs(draw, self.positions, self.p)

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
        v = _reference(self.p)
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
            extra={k: v[k] for k in ("oracle_miss_rate", "quadrature_error", "compute_seconds")}
            | {"grid": ORACLE_GRID},
        )

    def oracle_actions(self) -> torch.Tensor:
        """1 for the cheapest able store of each copy, 0 elsewhere: [B, N] long."""
        return _one_hot(self.costs.oracle_store, self.spec.n_agents).long()

    def kpis(self, info: dict[str, torch.Tensor]) -> dict[str, float]:
        """Business figures of one step, averaged over the copies.

        optimal_choice_rate: share of copies whose set of accepting stores is exactly
        the oracle's, i.e. only the cheapest able store accepted (nobody, when no
        store should ship). regret: mean team cost minus mean oracle cost.
        conflict_rate: more than one store accepted. miss_rate: nobody shipped.
        mean_cost: mean team cost (penalties included).
        """
        accept = info["accept"].bool()
        wanted = _one_hot(info["oracle_store"], accept.shape[-1])
        team, best = info["team_cost"].float(), info["oracle_cost"].float()
        return {
            "optimal_choice_rate": (accept == wanted).all(-1).float().mean().item(),
            "regret": (team.mean() - best.mean()).item(),
            "conflict_rate": (accept.sum(-1) > 1).float().mean().item(),
            "miss_rate": (info["served_by"] < 0).float().mean().item(),
            "mean_cost": team.mean().item(),
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
