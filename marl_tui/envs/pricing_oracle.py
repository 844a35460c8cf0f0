"""Exact references for the pricing scenario: demand, best replies, Nash and collusion.

Linear demand D_i = a_i - b_i p_i + g_i sum_{j!=i} p_j (clipped at 0), or Calvano et
al.'s logit demand q_i = e^{(a_i-p_i)/mu} / (sum_j e^{(a_j-p_j)/mu} + e^{a0/mu}).
Store i earns (p_i - c_i) times its demand. a, b, g and c are one number for every store or
one per store (asymmetric stores).

The helper functions take prices shaped [..., N] (any leading batch shape) so
the environment (`pricing.py`), the oracle, the TUI and the benchmarks share one
formula. Everything a store's demand needs from its rivals is one number, the
"rival term": their price sum (linear) or their log choice mass plus the outside
good (logit). Best responses are exact and vectorised: in both models a store's
profit is single-peaked in its own price, so the unconstrained best reply
clipped into the price range is the best reply in the range.

`solve` gives each store's Nash and collusive (joint-profit) prices and profits, and the
best unilateral deviation from collusion, in float64. Nash: for linear demand the first-order
conditions 2 b_i p_i - g_i sum_{j!=i} p_j = a_i + b_i c_i are a linear system, kept when its
solution lies in the price range; otherwise (and for logit) best responses iterate to the
fixed point (they contract: a reply moves by less than the rivals' prices do).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from marl_tui.config import PricingModel
from marl_tui.envs.search import golden_section

# --------------------------------------------------------------------------- formulas


def coefficient(model: PricingModel, name: str, like: torch.Tensor) -> float | torch.Tensor:
    """Field `name` as a number, or per store as a tensor [N] that broadcasts over prices [..., N]."""
    value = getattr(model, name)
    return torch.tensor(value, dtype=like.dtype, device=like.device) if isinstance(value, tuple) else value


def _rival_term(prices: torch.Tensor, model: PricingModel) -> torch.Tensor:
    """[..., N]: what store i's demand needs to know about everyone else."""
    if model.demand == "linear":
        return prices.sum(-1, keepdim=True) - prices
    # log(sum_{j!=i} e^{l_j} + e^{a0/mu}) with a masked logsumexp: subtracting
    # store i from the total would cancel catastrophically when i dominates.
    logits = (coefficient(model, "a", prices) - prices) / model.mu
    n = logits.shape[-1]
    rivals = logits.unsqueeze(-2).expand(*logits.shape, n)
    rivals = rivals.masked_fill(torch.eye(n, dtype=torch.bool, device=prices.device), -math.inf)
    outside = torch.full_like(rivals[..., :1], model.a0 / model.mu)
    return torch.logsumexp(torch.cat([rivals, outside], -1), -1)


def _demand(own: torch.Tensor, rival: torch.Tensor, model: PricingModel) -> torch.Tensor:
    a = coefficient(model, "a", own)
    if model.demand == "linear":
        return (a - coefficient(model, "b", own) * own + coefficient(model, "g", own) * rival).clamp_min(0.0)
    return torch.sigmoid((a - own) / model.mu - rival)


def _profit(own: torch.Tensor, rival: torch.Tensor, model: PricingModel) -> torch.Tensor:
    return (own - coefficient(model, "cost", own)) * _demand(own, rival, model)


def demands(prices: torch.Tensor, model: PricingModel) -> torch.Tensor:
    """Each store's demand (units for linear, market share for logit), [..., N]."""
    return _demand(prices, _rival_term(prices, model), model)


def profits(prices: torch.Tensor, model: PricingModel) -> torch.Tensor:
    """Each store's profit (p_i - c_i) D_i, [..., N]."""
    return _profit(prices, _rival_term(prices, model), model)


def deviation_profits(own: torch.Tensor, prices: torch.Tensor, model: PricingModel) -> torch.Tensor:
    """[..., N]: store i's profit if it alone charged own[..., i] while the others keep `prices`."""
    return _profit(own, _rival_term(prices, model), model)


def _lambert_w_exp(y: torch.Tensor) -> torch.Tensor:
    """w = W(e^y), i.e. the w > 0 with w + ln w = y, without ever forming e^y.

    Newton on u = ln w: h(u) = u + e^u - y is convex and increasing, and this
    start is near the root for every y; five steps reach float64 precision.
    """
    u = torch.where(y > 1, torch.log(y.clamp_min(1.0)), y)
    for _ in range(6):
        u = u - (u + torch.exp(u) - y) / (1 + torch.exp(u))
    return torch.exp(u)


def _logit_best_price(rival: torch.Tensor, model: PricingModel) -> torch.Tensor:
    # First-order condition p - c = mu / (1 - q) solved in closed form:
    # p = c + mu (1 + W(exp((a - c)/mu - 1 - rival))).
    a, c = coefficient(model, "a", rival), coefficient(model, "cost", rival)
    y = (a - c) / model.mu - 1 - rival
    return c + model.mu * (1 + _lambert_w_exp(y))


def _best_price(rival: torch.Tensor, model: PricingModel) -> torch.Tensor:
    if model.demand == "linear":
        # Also right when demand is clipped: with a + g*rival <= b c every
        # price earns at most 0 and this price earns exactly that.
        a, b, g, c = (coefficient(model, k, rival) for k in ("a", "b", "g", "cost"))
        best = (a + g * rival + b * c) / (2 * b)
    else:
        best = _logit_best_price(rival, model)
    return best.clamp(model.price_min, model.price_max)


def best_response(prices: torch.Tensor, model: PricingModel) -> torch.Tensor:
    """[..., N]: each store's profit-maximising price in range, given the others' prices."""
    return _best_price(_rival_term(prices, model), model)


def exploitability(prices: torch.Tensor, model: PricingModel) -> torch.Tensor:
    """[..., N]: what each store gains by its best unilateral deviation (0 at Nash), in money."""
    rival = _rival_term(prices, model)
    gain = _profit(_best_price(rival, model), rival, model) - _profit(prices, rival, model)
    return gain.clamp_min(0.0)  # rounding only: the best response is never worse


# --------------------------------------------------------------------------- oracle


@dataclass(frozen=True)
class PricingSolution:
    """Reference prices and profits: per store, and their means over the stores (the scalars;
    for identical stores every store's value)."""

    nash_price: float
    nash_profit: float
    collusive_price: float  # joint-profit maximiser
    collusive_profit: float
    best_deviation_price: float  # the best reply of the store that gains most by leaving collusion
    best_deviation_profit: float
    nash_prices: tuple[float, ...]
    nash_profits: tuple[float, ...]
    collusive_prices: tuple[float, ...]
    collusive_profits: tuple[float, ...]

    def scalars(self) -> dict[str, float]:
        """The mean values, as `info` and the views show them."""
        return {f: getattr(self, f) for f in ("nash_price", "nash_profit", "collusive_price",
                                              "collusive_profit", "best_deviation_price",
                                              "best_deviation_profit")}


_FIXED_POINT_TOL = 1e-13
_MAX_SWEEPS = 100_000


def _vector(model: PricingModel, name: str, n: int) -> torch.Tensor:
    return torch.tensor(model.per_agent(name, n), dtype=torch.float64)


def _inside(p: torch.Tensor, model: PricingModel) -> bool:
    return bool(((p >= model.price_min) & (p <= model.price_max)).all())


def _best_response_fixed_point(start: torch.Tensor, model: PricingModel) -> torch.Tensor:
    """Iterate best responses from `start` (in the price range) to their fixed point."""
    p = start.clamp(model.price_min, model.price_max)
    for _ in range(_MAX_SWEEPS):
        nxt = best_response(p, model)
        if (nxt - p).abs().max() <= _FIXED_POINT_TOL * max(1.0, model.price_max):
            return nxt
        p = nxt
    return p


def nash_prices(model: PricingModel, n: int) -> torch.Tensor:
    """[N] float64: the Nash equilibrium prices in the price range."""
    if model.demand == "logit":
        return _best_response_fixed_point(torch.full((n,), model.price_min, dtype=torch.float64), model)
    a, b, g, c = (_vector(model, k, n) for k in ("a", "b", "g", "cost"))
    # 2 b_i p_i - g_i sum_{j!=i} p_j = a_i + b_i c_i
    matrix = -g[:, None] * (1 - torch.eye(n, dtype=torch.float64)) + torch.diag(2 * b)
    p = torch.linalg.solve(matrix, a + b * c)
    if _inside(p, model) and bool((demands(p, model) > 0).all()):
        return p
    return _best_response_fixed_point(p, model)


def _joint_profit_peak(model: PricingModel, n: int) -> torch.Tensor:
    """[N]: the joint-profit maximiser without the price range."""
    if model.demand == "logit":
        # One firm pricing every good: equal markups m = mu (1 + W(K/e)),
        # K = sum_j e^{(a_j - c_j - a0)/mu} (from m (1 - Q) = mu).
        a, c = _vector(model, "a", n), _vector(model, "cost", n)
        log_k = torch.logsumexp((a - c - model.a0) / model.mu, 0)
        return c + model.mu * (1 + _lambert_w_exp(log_k - 1))
    a, b, g, c = (_vector(model, k, n) for k in ("a", "b", "g", "cost"))
    # d/dp_k sum_i pi_i = a_k - 2 b_k p_k + b_k c_k + sum_{j!=k} (g_k + g_j) p_j - sum_{j!=k} g_j c_j
    off = 1 - torch.eye(n, dtype=torch.float64)
    matrix = torch.diag(2 * b) - (g[:, None] + g[None, :]) * off
    return torch.linalg.solve(matrix, a + b * c - off @ (g * c))


def collusive_prices(model: PricingModel, n: int) -> torch.Tensor:
    """[N] float64: the joint-profit maximiser in the price range. Its unconstrained peak when
    that lies in the range; else coordinate ascent in the range (joint profit is concave in
    each price for linear demand, single-peaked for logit)."""
    peak = _joint_profit_peak(model, n)
    if _inside(peak, model):
        return peak
    p = peak.clamp(model.price_min, model.price_max)
    for _ in range(1000):
        before = p.clone()
        for k in range(n):
            def joint(x: float, k: int = k) -> float:
                q = p.clone()
                q[k] = x
                return float(profits(q, model).sum())
            p[k] = golden_section(joint, model.price_min, model.price_max, maximize=True)[0]
        if (p - before).abs().max() <= 1e-12 * max(1.0, model.price_max):
            break
    return p


def _symmetric(price: float, n: int) -> torch.Tensor:
    return torch.full((n,), price, dtype=torch.float64)


@functools.lru_cache(maxsize=64)
def solve(model: PricingModel, n: int) -> PricingSolution:
    """Nash, collusive and best-deviation prices and profits for n stores (float64)."""
    p_nash = nash_prices(model, n)
    p_coll = collusive_prices(model, n)
    pi_nash, pi_coll = profits(p_nash, model), profits(p_coll, model)
    p_dev = best_response(p_coll, model)
    pi_dev = deviation_profits(p_dev, p_coll, model)
    who = int((pi_dev - pi_coll).argmax())
    return PricingSolution(
        nash_price=p_nash.mean().item(),
        nash_profit=pi_nash.mean().item(),
        collusive_price=p_coll.mean().item(),
        collusive_profit=pi_coll.mean().item(),
        best_deviation_price=p_dev[who].item(),
        best_deviation_profit=pi_dev[who].item(),
        nash_prices=tuple(p_nash.tolist()),
        nash_profits=tuple(pi_nash.tolist()),
        collusive_prices=tuple(p_coll.tolist()),
        collusive_profits=tuple(pi_coll.tolist()),
    )


def profit_vs_nash(profit: float, nash_profit: float) -> float:
    """100 (profit - pi_N) / |pi_N|: the signed distance to Nash profit in %; nan when pi_N = 0."""
    return 100 * (profit - nash_profit) / abs(nash_profit) if nash_profit else math.nan


def normalised_index(value: float, competitive: float, collusive: float) -> float:
    """(value - competitive) / (collusive - competitive); nan when the two coincide."""
    span = collusive - competitive
    if abs(span) <= 1e-9 * max(1.0, abs(competitive)):
        return float("nan")
    return (value - competitive) / span
