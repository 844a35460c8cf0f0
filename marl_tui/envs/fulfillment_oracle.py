"""Exact reference values for the fulfilment scenario (numpy only, no torch).

FulfillmentEnv.oracle reports them; they are computed, not sampled, from the
scenario's numbers. Given the order location X the stores are independent and a store's cost
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
(optimal 53.56 %), random 7.1826, cached per parameter set.

The store model itself (cost formula, feasibility, reward rules) is described in
`fulfillment.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

# Quadrature points per side of the square for the reference values (see reference).
ORACLE_GRID = 128


@dataclass(frozen=True)
class Params:
    """The model's numbers as a hashable key (positions as a tuple) for the oracle cache; the
    weights one per store."""

    positions: tuple[tuple[float, float], ...]
    area: float
    distance_weight: tuple[float, ...]
    load_weight: tuple[float, ...]
    inventory_weight: tuple[float, ...]
    max_inventory: int
    max_load: int
    miss_penalty: float

    @classmethod
    def of(cls, model: Any) -> Params:
        n = len(model.positions)
        return cls(
            positions=tuple((float(x), float(y)) for x, y in model.positions),
            area=float(model.area),
            distance_weight=model.per_agent("distance_weight", n),
            load_weight=model.per_agent("load_weight", n),
            inventory_weight=model.per_agent("inventory_weight", n),
            max_inventory=int(model.max_inventory),
            max_load=int(model.max_load),
            miss_penalty=float(model.miss_penalty),
        )

    @property
    def cost_scale(self) -> float:
        """The dearest feasible cost: far corner, one below full load, one unit of stock."""
        worst = max(
            wd * self.area * math.sqrt(2) + wl * (self.max_load - 1) + wi
            for wd, wl, wi in zip(self.distance_weight, self.load_weight, self.inventory_weight, strict=True)
        )
        return worst if worst > 0 else 1.0


@dataclass(frozen=True)
class Offsets:
    """What a feasible store i adds to its distance_weight_i * distance: load_weight_i * load +
    inventory_weight_i / inv over inv in 1..max_inventory, load in 0..max_load - 1.

    values: each store's distinct offsets, ascending [N, U] (padded with +inf); counts: how many
    (inv, load) pairs give each [N, U] (0 where padded); q: the probability of one (inv, load)
    pair, 1 / ((max_inventory + 1)(max_load + 1)), the same at every store.
    """

    values: np.ndarray
    counts: np.ndarray
    q: float

    @classmethod
    def of(cls, p: Params) -> Offsets:
        inv = np.arange(1, p.max_inventory + 1, dtype=np.float64)
        load = np.arange(p.max_load, dtype=np.float64)
        stores = [np.unique((wl * load[None, :] + wi / inv[:, None]).ravel(), return_counts=True)
                  for wl, wi in zip(p.load_weight, p.inventory_weight, strict=True)]
        width = max(len(v) for v, _ in stores)
        values = np.full((len(stores), width), np.inf)
        counts = np.zeros((len(stores), width))
        for i, (v, c) in enumerate(stores):
            values[i, : len(v)], counts[i, : len(c)] = v, c
        return cls(values, counts, 1.0 / ((p.max_inventory + 1) * (p.max_load + 1)))

    @property
    def feasible(self) -> float:
        """P(a store can ship) = max_inventory * max_load * q (the same at every store)."""
        return float(self.counts[0].sum() * self.q)

    @property
    def mean(self) -> np.ndarray:
        """Each store's mean offset given it can ship [N]."""
        finite = np.where(self.counts > 0, self.values, 0.0)
        return (finite * self.counts).sum(-1) / self.counts.sum(-1)

    def survival(self, slack: np.ndarray) -> np.ndarray:
        """P(C_i > distance_weight_i * dist_i + slack[..., i]) for every store i (the last
        axis): 1 - q #{store i's offsets <= slack}."""
        out = np.empty_like(slack)
        for i in range(self.values.shape[0]):
            below = np.concatenate([[0.0], np.cumsum(self.counts[i])])
            out[..., i] = 1.0 - self.q * below[np.searchsorted(self.values[i], slack[..., i], side="right")]
        return out


def given_orders(p: Params, o: Offsets, xy: np.ndarray) -> np.ndarray:
    """Exact expectations over stock and load for orders at the points xy [G, 2]: [5, G].

    Rows: oracle cost, oracle miss probability, nearest-store cost, P(nearest store is the
    oracle's), sum over stores of distance_weight_i * distance_i (for the random-store baseline).
    """
    pos = np.asarray(p.positions, dtype=np.float64)
    (n, u), g = o.values.shape, len(xy)
    dist = np.hypot(pos[None, :, 0] - xy[:, None, 0], pos[None, :, 1] - xy[:, None, 1])  # [G, N]
    base = np.asarray(p.distance_weight)[None, :] * dist
    # Oracle: E[min(min_i C_i, miss)] = int_0^miss prod_i P(C_i > c) dc (costs are >= 0).
    # The product is a step function that drops at each breakpoint base_i + offset_ik. A
    # store's breakpoints are passed in offset order, so passing (i, k) multiplies the product
    # by S_i(k+1) / S_i(k), S_i(k) = 1 - q * (pairs with one of store i's k smallest offsets):
    # sort all N * U breakpoints, accumulate the log factors, integrate the steps up to the miss
    # cost. (Padding adds breakpoints at +inf with factor 1.)
    surv = 1.0 - o.q * np.concatenate([np.zeros((n, 1)), np.cumsum(o.counts, -1)], -1)
    step = np.diff(np.log(surv), axis=-1).ravel()  # log S never meets 0: inv = 0 always can happen
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
    nearest = o.feasible * (own + o.mean[near]) + (1 - o.feasible) * p.miss_penalty
    # It is the oracle's store when its cost v = own + offset_k is <= miss and every other
    # store costs > v: P = sum_k q counts_k [v <= miss] prod_{j != near} P(C_j > v).
    # (Equal costs at two stores have probability 0 when distance_weight > 0; they count as
    # not optimal here, whereas the env's argmin would pick the lower index.)
    value = own[:, None] + o.values[near]  # [G, U]
    slack = value[:, :, None] - base[:, None, :]  # [G, U, N]
    others = o.survival(slack)
    others[rows, :, near] = 1.0
    rate = (o.q * o.counts[near] * (value <= p.miss_penalty) * others.prod(-1)).sum(-1)
    return np.stack([oracle, miss, nearest, rate, base.sum(-1)])


def grid_mean(p: Params, o: Offsets, side: int) -> np.ndarray:
    """Mean of given_orders over the midpoints of a side x side grid on the square: [5]."""
    ticks = (np.arange(side) + 0.5) * (p.area / side)
    xy = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), -1).reshape(-1, 2)
    per_point = len(p.positions) * o.values.shape[1] * (o.values.shape[1] + 2)
    chunk = max(1, (1 << 19) // per_point)  # bounds memory; the sum does not depend on it
    total = sum(given_orders(p, o, xy[s : s + chunk]).sum(-1) for s in range(0, len(xy), chunk))
    return total / len(xy)


def reference_values(p: Params, o: Offsets, mean: np.ndarray) -> dict[str, float]:
    """The reference values from the location means of given_orders."""
    oracle, miss, nearest, rate, weighted_dist_sum = mean.tolist()
    # Random able store: each store can ship with probability f, independently, so store i
    # ships with probability f E[1 / (1 + Binomial(N - 1, f))] = (1 - (1 - f)^N) / N, at the
    # mean cost distance_weight_i * dist_i + its mean offset given it can; a miss when none can.
    n, f = len(p.positions), o.feasible
    none = (1 - f) ** n
    able = (weighted_dist_sum + float(o.mean.sum())) / n
    return {
        "oracle_cost": oracle,
        "nearest_cost": nearest,
        "random_cost": (1 - none) * able + none * p.miss_penalty,
        "nearest_optimal_rate": rate,
        "oracle_miss_rate": max(miss, 0.0),
    }


@lru_cache(maxsize=16)
def reference(p: Params) -> dict[str, float]:
    """Mean cost per order of the oracle and two baselines, and the oracle's miss rate.

    Exact given the order location (given_orders); the mean over the location is the
    midpoint rule on an ORACLE_GRID^2 grid, Richardson-extrapolated with the half-size grid
    (its error is O(h^2)). "quadrature_error" = max |extrapolated - fine grid| over the
    values bounds what is left (~1e-4 for the bundled layout, the remainder ~1e-5).
    """
    o = Offsets.of(p)
    fine = grid_mean(p, o, ORACLE_GRID)
    coarse = grid_mean(p, o, ORACLE_GRID // 2)
    best = reference_values(p, o, (4 * fine - coarse) / 3)
    error = max(abs(v - best[k]) for k, v in reference_values(p, o, fine).items())
    return best | {"quadrature_error": error}
