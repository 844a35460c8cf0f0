"""Counter-based random numbers: one independent stream per parallel copy.

Each copy b draws from hash(seed_b, counter_b, k). So a batch of B copies with
seeds s, s+1, ... produces exactly the trajectories of B single copies with
those seeds, and CPU and CUDA produce the same numbers. The hash is Chris
Wellons' "lowbias32", computed in int64 with 32-bit words so nothing overflows.
"""

from __future__ import annotations

import torch

_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for 0 <= x < 2**32 without int64 overflow."""
    hi, lo = c >> 16, c & 0xFFFF
    return ((((x * hi) & 0xFFFF) << 16) + x * lo) & _MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


class CounterRNG:
    """Per-copy streams. `uniform(k)` returns [B, k] floats in [0, 1) and advances each copy."""

    def __init__(self, seeds: torch.Tensor) -> None:
        self.seeds = seeds.to(torch.int64)
        self.counter = torch.zeros_like(self.seeds)

    def uniform(self, k: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        idx = torch.arange(k, device=self.seeds.device, dtype=torch.int64)
        key = hash32(hash32(self.seeds * 0x9E37 + 0x51ED27) ^ self.counter)
        bits = hash32(key[:, None] ^ hash32(idx + 0x2545F491)[None, :])
        self.counter = (self.counter + 1) & _MASK32
        return (bits.to(torch.float64) / 2.0**32).to(dtype)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"seeds": self.seeds.clone(), "counter": self.counter.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.seeds = state["seeds"].to(self.seeds.device, torch.int64)
        self.counter = state["counter"].to(self.seeds.device, torch.int64)


def poisson_from_uniform(u: torch.Tensor, lam: torch.Tensor, max_k: int) -> torch.Tensor:
    """Inverse-CDF Poisson draw, exact up to max_k (mass beyond it is folded into max_k)."""
    k = torch.arange(max_k + 1, device=u.device, dtype=torch.float64)
    lam64 = lam.to(torch.float64).unsqueeze(-1)
    log_pmf = k * torch.log(lam64.clamp_min(1e-300)) - lam64 - torch.lgamma(k + 1)
    cdf = torch.cumsum(torch.exp(log_pmf), dim=-1)
    draws = (cdf < u.to(torch.float64).unsqueeze(-1)).sum(-1)
    return draws.clamp_max(max_k).to(u.dtype)
