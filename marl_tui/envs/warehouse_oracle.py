"""Exact references for the warehouse scenario (numpy only, no torch).

Timing of one period t at warehouse i; `warehouse.py` follows the same steps:

1. The warehouse sees its on-hand stock x and its pipeline q_1..q_L (q_1 arrives
   this period, q_L was ordered last period).
2. It orders a <= max_order. The part that would push the inventory position
   x + q_1 + ... + q_L + a above `capacity` is cut off and not charged, so every
   arrival fits. The order is paid when it is placed: c*a.
3. Arrival: with L = 0 the order itself, y = x + a; with L >= 1 the oldest
   pipeline entry, y = x + q_1, and a joins the back of the pipeline.
4. Demand D ~ Poisson(lambda_i(t)), lambda_i(t) = base + amp*sin(2 pi t/S + 2 pi i/N).
   sold = min(y, D), lost = (D - y)+, leftover = (y - D)+ is next period's x.
5. Reward p*sold - c*a - h*leftover - b*lost.

This convention (paid when ordered, arriving L periods later before that
period's demand) gives the reference 42.513 per warehouse for L = 1.

The DP. Stock and orders are integers 0..capacity. With L >= 1 the decision
depends on (x, q_1) only through y = x + q_1, the stock that will face this
period's demand, so the DP state is (y, q_2..q_L) (just x when L = 0). Expected
rewards use exact Poisson expectations (E min(D, y) = sum_{k<y} P(D > k)); the
transition folds the whole tail D >= y into leftover 0. Relative value
iteration backs up one full season at a time; the change of the values over a
season, divided by its length, converges to the optimal average reward (gain).

With L = 0 the optimal policy is base-stock: order up to S_t. With L >= 1 and
lost sales the optimum is not exactly base-stock, so the policy is the DP's
table; `levels` then reports what it orders up to from an empty warehouse.

Shared truck (sum of orders <= K). The environment scales over-full orders
down proportionally; the oracle plays a greedy rationing heuristic instead:
each warehouse asks for its unconstrained optimal order, and when the asks do
not fit, the truck's units go one at a time to the warehouse whose DP value
(Q over order sizes) rises most from one more unit. Its average reward is
evaluated exactly on the joint chain when L = 0 and the joint state space is
small, by Monte Carlo otherwise. The Lagrangian upper bound relaxes the truck
with a price lam >= 0 per unit ordered: min_lam sum_i g_i(c + lam) + lam*K,
where g_i(c') is warehouse i's optimal gain at order cost c'.

Reference points (long-run averages per period, team = sum over warehouses):
perfect foresight orders exactly the coming demand (at most min(capacity,
max_order); it ignores the truck, so it stays an upper bound); the seasonless
policy orders the inventory position up to one level all year, the
critical-fractile quantile of the mean demand over L + 1 periods (14 for the
default, exact value 119.45); never ordering sells out and
then loses all demand: -b * mean demand (-120 for the default). REFERENCE.md's
119.35 and -119.93 for these two look like simulation estimates.

Size. Each warehouse keeps a Q table of season_length x (capacity + 1)^max(L, 1)
x (max_order + 1) float64 values, and evaluating its policy indexes as many
transitions per period; `dp_cells` counts them over all warehouses and the oracle
refuses models above DP_CELL_LIMIT (160 MB of float64 in all) with a ValueError.

KPIs (`kpis`, shared with WarehouseEnv.kpis). The trainer averages per-step
figures over an episode, so every KPI is a per-period figure: the team reward,
the fill rate of the period (units sold / units demanded, over all warehouses),
the share of warehouses that lose sales, the mean order. The oracle reports
their long-run averages over the periods of the season; its fill rate is the mean
over periods of E[sold_t] / E[demand_t], not total sold / total demand.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

# The size limit and the cell count live in config, which checks scenario files without
# importing an environment.
from marl_tui.config import DP_CELL_LIMIT, WarehouseModel, dp_size_problem, dp_table_cells
from marl_tui.envs.search import golden_section

_TOL = 1e-9  # span of the per-period value change at which value iteration stops
_MAX_SEASONS = 20_000
_EXACT_JOINT_STATES = 250_000  # larger truck problems are evaluated by Monte Carlo


@dataclass(frozen=True)
class Economics:
    """The numbers one warehouse's DP depends on (besides its demand rates)."""

    price: float
    order_cost: float
    holding_cost: float
    shortage_cost: float
    capacity: int
    max_order: int
    lead_time: int

    @classmethod
    def of(cls, m: WarehouseModel, i: int = 0, n_agents: int = 1) -> Economics:
        """Warehouse i's (of n_agents) numbers."""
        def own(name: str) -> float:
            return m.per_agent(name, n_agents)[i]
        return cls(m.price, own("order_cost"), own("holding_cost"), own("shortage_cost"),
                   m.capacity, m.max_order, m.lead_time)

    @classmethod
    def each(cls, m: WarehouseModel, n_agents: int) -> tuple[Economics, ...]:
        return tuple(cls.of(m, i, n_agents) for i in range(n_agents))

    @property
    def state_dims(self) -> int:
        """Axes of the DP state: x for L = 0, (y, q_2..q_L) for L >= 1."""
        return max(self.lead_time, 1)

    def critical_fractile(self) -> float:
        under = self.price - self.order_cost + self.shortage_cost  # value of one more unit sold
        return under / (under + self.holding_cost) if under > 0 else 0.0

    def table_cells(self, season_length: int) -> int:
        """One warehouse's largest table (see config.dp_table_cells)."""
        return dp_table_cells(season_length, self.capacity, self.max_order, self.lead_time)


def dp_cells(m: WarehouseModel, n_agents: int = 1) -> int:
    """Table cells the exact oracle needs for n_agents warehouses (each solves its own DP).

    Compare with DP_CELL_LIMIT: capacity 200, lead time 2 and a 365-period season need
    ~3e9 cells a warehouse (24 GB).
    """
    return m.dp_cells(n_agents)


def check_size(m: WarehouseModel, n_agents: int) -> None:
    """Raise ValueError when the exact oracle for this model would be too large to build."""
    cells = dp_cells(m, n_agents)
    if cells > DP_CELL_LIMIT:
        raise ValueError(dp_size_problem(cells))


def demand_rates(m: WarehouseModel, n_agents: int) -> np.ndarray:
    """lambda_i(t) = base_i + amp_i sin(2 pi (t / S + phase_i)) for every warehouse and period of
    the season: [N, S]."""
    t = np.arange(m.season_length)
    base, amp = (np.asarray(m.per_agent(k, n_agents))[:, None] for k in ("base_demand", "amplitude"))
    phase = 2 * math.pi * t / m.season_length + 2 * math.pi * np.asarray(m.phases(n_agents))[:, None]
    return np.maximum(base + amp * np.sin(phase), 0.0)


def poisson_pmf(rate: float, n: int) -> np.ndarray:
    """P(D = k) for k = 0..n-1."""
    if rate <= 0:
        return np.eye(1, n)[0]
    k = np.arange(n)
    return np.exp(k * math.log(rate) - rate - np.array([math.lgamma(v + 1) for v in k]))


@dataclass(frozen=True, eq=False)
class Period:
    """One period's demand seen from stock levels y = 0..capacity."""

    rate: float
    sold: np.ndarray  # E min(y, D)
    short: np.ndarray  # P(D > y): the chance of a stock-out
    reward: np.ndarray  # E[p sold - h leftover - b lost]
    move: np.ndarray  # [y, x']: P(leftover = x' | stock y), tail folded into x' = 0


@lru_cache(maxsize=1024)
def period(rate: float, e: Economics) -> Period:
    n = e.capacity + 1
    y = np.arange(n)
    pmf = poisson_pmf(rate, n)
    short = np.clip(1.0 - np.cumsum(pmf), 0.0, 1.0)
    sold = np.concatenate([[0.0], np.cumsum(short)[:-1]])
    reward = (e.price * sold - e.holding_cost * (y - sold)
              - e.shortage_cost * (rate - sold))
    gap = y[:, None] - y[None, :]  # units demanded to go from y to x'
    move = np.where(gap >= 0, pmf[np.clip(gap, 0, n - 1)], 0.0)
    move[:, 0] = 1.0 - move[:, 1:].sum(1)
    return Period(rate, sold, short, reward, move)


# --------------------------------------------------------------------------- one warehouse


@dataclass(frozen=True, eq=False)
class Solution:
    """One warehouse's optimal policy from the average-reward DP."""

    gain: float  # optimal long-run reward per period
    levels: tuple[int, ...]  # order-up-to level per period of the season
    q: np.ndarray  # [S, *state, max_order+1]: value of each order size, -inf if not allowed
    policy: np.ndarray  # [S, *state]: optimal order
    seasons: int  # value-iteration sweeps until convergence


def _grid_position(e: Economics) -> np.ndarray:
    """Inventory position (sum of the state's coordinates) over the state grid."""
    return np.indices((e.capacity + 1,) * e.state_dims).sum(0)


def _backup(v_next: np.ndarray, per: Period, e: Economics,
            feasible: np.ndarray) -> tuple[np.ndarray, int]:
    """One period of the Bellman backup: (q over [*state, a], order-up-to level)."""
    n, m = e.capacity + 1, e.max_order + 1
    c = e.order_cost
    a = np.arange(m)
    if e.lead_time == 0:
        # Ordering up to y is worth r(y) - c*(y - x) + E V'(leftover).
        q_y = per.reward - c * np.arange(n) + per.move @ v_next
        x = np.arange(n)[:, None]
        q = q_y[np.minimum(x + a, n - 1)] + c * x
        return np.where(feasible, q, -np.inf), int(np.argmax(q_y))
    # Next state: (leftover + q_2, q_3, .., q_L, a); for L = 1 just leftover + a.
    leftover = np.arange(n)[:, None]
    nxt = v_next[np.minimum(leftover + np.arange(n), n - 1)][..., :m]
    expect = np.tensordot(per.move, nxt, axes=1)  # [y, q_2.., a]
    shape = (n,) + (1,) * (e.state_dims - 1)
    q = np.where(feasible, per.reward.reshape(shape + (1,)) - c * a + expect, -np.inf)
    return q, int(np.argmax(q[(0,) * e.state_dims]))  # what it orders up to from empty


def _dp(rates: tuple[float, ...], e: Economics) -> Solution:
    """Average-reward DP for one warehouse with these per-period demand rates."""
    cells = e.table_cells(len(rates))
    if cells > DP_CELL_LIMIT:
        raise ValueError(dp_size_problem(cells))
    periods = [period(r, e) for r in rates]
    position = _grid_position(e)
    feasible = position[..., None] + np.arange(e.max_order + 1) <= e.capacity
    reachable = position <= e.capacity
    v = np.zeros(position.shape)
    n_per = len(rates)
    for sweep in range(1, _MAX_SEASONS + 1):
        v_start = v
        qs, levels = [None] * n_per, [0] * n_per
        for t in reversed(range(n_per)):
            qs[t], levels[t] = _backup(v, periods[t], e, feasible)
            v = np.where(reachable, qs[t].max(-1), 0.0)
        change = (v - v_start)[reachable] / n_per
        v = v - v.flat[0]  # relative values stay bounded
        if sweep > 1 and change.max() - change.min() < _TOL:
            break
    q = np.stack(qs)
    return Solution(float(change.mean()), tuple(levels), q, q.argmax(-1), sweep)


# Solutions hold Q tables (megabytes for L = 2): keep only the few a session uses.
solve = lru_cache(maxsize=16)(_dp)


def _stock(e: Economics, s: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Stock facing demand, from DP state coordinates s [..., dims] and order a."""
    return s[..., 0] + a if e.lead_time == 0 else s[..., 0]


def _advance(e: Economics, s: np.ndarray, a: np.ndarray, leftover: np.ndarray) -> np.ndarray:
    """Next DP state coordinates after the order a and this period's leftover."""
    if e.lead_time == 0:
        return leftover[..., None]
    if e.lead_time == 1:
        return (leftover + a)[..., None]
    rest = np.broadcast_to(s[..., 2:], leftover.shape + (e.lead_time - 2,))
    a = np.broadcast_to(a, leftover.shape)
    return np.concatenate([(leftover + s[..., 1])[..., None], rest, a[..., None]], -1)


# --------------------------------------------------------------------------- evaluating policies


def fill_ratio(sold: float, demand: float) -> float:
    """Units sold / units demanded; 1 when nothing was demanded."""
    return sold / demand if demand > 0 else 1.0


def kpis(team_reward: float, fill_rate: float, stockout_rate: float, mean_order: float,
         optimum: float) -> dict[str, float]:
    """The scenario's KPIs from one period's figures (WarehouseEnv) or their long-run
    averages (PolicyStats); see the module docstring for what each figure is."""
    return {
        "team_reward_per_step": team_reward,
        "fill_rate": fill_rate,
        "pct_of_optimal": 100 * team_reward / optimum if optimum > 0 else math.nan,
        "stockout_rate": stockout_rate,
        "mean_order": mean_order,
    }


@dataclass(frozen=True)
class PolicyStats:
    """Long-run averages of a policy, per period."""

    team_reward: float
    sold: tuple[float, ...]  # team units sold, by period of the season
    demand: tuple[float, ...]  # team units demanded, by period of the season
    stockout: float  # chance that a warehouse loses sales in a period
    order: float  # mean order per warehouse

    @property
    def fill_rate(self) -> float:
        """The period's fill rate averaged over the season's periods, as the trainer averages
        the env's per-step fill rates (not total sold / total demand)."""
        return sum(fill_ratio(s, d) for s, d in zip(self.sold, self.demand, strict=True)) / len(self.sold)

    def kpis(self, optimum: float) -> dict[str, float]:
        return kpis(self.team_reward, self.fill_rate, self.stockout, self.order, optimum)


def _sum_stats(parts: list[PolicyStats]) -> PolicyStats:
    k = len(parts)
    by_period = zip(*(p.sold for p in parts), strict=True)
    demand_by_period = zip(*(p.demand for p in parts), strict=True)
    return PolicyStats(sum(p.team_reward for p in parts), tuple(sum(v) for v in by_period),
                       tuple(sum(v) for v in demand_by_period), sum(p.stockout for p in parts) / k,
                       sum(p.order for p in parts) / k)


def _plan(policy: np.ndarray, rates: tuple[float, ...],
          e: Economics) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per period of the season, over the DP state grid: (order, stock, flat next-state index
    [G, leftover]) under a policy table [S, *state] of orders."""
    n = e.capacity + 1
    coords = np.indices((n,) * e.state_dims).reshape(e.state_dims, -1).T  # [G, dims]
    leftover = np.arange(n)
    steps = []
    for t in range(len(rates)):
        a = policy[t].reshape(-1)
        y = np.minimum(_stock(e, coords, a), n - 1)
        nxt = _advance(e, coords[:, None, :], a[:, None], leftover[None, :].repeat(len(a), 0))
        idx = np.ravel_multi_index(tuple(np.minimum(nxt, n - 1).transpose(2, 0, 1)),
                                   (n,) * e.state_dims)
        steps.append((a, y, idx))
    return steps


def stationary_stats(policy: np.ndarray, rates: tuple[float, ...], e: Economics) -> PolicyStats:
    """Exact long-run averages of one warehouse under a policy table [S, *state] of orders."""
    steps = _plan(policy, rates, e)
    mu = np.zeros(len(steps[0][0]))
    mu[0] = 1.0
    for _ in range(_MAX_SEASONS):
        mu_start, acc, sold = mu, np.zeros(3), []
        for t, (a, y, idx) in enumerate(steps):
            per = period(rates[t], e)
            acc += [mu @ (per.reward[y] - e.order_cost * a), mu @ per.short[y], mu @ a]
            sold.append(float(mu @ per.sold[y]))
            mass = mu[:, None] * per.move[y]
            mu = np.bincount(idx.reshape(-1), mass.reshape(-1), minlength=len(mu))
        if np.abs(mu - mu_start).sum() < _TOL:
            break
    reward, short, order = (float(v) for v in acc / len(steps))
    return PolicyStats(reward, tuple(sold), tuple(float(r) for r in rates), short, order)


def episode_reward(policy: np.ndarray, rates: tuple[float, ...], e: Economics,
                   start_max: int, periods: int) -> float:
    """Exact expected reward of one warehouse over an episode of `periods` periods from season
    phase 0, as the env starts one: on-hand uniform on 0..start_max, an empty pipeline."""
    steps = _plan(policy, rates, e)
    mu = np.zeros(len(steps[0][0]))
    # State (x) or (y, q_2..q_L): with an empty pipeline y is the on-hand stock, the rest 0.
    mu[np.arange(start_max + 1) * (e.capacity + 1) ** (e.state_dims - 1)] = 1.0 / (start_max + 1)
    total = 0.0
    for t in range(periods):
        a, y, idx = steps[t % len(steps)]
        per = period(rates[t % len(steps)], e)
        total += float(mu @ (per.reward[y] - e.order_cost * a))
        mu = np.bincount(idx.reshape(-1), (mu[:, None] * per.move[y]).reshape(-1), minlength=len(mu))
    return total


def ration(q: np.ndarray, want: np.ndarray, truck: int) -> np.ndarray:
    """Greedy rationing: q [..., N, m] values of order sizes, want [..., N] asks -> orders."""
    over = want.sum(-1) > truck
    if not over.any():
        return want
    asks = want[over]
    with np.errstate(invalid="ignore"):  # -inf - -inf where an order is not allowed
        gains = np.diff(q[over], axis=-1)  # [R, N, m-1]: worth of the (k+1)-th unit
    alloc = np.zeros_like(asks)
    rows = np.arange(len(asks))
    for _ in range(truck):  # the asks exceed the truck, so every unit finds a taker
        k = np.minimum(alloc, gains.shape[-1] - 1)[..., None]
        gain = np.where(alloc < asks, np.take_along_axis(gains, k, -1)[..., 0], -np.inf)
        alloc[rows, gain.argmax(-1)] += 1
    out = want.copy()
    out[over] = alloc
    return out


def truck_orders(sols: tuple[Solution, ...], t: int, states: np.ndarray,
                 truck: int) -> np.ndarray:
    """The heuristic's integer orders for DP states [..., N, dims] in period t: [..., N]."""
    season = sols[0].policy.shape[0]
    dims = states.shape[-1]
    cells = [tuple(states[..., i, d] for d in range(dims)) for i in range(len(sols))]
    want = np.stack([s.policy[t % season][c] for s, c in zip(sols, cells, strict=True)], -1)
    q = np.stack([s.q[t % season][c] for s, c in zip(sols, cells, strict=True)], -2)
    return ration(q, want, truck)


def _truck_exact(sols: tuple[Solution, ...], rates: np.ndarray, e: Economics,
                 truck: int) -> PolicyStats:
    """Joint chain of all warehouses under the heuristic (L = 0: state = on-hand per warehouse)."""
    n_agents, top = len(sols), max(max(s.levels) for s in sols) + 1
    shape = (top,) * n_agents
    x = np.indices(shape).reshape(n_agents, -1).T  # [G, N]
    mu = np.zeros(shape)
    mu.flat[0] = 1.0
    plans = [truck_orders(sols, t, x[..., None], truck) for t in range(rates.shape[1])]
    for _ in range(_MAX_SEASONS):
        mu_start, acc, sold = mu, np.zeros(3), []
        for t, a in enumerate(plans):
            pers = [period(rates[i, t], e) for i in range(n_agents)]
            y = x + a
            w = mu.reshape(-1)
            acc += [w @ sum(p.reward[y[:, i]] - e.order_cost * a[:, i] for i, p in enumerate(pers)),
                    w @ sum(p.short[y[:, i]] for i, p in enumerate(pers)) / n_agents,
                    w @ a.sum(1) / n_agents]
            sold.append(float(w @ sum(p.sold[y[:, i]] for i, p in enumerate(pers))))
            mu = np.bincount(np.ravel_multi_index(tuple(y.T), shape), w,
                             minlength=w.size).reshape(shape)
            for i, p in enumerate(pers):  # demand is independent across warehouses
                mu = np.moveaxis(np.tensordot(mu, p.move[:top, :top], axes=([i], [0])), -1, i)
        if np.abs(mu - mu_start).sum() < _TOL:
            break
    reward, short, order = (float(v) for v in acc / rates.shape[1])
    demand = tuple(float(v) for v in rates.sum(0))
    return PolicyStats(reward, tuple(sold), demand, short, order)


def _truck_monte_carlo(sols: tuple[Solution, ...], rates: np.ndarray, e: Economics,
                       truck: int, copies: int = 1024, seasons: int = 30) -> PolicyStats:
    """Simulated long-run averages under the heuristic (fixed seed, after a two-season warm-up)."""
    rng = np.random.default_rng(0)
    n_agents, season = rates.shape
    s = np.zeros((copies, n_agents, e.state_dims), dtype=np.int64)
    acc, count = np.zeros(3), 0
    sold_t, demand_t = np.zeros(season), np.zeros(season)  # team units by period of the season
    for step in range((seasons + 2) * season):
        t = step % season
        a = truck_orders(sols, t, s, truck)
        y = _stock(e, s, a)
        demand = rng.poisson(rates[:, t], size=(copies, n_agents))
        sold = np.minimum(y, demand)
        reward = (e.price * sold - e.order_cost * a - e.holding_cost * (y - sold)
                  - e.shortage_cost * (demand - sold))
        s = _advance(e, s, a, y - sold)
        if step >= 2 * season:
            acc += [reward.sum(1).mean(), (demand > y).mean(), a.mean()]
            sold_t[t] += sold.sum(1).mean()
            demand_t[t] += demand.sum(1).mean()
            count += 1
    reward, short, order = (float(v) for v in acc / count)
    return PolicyStats(reward, tuple((sold_t * season / count).tolist()),
                       tuple((demand_t * season / count).tolist()), short, order)


def _rotation_key(r: np.ndarray) -> tuple[float, ...]:
    """Equal for demand cycles that are rotations of each other: they share the same gain."""
    rounded = np.round(r, 9)
    return min(tuple(np.roll(rounded, -k)) for k in range(len(r)))


def lagrangian_bound(rates: np.ndarray, e: Economics, truck: int) -> tuple[float, float]:
    """(upper bound on the team's average reward, its multiplier lam) for sum(a) <= truck."""
    groups: dict[tuple[float, ...], list[np.ndarray]] = {}
    for r in rates:  # warehouses whose seasons are shifted copies share one DP per price
        groups.setdefault(_rotation_key(r), []).append(r)

    def dual(lam: float) -> float:
        priced = dataclasses.replace(e, order_cost=e.order_cost + lam)
        gains = (len(g) * _dp(tuple(g[0]), priced).gain for g in groups.values())
        return sum(gains) + lam * truck

    # The dual is convex; beyond p + b - c no unit is worth ordering, so it only rises.
    lo, hi = 0.0, max(e.price + e.shortage_cost - e.order_cost, 0.0)
    lam, bound = golden_section(dual, lo, hi, tol=1e-6)
    return bound, lam


# --------------------------------------------------------------------------- the reference


def perfect_foresight(rates: np.ndarray, e: Economics) -> float:
    """Team reward per period when each period's demand is known in advance (no truck limit)."""
    unit = max(e.price - e.order_cost + e.shortage_cost, 0.0)  # worth of serving a unit
    cap = min(e.capacity, e.max_order)
    served = sum(period(r, e).sold[cap] for r in rates.reshape(-1))  # sum of E min(D, cap)
    return float(unit * served - e.shortage_cost * rates.sum()) / rates.shape[1]


def seasonless(rates: np.ndarray, e: Economics) -> tuple[int, float]:
    """(level, team reward) of ordering the inventory position up to one level all season.

    The level is the critical-fractile quantile of the mean demand over the lead time plus
    one period: the textbook base-stock level for a season without seasons.
    """
    frac = e.critical_fractile()
    pmf = poisson_pmf(float(rates.mean()) * (e.lead_time + 1), 4 * e.capacity + 1)
    level = min(int(np.searchsorted(np.cumsum(pmf), frac - 1e-12)), e.capacity) if frac else 0
    position = _grid_position(e)
    order = np.minimum(np.clip(level - position, 0, e.max_order),
                       np.maximum(e.capacity - position, 0))
    policy = np.broadcast_to(order, (rates.shape[1],) + order.shape)
    return level, sum(stationary_stats(policy, tuple(r), e).team_reward for r in rates)


@dataclass(frozen=True, eq=False)
class Reference:
    """Everything the scenario's oracle reports."""

    solutions: tuple[Solution, ...]
    stats: PolicyStats  # the oracle policy (optimal, or the truck heuristic)
    optimum: float  # optimal team reward per period, or the truck's upper bound
    values: dict[str, Any]
    summary: str
    extra: dict[str, Any]


@lru_cache(maxsize=8)
def reference(m: WarehouseModel, n_agents: int) -> Reference:
    """The oracle for a scenario's model (cached: the model is a frozen dataclass).

    Raises ValueError when the DP would exceed DP_CELL_LIMIT (see dp_cells).
    """
    check_size(m, n_agents)
    econ = Economics.each(m, n_agents)
    e = econ[0]  # the truck's numbers: config refuses a truck with per-warehouse costs
    rates = demand_rates(m, n_agents)
    sols = tuple(solve(tuple(r), ei) for r, ei in zip(rates, econ, strict=True))
    levels = [list(s.levels) for s in sols]
    lo, hi = min(min(v) for v in levels), max(max(v) for v in levels)
    optimal = sum(s.gain for s in sols)
    fractiles = [ei.critical_fractile() for ei in econ]
    extra: dict[str, Any] = {
        "perfect_foresight_team": sum(perfect_foresight(r[None], ei) for r, ei in zip(rates, econ, strict=True)),
        "never_order_team": -sum(ei.shortage_cost * float(r.mean()) for r, ei in zip(rates, econ, strict=True)),
        "critical_fractile": fractiles[0] if len(set(fractiles)) == 1 else fractiles,
    }
    if m.truck_capacity == 0:
        flat = [seasonless(r[None], ei) for r, ei in zip(rates, econ, strict=True)]
        flat_levels = [level for level, _ in flat]
        extra["seasonless_level"] = flat_levels[0] if len(set(flat_levels)) == 1 else flat_levels
        extra["seasonless_team"] = sum(team for _, team in flat)
        stats = _sum_stats([stationary_stats(s.policy, tuple(r), ei)
                            for s, r, ei in zip(sols, rates, econ, strict=True)])
        values = {"optimal_reward_team": optimal,
                  "optimal_reward_per_agent": optimal / n_agents,
                  "order_up_to": levels}
        plan = f"order up to {lo}..{hi} by season" if hi > 0 else "never order"
        summary = f"optimal {optimal:.2f}/period (team) · {plan}"
        extra["optimal_reward_by_agent"] = [s.gain for s in sols]
        return Reference(sols, stats, optimal, values, summary, extra)

    bound, lam = lagrangian_bound(rates, e, m.truck_capacity)
    exact = m.lead_time == 0 and (hi + 1) ** n_agents <= _EXACT_JOINT_STATES
    evaluate = _truck_exact if exact else _truck_monte_carlo
    stats = evaluate(sols, rates, e, m.truck_capacity)
    extra |= {"heuristic_evaluation": "exact" if exact else "monte carlo",
              "lagrange_multiplier": lam, "optimal_without_truck_team": optimal}
    values = {"heuristic_reward_team": stats.team_reward, "upper_bound_team": bound,
              "order_up_to": levels}
    summary = (f"truck {m.truck_capacity}: greedy rationing {stats.team_reward:.2f} "
               f"≤ optimal ≤ {bound:.2f}/period (team)")
    return Reference(sols, stats, bound, values, summary, extra)


@lru_cache(maxsize=8)
def episode_optimum(m: WarehouseModel, n_agents: int, periods: int) -> float:
    """The oracle policy's exact expected team reward over one episode of `periods` periods
    (no truck): below periods x the long-run optimum when lead_time >= 1, since an episode
    starts with an empty pipeline."""
    ref = reference(m, n_agents)
    return sum(episode_reward(s.policy, tuple(r), e, m.initial_inventory_max, periods)
               for s, r, e in zip(ref.solutions, demand_rates(m, n_agents), Economics.each(m, n_agents),
                                  strict=True))
