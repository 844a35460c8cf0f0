"""Golden-section search: the optimiser of a unimodal function of one number on an interval.

The oracles use it where no closed form exists (a collusive price on a bounded box, the
shared truck's Lagrange multiplier). Its ends are candidates too: an optimum on the boundary
is found exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

RATIO = (math.sqrt(5) - 1) / 2


def golden_section(f: Callable[[float], float], lo: float, hi: float, *, maximize: bool = False,
                   tol: float = 1e-9) -> tuple[float, float]:
    """(x, f(x)) at the minimum (or maximum) of a unimodal f on [lo, hi], to within tol in x."""
    sign = -1.0 if maximize else 1.0

    def g(x: float) -> float:
        return sign * f(x)

    a, b = lo, hi
    x1, x2 = b - RATIO * (b - a), a + RATIO * (b - a)
    g1, g2 = g(x1), g(x2)
    while b - a > tol:
        if g1 <= g2:
            b, x2, g2 = x2, x1, g1
            x1 = b - RATIO * (b - a)
            g1 = g(x1)
        else:
            a, x1, g1 = x1, x2, g2
            x2 = a + RATIO * (b - a)
            g2 = g(x2)
    value, x = min((g(lo), lo), (g1, x1), (g2, x2), (g(hi), hi))
    return x, sign * value
