"""Fulfillment: a map of the stores with the order, who took it and who should have, and a table."""

from __future__ import annotations

import string
from typing import Any

from rich.text import Text

from marl_tui.algos.base import Explain
from marl_tui.algos.maddpg import MADDPGExplain
from marl_tui.algos.mappo import MAPPOExplain
from marl_tui.algos.qmix import QMIXExplain
from marl_tui.tui.fmt import as_list, finite, num, pct
from marl_tui.tui.widgets.scene import SceneData, ScenePanel, kpi_lines, packed, step_header

LABELS = string.ascii_uppercase
INFEASIBLE = 1e5  # the env marks "cannot ship" with a huge cost


def label(i: int) -> str:
    return LABELS[i] if i < len(LABELS) else "*"


def _index(x: Any) -> int:
    return int(x) if finite(x) else -1


def _pair(rows: Any, i: int) -> tuple[float, float] | None:
    """Agent i's (decline, accept) numbers from a per-agent table, if it has them."""
    if rows is None or i >= len(rows) or len(rows[i]) < 2:
        return None
    return float(rows[i][0]), float(rows[i][1])


def accept_value(explain: Explain | None, i: int) -> tuple[str, float | None]:
    """(column header, number) saying how much store i wants to accept, from its explain."""
    if isinstance(explain, QMIXExplain) and (q := _pair(explain.Q_i, i)):
        return "Q a−d", q[1] - q[0]
    if isinstance(explain, MAPPOExplain) and (p := _pair(explain.probs, i)):
        return "P(acc)", p[1]
    if isinstance(explain, MADDPGExplain) and (g := _pair(explain.dQ_da_onehot, i)):
        return "∂Q a−d", g[1] - g[0]
    return "", None


def store_map(positions: list[Any], area: float, order: list[float], accept: list[Any],
              served: int, best: int, feasible: list[Any], rows: int) -> Text:
    cols = 2 * rows + 1
    grid = [[(" ", "")] * cols for _ in range(rows)]

    def cell(x: float, y: float) -> tuple[int, int]:
        c = round(min(max(x / area, 0.0), 1.0) * (cols - 1))
        r = round((1.0 - min(max(y / area, 0.0), 1.0)) * (rows - 1))
        return r, c

    taken = set()
    for i, p in enumerate(positions):
        r, c = cell(float(p[0]), float(p[1]))
        style = ""
        if i < len(feasible) and finite(feasible[i]) and not feasible[i]:
            style = "dim"
        if i < len(accept) and finite(accept[i]) and accept[i]:
            style = "bold cyan"
        if i == best:
            style = "bold yellow underline"
        if i == served:
            style = "bold reverse green" if served == best else "bold reverse"
        grid[r][c] = (label(i), style)
        taken.add((r, c))
    if len(order) >= 2:
        r, c = cell(order[0], order[1])
        if (r, c) in taken:  # next to the store rather than on it
            c = c + 1 if c + 1 < cols and (r, c + 1) not in taken else max(c - 1, 0)
        grid[r][c] = ("X", "bold red")
    t = Text()
    t.append("┌" + "─" * cols + "┐\n", style="dim")
    for row in grid:
        t.append("│", style="dim")
        for ch, st in row:
            t.append(ch, style=st)
        t.append("│\n", style="dim")
    t.append("└" + "─" * cols + "┘", style="dim")
    return t


class FulfillmentPanel(ScenePanel):
    TITLE = "fulfillment"
    HINT = "X the order; reversed: the store that ships; underlined ★: the oracle's cheapest store"
    GROWS = True  # earlier orders fill the rows the panel has to spare

    def lines(self, data: SceneData, width: int) -> Text:
        r, m = data.record, data.model
        info = r.info
        positions = list(getattr(m, "positions", []) or [])
        area = float(getattr(m, "area", 10.0) or 10.0)
        order = [float(x) for x in as_list(info.get("order_xy"))]
        accept = as_list(info.get("accept", r.actions))
        feasible = as_list(info.get("feasible"))
        dist, inv = as_list(info.get("distance")), as_list(info.get("inventory"))
        load, cost = as_list(info.get("load")), as_list(info.get("cost"))
        served, best = _index(info.get("served_by")), _index(info.get("oracle_store"))
        n = max(len(positions), len(accept))

        rows = 10 if width >= 60 else 9
        the_map = store_map(positions, area, order, accept, served, best, feasible, rows)

        header, _ = accept_value(data.explain, 0)
        table: list[Text] = []  # plain fixed-width rows: cheaper to draw than a rich Table
        head_row = f"  {'km':>4} {'stk':>3} {'ld':>2} {'cost':>5} " + (f"{header:>6} " if header else "")
        table.append(Text(head_row + "decision", style="bold"))
        table.append(Text("─" * (len(head_row) + 9), style="dim"))
        for i in range(n):
            c = cost[i] if i < len(cost) else None
            ok = not (i < len(feasible) and finite(feasible[i]) and not feasible[i])
            acc = i < len(accept) and finite(accept[i]) and bool(accept[i])
            row = Text()
            row.append(label(i), style="bold reverse" if i == served else "bold")
            row.append(f" {num(dist[i] if i < len(dist) else None, 2):>4}"
                       f" {num(inv[i] if i < len(inv) else None):>3}"
                       f" {num(load[i] if i < len(load) else None):>2}"
                       f" {num(c, 3) if ok and finite(c) and c < INFEASIBLE else '—':>5} ")
            if header:
                v = accept_value(data.explain, i)[1]
                row.append(f"{pct(v, 0) if header == 'P(acc)' else num(v, 2, signed=True):>6} ")
            if i == served:
                row.append("ships ✓", style="bold green")
            elif acc:
                row.append("extra" if ok else "accepts ✗", style="cyan")
            else:
                row.append("declines" if ok else "—", style="dim")
            if i == best:
                row.append(" ★", style="bold yellow")
            table.append(row)

        said: list[Text] = []  # broken between these, never inside one
        if len(order) >= 2:
            said.append(Text.assemble(("X", "bold red"), f" order at ({order[0]:.1f}, {order[1]:.1f}) km"))
        team, ref = info.get("team_cost"), info.get("oracle_cost")
        said.append(Text(f"shipped by {label(served)}") if served >= 0 else
                    Text("nobody shipped (miss)", style="bold red"))
        said.append(Text.assemble("best: ", (f"{label(best)}" if best >= 0 else "nobody", "bold yellow")))
        cost = Text(f"team cost {num(team, 3)} vs best {num(ref, 3)}")
        if finite(team) and finite(ref):
            if abs(team - ref) < 1e-6:
                cost.append(" ✓ optimal", style="bold green")
            else:
                cost.append(f" (regret {num(team - ref, 3, signed=True)})", style="bold red")
        said.append(cost)
        summary = packed(said, width, sep_style="")

        map_w = 2 * rows + 3
        head = step_header(data, "order")
        map_lines = the_map.split("\n")
        body = Text()
        if width >= map_w + 2 + 38:  # side by side
            for k in range(max(len(map_lines), len(table))):
                if k:
                    body.append("\n")
                left = map_lines[k] if k < len(map_lines) else Text(" " * map_w)
                body.append(left)
                body.append(" " * (map_w - left.cell_len + 2))
                if k < len(table):
                    body.append(table[k])
        else:
            body = Text("\n").join([*map_lines, *table])
        note = Text()
        if data.explain is None and data.algo not in ("random", "oracle"):
            note = Text("(the learner's view of this order shows when paused: press space, then n)",
                        style="dim")
        wd, wl, wi = ("/".join(num(v) for v in w) if isinstance(w, tuple) else num(w)  # per store: a/b/c
                      for w in (getattr(m, k, None) for k in ("distance_weight", "load_weight", "inventory_weight")))
        legend = Text(f"cost = {wd}·km + {wl}·ld + {wi}/stk (— can't ship) · "
                      "extra: accepted, not needed · ✗ accepted, can't ship · ★ the oracle's choice",
                      style="dim")
        parts = [head, body, summary, note, kpi_lines(data, width), legend, self.history(data),
                 self.recent_orders(data, self.spare_rows - 2)]  # 2: a blank line and its title
        return Text("\n").join(p for p in parts if p.plain)

    @staticmethod
    def recent_orders(data: SceneData, rows: int) -> Text:
        """The last `rows` orders of copy 1, newest first: who shipped, the oracle's choice,
        the regret (rows the panel would otherwise leave empty)."""
        t = Text()
        shown = list(reversed(data.recent[:-1]))[:max(0, rows)]  # the step on screen is above
        if not shown:
            return t
        t.append("\nearlier orders, newest first", style="bold")
        for r in shown:
            served, best = _index(r.info.get("served_by")), _index(r.info.get("oracle_store"))
            team, ref = r.info.get("team_cost"), r.info.get("oracle_cost")
            t.append(f"\nstep {r.step:>6,} · ", style="dim")
            if served >= 0:
                t.append(f"shipped by {label(served)}")
            else:
                t.append("nobody shipped", style="bold red")
            t.append(" · best ")
            t.append(label(best) if best >= 0 else "nobody", style="bold yellow")
            if finite(team) and finite(ref):
                if abs(team - ref) < 1e-6:
                    t.append(" ✓", style="bold green")
                else:
                    t.append(f" · regret {num(team - ref, 3, signed=True)}", style="red")
        return t

    @staticmethod
    def history(data: SceneData) -> Text:
        """How the last orders went (copy 1): optimal choices, conflicts, misses, regret."""
        recent = list(data.recent[-200:])
        t = Text()
        if len(recent) < 2:
            return t
        optimal = conflict = miss = 0
        regret = 0.0
        for r in recent:
            acc = [bool(x) for x in as_list(r.info.get("accept", r.actions)) if finite(x)]
            best = _index(r.info.get("oracle_store"))
            wanted = [i == best for i in range(len(acc))]
            optimal += acc == wanted
            conflict += sum(acc) > 1
            miss += _index(r.info.get("served_by")) < 0
            team, ref = r.info.get("team_cost"), r.info.get("oracle_cost")
            if finite(team) and finite(ref):
                regret += team - ref
        n = len(recent)
        t.append(f"\nlast {n} orders: ", style="bold")
        t.append(f"optimal {optimal / n:.0%} · conflicts {conflict / n:.0%} · misses {miss / n:.0%}"
                 f" · mean regret {num(regret / n, 3)}")
        return t
