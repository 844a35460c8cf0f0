"""What "reached the target" means per scenario kind, and the reference lines a KPI chart draws.

Declared once here; the table, the headless summary and the results files all read them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from marl_tui.config import HEADLINE_KPI

WINDOW = 5  # training episodes averaged before a target counts as met (one lucky episode is not enough)


@dataclass(frozen=True)
class Target:
    kind: str
    text: str  # how a person reads it
    at_least: float | None = None  # met when the KPI is >= this
    near: str | None = None  # or: an oracle value's name (OracleView.values) ...
    tolerance: float = 0.0  # ... and the KPI within this fraction of it

    @property
    def kpi(self) -> str:
        return HEADLINE_KPI[self.kind]

    def met(self, value: float, oracle_values: Mapping[str, float]) -> bool:
        if self.near is not None:
            ref = oracle_values.get(self.near)
            return ref is not None and abs(value - ref) <= self.tolerance * abs(ref)
        return self.at_least is not None and value >= self.at_least


TARGETS = {
    "pricing": Target("pricing", "mean profit within ±2 % of Nash", near="nash_profit", tolerance=0.02),
    "warehouse": Target("warehouse", "≥ 95 % of optimal", at_least=95.0),
    "fulfillment": Target("fulfillment", "optimal-choice rate ≥ 95 %", at_least=0.95),
}

# Named lines a KPI's chart draws besides the oracle's: (label, name in OracleView.values).
REFERENCE_LINES: dict[str, tuple[tuple[str, str], ...]] = {
    "mean_profit": (("Nash", "nash_profit"), ("collusive", "collusive_profit")),
    "mean_price": (("Nash", "nash_price"), ("collusive", "collusive_price")),
}


def reached_at(xs: Sequence[float], ys: Sequence[float], target: Target,
               oracle_values: Mapping[str, float]) -> float | None:
    """The env step from which the mean of the last WINDOW episodes meets the target and keeps
    meeting it up to the latest episode (passing through on the way elsewhere does not count:
    QMIX's profit crosses Nash's on its way to the collusive price)."""
    reached = None
    for i in range(len(ys) - 1, WINDOW - 2, -1):
        if not target.met(sum(ys[i - WINDOW + 1:i + 1]) / WINDOW, oracle_values):
            break
        reached = xs[i]
    return reached


def reference_lines(kpi: str, oracle_kpis: Mapping[str, float],
                    oracle_values: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    """(label, value) of each line on a KPI's chart: the oracle's, then the named ones; a named
    line on the oracle's value (pricing's oracle plays Nash) joins its label instead."""
    lines: list[tuple[str, float]] = []
    if kpi in oracle_kpis:
        lines.append(("oracle", oracle_kpis[kpi]))
    for label, name in REFERENCE_LINES.get(kpi, ()):
        value = oracle_values.get(name)
        if value is None:
            continue
        same = [i for i, (_, v) in enumerate(lines) if abs(v - value) <= 1e-9 * max(1.0, abs(value))]
        if same:
            old, v = lines[same[0]]
            lines[same[0]] = (f"{old} = {label}", v)
        else:
            lines.append((label, value))
    return tuple(lines)
