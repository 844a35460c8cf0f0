"""Pricing: each store's price on its allowed range with the Nash (N) and collusive (M) marks."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from marl_tui.tui.fmt import as_list, finite, num, position, sparkline, tall_sparkline
from marl_tui.tui.widgets.scene import (
    SceneData,
    ScenePanel,
    kpi_lines,
    step_header,
    styled_cells,
    trail,
)


def collusion_index(profits: list[float], nash: Any, collusive: Any) -> float | None:
    """Δ = (r̄ − r_N) / (r_M − r_N), r̄ the mean profit; None when Nash and collusion coincide."""
    if not profits or not (finite(nash) and finite(collusive)):
        return None
    span = collusive - nash
    if abs(span) <= 1e-9 * max(1.0, abs(nash)):
        return None
    return (sum(profits) / len(profits) - nash) / span


def price_bar(price: float, lo: float, hi: float, nash: Any, coll: Any, width: int) -> Text:
    cells = ["─"] * width
    styles = ["dim"] * width
    at = position(price, lo, hi, width)
    for k in range(at):
        cells[k], styles[k] = "━", "cyan"
    marks = []
    if finite(nash):
        marks.append((position(nash, lo, hi, width), "N", "bold green"))
    if finite(coll):
        c = position(coll, lo, hi, width)
        if marks and marks[0][0] == c:
            marks[0] = (c, "◆", "bold yellow")  # Nash = collusion here
        else:
            marks.append((c, "M", "bold magenta"))
    for col, ch, st in marks:
        cells[col], styles[col] = ch, st
    cells[at], styles[at] = "●", "bold reverse" if any(m[0] == at for m in marks) else "bold"
    return styled_cells(cells, styles)


class PricingPanel(ScenePanel):
    TITLE = "pricing"
    HINT = "each store's price on its range: N Nash, M collusive, ● the price set this day"
    GROWS = True  # taller price trails where the panel has rows to spare

    def lines(self, data: SceneData, width: int) -> Text:
        r, m, ov = data.record, data.model, data.oracle_values
        info = r.info
        prices = as_list(info.get("price", r.actions))
        demand = as_list(info.get("demand"))
        profit = as_list(info.get("profit", r.reward))
        lo = float(getattr(m, "price_min", min(prices, default=0.0)))
        hi = float(getattr(m, "price_max", max(prices, default=1.0)))
        nash, coll = ov.get("nash_price"), ov.get("collusive_price")
        names = list(data.agent_names) or [f"store {i + 1}" for i in range(len(prices))]
        nw = max(len(n) for n in names)

        t = step_header(data, "day")
        t.append("\n")
        for i, p in enumerate(prices):
            # Asymmetric stores: each has its own Nash and collusive price.
            own_nash = ov.get(f"nash_price_{i + 1}", nash)
            own_coll = ov.get(f"collusive_price_{i + 1}", coll)
            left = f"{names[i]:<{nw}}  p {num(p):>6} "
            d = demand[i] if i < len(demand) else None
            r_i = profit[i] if i < len(profit) else None
            right = f"  D {num(d):>6}  r_i {num(r_i):>7}"
            bar_w = width - len(left) - len(right)
            t.append(f"\n{names[i]:<{nw}}", style="bold")
            t.append(left[nw:])
            if bar_w >= 12:
                t.append(price_bar(p, lo, hi, own_nash, own_coll, bar_w))
                t.append(right)
            else:
                t.append(right)
                pad = " " * (nw + 2)
                t.append("\n" + pad)
                t.append(price_bar(p, lo, hi, own_nash, own_coll, max(10, width - len(pad))))
        t.append("\n")
        t.append(f"range {lo:g}..{hi:g} · ", style="dim")
        t.append("N", style="bold green")
        mean = "mean " if "nash_price_1" in ov else ""
        t.append(f" Nash {mean}{num(nash)} (r_N {num(ov.get('nash_profit'))}) · ")
        if finite(nash) and finite(coll) and abs(nash - coll) < 1e-9:
            t.append("◆", style="bold yellow")
            t.append(" Nash = collusive here · ")
        else:
            t.append("M", style="bold magenta")
            t.append(f" collusive {num(coll)} (r_M {num(ov.get('collusive_profit'))}) · ")
        t.append("●", style="bold")
        t.append(" today")
        delta = collusion_index([float(x) for x in profit if finite(x)], ov.get("nash_profit"),
                                ov.get("collusive_profit"))
        t.append("\ncollusion index Δ = (r̄ − r_N)/(r_M − r_N): ", style="bold")
        t.append(f"today {num(delta, 3)} · last episode {num(data.kpis.get('collusion_index'), 3)}")
        t.append("  (0 Nash, 1 collusion; < 0 below Nash, > 1 beyond)", style="dim")
        t.append("\n")
        t.append(kpi_lines(data, width))
        t.append(self.history(data, names, lo, hi, nash, width, 1 + self.spare_rows // len(names)))
        return t

    @staticmethod
    def history(data: SceneData, names: list[str], lo: float, hi: float, nash: Any,
                width: int, rows: int = 1) -> Text:
        """Each store's price over the last steps, on the range's scale, `rows` lines tall."""
        nw = max(len(n) for n in names)
        span = max(10, width - nw - 4)
        recent = trail(data, span)
        t = Text()
        if len(recent) < 2:
            return t
        t.append(f"\n\nprices, last {len(recent)} steps (scale {lo:g}..{hi:g}", style="bold")
        if finite(nash):
            t.append(f"; Nash at {sparkline([nash], 1, lo, hi)}", style="bold")
        t.append(")", style="bold")
        for i, name in enumerate(names):
            series = [as_list(r.info.get("price", r.actions))[i] for r in recent
                      if len(as_list(r.info.get("price", r.actions))) > i]
            for k, line in enumerate(tall_sparkline(series, span, rows, lo, hi)):
                t.append(f"\n{name if k == rows - 1 else '':<{nw}}  ", style="bold")
                t.append(line, style="cyan")
        return t
