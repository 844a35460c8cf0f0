"""Exact references for the pricing scenario: demand, best replies, Nash and collusion.

Linear demand D_i = a - b p_i + g sum_{j!=i} p_j (clipped at 0), or Calvano et
al.'s logit demand q_i = e^{(a-p_i)/mu} / (sum_j e^{(a-p_j)/mu} + e^{a0/mu}).
Store i earns (p_i - c) times its demand.

The helper functions take prices shaped [..., N] (any leading batch shape) so
the environment (`pricing.py`), the oracle, the TUI and the benchmarks share one
formula. Everything a store's demand needs from its rivals is one number, the
"rival term": their price sum (linear) or their log choice mass plus the outside
good (logit). Best responses are exact and vectorised: in both models a store's
profit is single-peaked in its own price, so the unconstrained best reply
clipped into the price range is the best reply in the range.

`solve` gives the symmetric Nash and collusive prices and profits, and one
store's best deviation from collusion, in float64.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from marl_tui.config import PricingModel

# --------------------------------------------------------------------------- formulas


def _rival_term(prices: torch.Tensor, model: PricingModel) -> torch.Tensor:
    """[..., N]: what store i's demand needs to know about everyone else."""
    if model.demand == "linear":
        return prices.sum(-1, keepdim=True) - prices
    # log(sum_{j!=i} e^{l_j} + e^{a0/mu}) with a masked logsumexp: subtracting
    # store i from the total would cancel catastrophically when i dominates.
    logits = (model.a - prices) / model.mu
    n = logits.shape[-1]
    rivals = logits.unsqueeze(-2).expand(*logits.shape, n)
    rivals = rivals.masked_fill(torch.eye(n, dtype=torch.bool, device=prices.device), -math.inf)
    outside = torch.full_like(rivals[..., :1], model.a0 / model.mu)
    return torch.logsumexp(torch.cat([rivals, outside], -1), -1)


def _demand(own: torch.Tensor, rival: torch.Tensor, model: PricingModel) -> torch.Tensor:
    if model.demand == "linear":
        return (model.a - model.b * own + model.g * rival).clamp_min(0.0)
    return torch.sigmoid((model.a - own) / model.mu - rival)


def _profit(own: torch.Tensor, rival: torch.Tensor, model: PricingModel) -> torch.Tensor:
    return (own - model.cost) * _demand(own, rival, model)


def demands(prices: torch.Tensor, model: PricingModel) -> torch.Tensor:
    """Each store's demand (units for linear, market share for logit), [..., N]."""
    return _demand(prices, _rival_term(prices, model), model)


def profits(prices: torch.Tensor, model: PricingModel) -> torch.Tensor:
    """Each store's profit (p_i - c) D_i, [..., N]."""
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
    y = (model.a - model.cost) / model.mu - 1 - rival
    return model.cost + model.mu * (1 + _lambert_w_exp(y))


def _best_price(rival: torch.Tensor, model: PricingModel) -> torch.Tensor:
    if model.demand == "linear":
        # Also right when demand is clipped: with a + g*rival <= b c every
        # price earns at most 0 and this price earns exactly that.
        best = (model.a + model.g * rival + model.b * model.cost) / (2 * model.b)
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
    """Per-store reference prices and profits (symmetric, within the price range)."""

    nash_price: float
    nash_profit: float
    collusive_price: float  # symmetric joint-profit maximiser
    collusive_profit: float
    best_deviation_price: float  # one store's best reply when the others collude
    best_deviation_profit: float


def _symmetric(price: float, n: int) -> torch.Tensor:
    return torch.full((n,), price, dtype=torch.float64)


def _nash_price(model: PricingModel, n: int) -> float:
    # Symmetric Nash: the fixed point of p -> BR(p, ..., p). A best reply moves
    # by less than the rivals' price (slope < 1), so BR(p) - p is decreasing and
    # bisection finds it; the range's ends come out when it lies beyond them.
    lo, hi = model.price_min, model.price_max
    for _ in range(64):
        mid = (lo + hi) / 2
        if best_response(_symmetric(mid, n), model)[0].item() > mid:
            lo = mid
        else:
            hi = mid
    # One more best reply lands exactly on a bound when the answer is clipped.
    return best_response(_symmetric((lo + hi) / 2, n), model)[0].item()


def _collusive_price(model: PricingModel, n: int) -> float:
    # Joint profit of a common price is single-peaked too, so clip its peak.
    if model.demand == "linear":
        k = model.b - (n - 1) * model.g  # slope of a store's demand when all move together
        peak = torch.tensor((model.a + k * model.cost) / (2 * k), dtype=torch.float64)
    else:
        # n identical goods priced together act as one good with quality + mu ln n.
        rival = torch.tensor(model.a0 / model.mu - math.log(n), dtype=torch.float64)
        peak = _logit_best_price(rival, model)
    return peak.clamp(model.price_min, model.price_max).item()


@functools.lru_cache(maxsize=64)
def solve(model: PricingModel, n: int) -> PricingSolution:
    """Nash, collusive and best-deviation prices and profits for n stores (float64)."""
    p_nash = _nash_price(model, n)
    p_coll = _collusive_price(model, n)
    at_coll = _symmetric(p_coll, n)
    p_dev = best_response(at_coll, model)[0].item()
    return PricingSolution(
        nash_price=p_nash,
        nash_profit=profits(_symmetric(p_nash, n), model)[0].item(),
        collusive_price=p_coll,
        collusive_profit=profits(at_coll, model)[0].item(),
        best_deviation_price=p_dev,
        best_deviation_profit=deviation_profits(_symmetric(p_dev, n), at_coll, model)[0].item(),
    )


def normalised_index(value: float, competitive: float, collusive: float) -> float:
    """(value - competitive) / (collusive - competitive); nan when the two coincide."""
    span = collusive - competitive
    if abs(span) <= 1e-9 * max(1.0, abs(competitive)):
        return float("nan")
    return (value - competitive) / span
