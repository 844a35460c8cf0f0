"""Warehouse restocking: each warehouse's stock against this period's optimal order-up-to level."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from marl_tui.tui.fmt import as_list, finite, num, position, tall_sparkline
from marl_tui.tui.widgets.scene import (
    SceneData,
    ScenePanel,
    kpi_lines,
    step_header,
    styled_cells,
    trail,
)


def _at(xs: list[Any], i: int) -> Any:
    return xs[i] if i < len(xs) else None


def stock_bar(on_hand: Any, stock: Any, target: Any, cap: float, width: int) -> Text:
    """█ what was on hand, ▓ what the order added, ┃ the optimal order-up-to level."""
    cells = ["·"] * width
    styles = ["dim"] * width
    held = position(on_hand, 0, cap, width + 1) if finite(on_hand) else 0
    total = position(stock, 0, cap, width + 1) if finite(stock) else held
    for k in range(min(held, width)):
        cells[k], styles[k] = "█", "cyan"
    for k in range(held, min(total, width)):
        cells[k], styles[k] = "▓", "green"
    if finite(target):
        c = min(width - 1, max(0, position(target, 0, cap, width + 1) - 1))
        cells[c], styles[c] = "┃", "bold yellow reverse" if c < total else "bold yellow"
    return styled_cells(cells, styles)


class WarehousePanel(ScenePanel):
    TITLE = "warehouses"
    HINT = "stock per warehouse: █ on hand, ▓ just ordered, ┃ the optimal order-up-to level"
    GROWS = True  # taller trails where the panel has rows to spare

    def lines(self, data: SceneData, width: int) -> Text:
        r, m = data.record, data.model
        info = r.info
        stock = as_list(info.get("stock"))
        on_hand = as_list(info.get("on_hand"))
        order = as_list(info.get("order", r.actions))
        demand = as_list(info.get("demand"))
        sold = as_list(info.get("sold"))
        lost = as_list(info.get("lost"))
        left = as_list(info.get("leftover"))
        reward = as_list(info.get("reward", r.reward))
        target = as_list(info.get("order_up_to"))
        cap = float(getattr(m, "capacity", 0) or max([*stock, *target, 1.0]))
        season = int(getattr(m, "season_length", 0) or 0)
        n = max(len(stock), len(order), len(data.agent_names))
        names = list(data.agent_names) or [f"warehouse {i + 1}" for i in range(n)]
        nw = max(len(x) for x in names)

        t = step_header(data, "period")
        period = info.get("period")
        if finite(period) and season:
            t.append(f" · season period {int(period) % season + 1}/{season}", style="dim")
        t.append("\n")
        for i in range(n):
            s, tg = _at(stock, i), _at(target, i)
            head = f"{names[i]:<{nw}}  stock {num(s, 3):>5} / target {num(tg, 3):>4} "
            bar_w = max(10, width - len(head) - 1)
            t.append("\n")
            t.append(f"{names[i]:<{nw}}", style="bold")
            t.append(head[nw:])
            t.append(stock_bar(_at(on_hand, i), s, tg, cap, min(bar_w, 60)))
            lost_i = _at(lost, i)
            t.append(f"\n  order {num(_at(order, i), 3)}")
            t.append(f" · demand {num(_at(demand, i), 3)} · sold {num(_at(sold, i), 3)} · ")
            t.append(f"lost {num(lost_i, 3)}", style="bold red" if finite(lost_i) and lost_i > 0 else "")
            t.append(f" · left {num(_at(left, i), 3)} · r ")
            rw = _at(reward, i)
            t.append(num(rw, 3, signed=True), style="bold")
        t.append("\n")
        t.append(f"0..{cap:g} units: ", style="dim")
        t.append("█", style="cyan")
        t.append(" had  ")
        t.append("▓", style="green")
        t.append(" ordered  ")
        t.append("┃", style="bold yellow")
        t.append(" optimal level · r reward")
        t.append("\n")
        t.append(kpi_lines(data, width))
        # Trails grow taller by the rows the panel has to spare: two per warehouse, and a blank
        # line between warehouses once they are taller than one line.
        n = len(names)
        rows = 1 + max(0, self.spare_rows - (n - 1)) // (2 * n)
        t.append(self.history(data, names, cap, width, rows))
        return t

    @staticmethod
    def history(data: SceneData, names: list[str], cap: float, width: int, rows: int = 1) -> Text:
        """Stock and the optimal level over the last steps, on the 0..capacity scale, each
        `rows` lines tall."""
        nw = max(len(n) for n in names)
        span = max(10, width - nw - 10)
        recent = trail(data, span)
        t = Text()
        if len(recent) < 2:
            return t
        t.append(f"\n\nlast {len(recent)} periods (scale 0..{cap:g})", style="bold")
        for i, name in enumerate(names):
            if i and rows > 1:
                t.append("\n")
            for label, key, style in (("stock ", "stock", "cyan"), ("target", "order_up_to", "yellow")):
                series = [x for r in recent if finite(x := _at(as_list(r.info.get(key)), i))]
                for k, line in enumerate(tall_sparkline(series, span, rows, 0, cap)):
                    who = name if label == "stock " and k == rows - 1 else ""
                    t.append(f"\n{who:<{nw}}  {label if k == rows - 1 else '':<6} ", style="bold")
                    t.append(line, style=style)
        return t
