"""Small formatting helpers shared by the panels (no textual import)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len

DASH = "—"


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def num(x: Any, digits: int = 4, signed: bool = False) -> str:
    """Four significant figures, thousands separators for big numbers, a dash for nothing/NaN."""
    if not finite(x):
        return DASH
    x = float(x)
    sign = "+" if signed and x > 0 else ""
    if abs(x) >= 10 ** digits:
        return f"{sign}{x:,.0f}"
    if x == 0:
        return "0"
    out = f"{x:.{digits}g}"
    if "e" in out:  # tiny numbers: keep them readable
        out = f"{x:.2e}"
    return sign + out


def pct(x: Any, digits: int = 1) -> str:
    return f"{100 * float(x):.{digits}f}%" if finite(x) else DASH


def mean(xs: Any) -> float | None:
    """Mean of a number or a (nested) list of numbers; None when there is nothing."""
    flat = list(flatten(xs))
    return sum(flat) / len(flat) if flat else None


def flatten(xs: Any) -> Any:
    if finite(xs):
        yield float(xs)
    elif isinstance(xs, (list, tuple)):
        for x in xs:
            yield from flatten(x)


def as_list(xs: Any) -> list[Any]:
    """A value per agent: lists stay lists, a scalar becomes [scalar], anything else []."""
    if isinstance(xs, (list, tuple)):
        return list(xs)
    if finite(xs):
        return [xs]
    return []


def _terms(statement: str) -> list[str]:
    """statement split before each ' = ' or ' + ' outside brackets (a term keeps its operator)."""
    terms, depth, start = [], 0, 0
    for k, ch in enumerate(statement):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0 and statement.startswith((" = ", " + "), k):
            terms.append(statement[start:k])
            start = k + 1
    terms.append(statement[start:])
    return terms


def break_equation(eq: str, width: int, indent: int = 4) -> list[str]:
    """eq as lines of at most `width` cells, broken only between top-level terms.

    Statements apart by a gap of three spaces ("y = ...   γ = 0.95") go on separate lines
    first; a statement that still does not fit breaks before a ' = ' or ' + ' outside brackets.
    Continuation lines hang by `indent`. A term wider than the line stays whole: a terminal
    folding it beats a break inside a symbol.
    """
    if cell_len(eq) <= width:
        return [eq]
    lines: list[str] = []
    for statement in re.split(r" {3,}", eq):
        if lines and cell_len(lines[-1]) + 3 + cell_len(statement) <= width:
            lines[-1] += "   " + statement
            continue
        for k, term in enumerate(_terms(statement)):
            if k and cell_len(lines[-1]) + 1 + cell_len(term) <= width:
                lines[-1] += " " + term
            else:
                lines.append((" " * indent if lines else "") + term)
    return lines


def pack(items: Sequence[str], width: int, sep: str = " · ") -> list[str]:
    """Join items with sep into lines of at most `width` cells, never splitting an item."""
    lines: list[str] = []
    for item in items:
        if lines and cell_len(lines[-1]) + len(sep) + cell_len(item) <= width:
            lines[-1] += sep + item
        else:
            lines.append(item)
    return lines


RATE_KPIS = {"optimal_choice_rate", "conflict_rate", "miss_rate", "fill_rate", "stockout_rate"}


def kpi_value(key: str, value: Any) -> str:
    """Rates as percentages, everything else as numbers."""
    return pct(value) if key in RATE_KPIS else num(value)


def humanise(key: str) -> str:
    return key.replace("_", " ")


def downsample(xs: Sequence[float], ys: Sequence[float], n: int) -> tuple[list[float], list[float]]:
    """At most n points: bucket means (keeps the trend, drops the noise). n >= 2."""
    size = len(xs)
    n = max(2, n)
    if size <= n:
        return list(xs), list(ys)
    out_x: list[float] = []
    out_y: list[float] = []
    for k in range(n):
        lo, hi = (k * size) // n, ((k + 1) * size) // n
        if hi <= lo:
            continue
        out_x.append(sum(xs[lo:hi]) / (hi - lo))
        out_y.append(sum(ys[lo:hi]) / (hi - lo))
    return out_x, out_y


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int, lo: float | None = None,
              hi: float | None = None) -> str:
    """A one-line picture of a vector (bucket means when longer than width); a fixed
    scale [lo, hi] when given, else the values' own range."""
    return tall_sparkline(values, width, 1, lo, hi)[0]


def tall_sparkline(values: Sequence[float], width: int, rows: int, lo: float | None = None,
                   hi: float | None = None) -> list[str]:
    """sparkline over `rows` lines (top line first): columns of eighth blocks, so a taller
    panel shows the same trail in finer steps."""
    vals = [float(v) for v in values if finite(v)]
    if not vals or width <= 0:
        return [""] * rows
    if len(vals) > width:
        _, vals = downsample(list(range(len(vals))), vals, width)
    lo = min(vals) if lo is None else lo
    hi = max(vals) if hi is None else hi
    span = hi - lo
    levels = rows * 8
    # Eighths filled per column, 1..levels: the lowest value still shows a sliver.
    if span <= 0:
        heights = [levels // 2] * len(vals)
    else:
        heights = [min(levels - 1, int((min(max(v, lo), hi) - lo) / span * levels)) + 1 for v in vals]
    lines = []
    for row in range(rows - 1, -1, -1):  # top line first
        line = []
        for h in heights:
            fill = h - row * 8
            line.append(" " if fill <= 0 else SPARK[min(8, fill) - 1])
        lines.append("".join(line))
    return lines


def position(value: float, lo: float, hi: float, width: int) -> int:
    """Column (0..width-1) of value on a scale [lo, hi]."""
    if width <= 1 or hi <= lo:
        return 0
    frac = (value - lo) / (hi - lo)
    return max(0, min(width - 1, round(frac * (width - 1))))
