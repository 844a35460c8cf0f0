"""The "why" panel: the study guide's equations for the running algorithm, with live numbers.

It renders the algorithm's own Explain struct (MADDPGExplain, ...) field by field; fields that
exist only after the first update are None before it, and the panel says what is still missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from marl_tui.algos.base import Explain
from marl_tui.algos.baselines import OracleExplain, RandomExplain
from marl_tui.algos.maddpg import MADDPGExplain
from marl_tui.algos.mappo import MAPPOExplain
from marl_tui.algos.qmix import QMIXExplain
from marl_tui.config import ALGO_TITLES
from marl_tui.tui.fmt import break_equation, finite, flatten, mean, num, pack, pct, sparkline
from marl_tui.tui.widgets.panel import Panel


@dataclass
class WhyData:
    explain: Explain | None
    algo: str
    agent_names: tuple[str, ...] = ()
    kind: str = ""
    discrete_levels: tuple[float, ...] = ()  # values of discrete actions (QMIX on prices)
    step: int | None = None  # explain() is for the decision taken in this step
    greedy: bool = False  # ... of the greedy view
    note: str = ""
    reward_scale: float = 1.0  # learners see reward × this (the scenario's reward_scale)
    actions: tuple[float, ...] = ()  # the actions taken in this step (copy 1), in the scenario's units
    # Numbers in one agent's continuous action: when > 1, every action figure is the first number's.
    action_dims: int = 1
    # Agents whose actions differ in size: each one's own (ActionSpace.per_agent); empty when all share.
    action_sizes: tuple[int, ...] = ()


ACTION_WORD = {"pricing": "price", "warehouse": "order", "fulfillment": "choice"}


def _names(d: WhyData, n: int, width: int = 80) -> list[str]:
    """Agent labels: the map's letters for fulfilment, short ones (S1, W2) when narrow."""
    if d.kind == "fulfillment":
        from marl_tui.tui.widgets.fulfillment import label

        return [label(i) for i in range(n)]
    names = list(d.agent_names)
    full = [names[i] if i < len(names) else f"agent {i + 1}" for i in range(n)]
    if width >= 56:
        return full
    return [f"{x.split()[0][0].upper()}{x.split()[-1]}" if len(x.split()) > 1 else x for x in full]


def _action(d: WhyData, a: float | None) -> str:
    if d.kind == "fulfillment" and finite(a):
        return "accept" if round(a) == 1 else "decline"
    return num(a)


class _Writer:
    """Collects the panel's lines for one width."""

    def __init__(self, width: int = 80) -> None:
        self.width = width
        self.t = Text()

    def aside(self, s: str) -> None:
        """A dim line of its own, without the indent of a section's lines."""
        self.t.append(("\n" if self.t.plain else "") + s, style="dim")

    def title(self, s: str) -> None:
        if self.t.plain:
            self.t.append("\n")
        self.t.append(s, style="bold underline")

    def eq(self, s: str, style: str = "italic cyan", head: str = "", head_style: str = "") -> None:
        """An equation (after an optional label `head`); when it does not fit, it breaks only
        between top-level terms, so the terminal never wraps it inside a symbol."""
        for k, line in enumerate(break_equation(head + s, self.width - 2)):
            self.t.append("\n  ")
            if k == 0 and head:
                self.t.append(head, style=head_style)
                line = line[len(head):]
            self.t.append(line, style=style)

    def line(self, s: str = "", style: str = "") -> None:
        self.t.append("\n  " + s, style=style)

    def items(self, items: list[str], style: str = "") -> None:
        """Labelled numbers joined by " · ", wrapped between items, never inside one."""
        for s in pack(items, self.width - 2):
            self.line(s, style)

    def parts(self, *parts: tuple[str, str]) -> None:
        self.t.append("\n  ")
        for s, st in parts:
            self.t.append(s, style=st)

    def agent(self, main: list[tuple[str, str]], extra: list[tuple[str, str]], indent: int) -> None:
        """One line per agent when it fits, else the extra part on a second, indented line."""
        size = 2 + sum(len(x) for x, _ in main) + sum(len(x) for x, _ in extra)
        if size <= self.width or not extra:
            self.parts(*main, *extra)
        else:
            self.parts(*main)
            self.parts((" " * indent, ""), *[(x.lstrip(), st) if k == 0 else (x, st)
                                              for k, (x, st) in enumerate(extra)])


def _maddpg(w: _Writer, d: WhyData, ex: MADDPGExplain, width: int) -> None:
    w.title("Critic target (last batch, mean)")
    w.eq(f"y_i = r_i + γ·Q_i⁻(s′, μ⁻(o′))   γ = {num(ex.gamma, 3)}")
    if ex.y_i is None or ex.r_i is None or ex.Q_next is None:
        w.line("no update yet: the replay buffer is still filling", style="dim")
    else:  # the equation filled in for the first agent, then every agent's numbers
        names = _names(d, len(ex.y_i), width)
        nw = max(len(x) for x in names)
        w.eq(f"{num(ex.y_i[0], 3)} = {num(ex.r_i[0], 3)} + {num(ex.gamma, 3)} × {num(ex.Q_next[0], 3)}",
             style="italic", head=f"{names[0]}: ", head_style="bold")
        w.line(f"{'':<{nw}}  {'y_i':>8} {'r_i':>8} {'Q_i⁻':>8}", style="dim")
        for name, y, r, qn in zip(names, ex.y_i, ex.r_i, ex.Q_next, strict=True):
            w.parts((f"{name:<{nw}}  ", "bold"), (f"{num(y, 3):>8} ", "bold"),
                    (f"{num(r, 3):>8} {num(qn, 3):>8}", ""))
    w.title("Actor follows the critic's slope")
    w.eq("∇θJ_i = E[∇θ μ_i(o_i)·∇a_i Q_i(s,a)|a=μ(o)]")
    names = _names(d, len(ex.Q_i), width)
    nw = max((len(x) for x in names), default=0)
    slope_head = "∂Q/∂a₁−₀" if ex.dQ_da_onehot is not None else "∂Q_i/∂a_i"
    w.line(f"{'':<{nw}}  {'μ_i(o_i)':>8} {'Q_i':>6} {slope_head:>9} push", style="dim")
    for i, name in enumerate(names):
        a: float | None = None
        slope: float | None = None
        push = ""
        if ex.greedy is not None and ex.dQ_da_onehot is not None:  # slope over the one-hot action
            a, vals = ex.greedy[i], ex.dQ_da_onehot[i]
            if len(vals) == 2:
                slope = vals[1] - vals[0]
                push = ("accept" if slope > 0 else "decline") if d.kind == "fulfillment" \
                    else f"→ {int(slope > 0)}"
            elif vals:
                best = max(range(len(vals)), key=vals.__getitem__)
                slope, push = vals[best], f"→ {best}"  # short: a 10-letter agent name still fits
        elif ex.mu_i is not None and ex.dQ_da is not None:
            a = ex.mu_i[i]
            if finite(ex.dQ_da[i]):
                verb = {"pricing": ("raise", "lower"), "warehouse": ("more", "less")}.get(
                    d.kind, ("up", "down"))
                slope = ex.dQ_da[i]
                push = verb[0] if slope > 0 else verb[1]
        w.parts((f"{name:<{nw}}  ", "bold"), (f"{_action(d, a):>8} ", ""),
                (f"{num(ex.Q_i[i], 3):>6} ", "dim"), (f"{num(slope, 2, signed=True):>9} ", ""),
                (push, "bold"))
    word = ACTION_WORD.get(d.kind, "action")
    w.line(f"μ_i(o_i): the actor's {word} now; push: where the critic moves it", style="dim")


def _mappo(w: _Writer, d: WhyData, ex: MAPPOExplain, width: int) -> None:
    w.title("Policy π_i(a|o_i) and centralised V(s)")
    names = _names(d, len(ex.V), width)
    nw = max((len(x) for x in names), default=0)
    word = ACTION_WORD.get(d.kind, "action")
    for i, name in enumerate(names):
        parts: list[tuple[str, str]] = [(f"{name:<{nw}}  ", "bold")]
        if ex.mean is not None and ex.std is not None:
            parts.append((f"{word} ~ N({num(ex.mean[i], 3)}, σ {num(ex.std[i], 3)})", ""))
        elif ex.probs is not None:
            p = ex.probs[i]
            if d.kind == "fulfillment" and len(p) == 2:
                parts.append((f"P(accept) {pct(p[1])}", ""))
            else:
                best = max(range(len(p)), key=p.__getitem__)
                parts.append((f"argmax {best} p {pct(p[best])} ", ""))
                parts.append((sparkline(p, max(8, min(40, width - 40))), "cyan"))
        w.agent(parts, [(f"  V(s) {num(ex.V[i], 3)}", "dim")], nw + 2)
    w.title("PPO clip, one sample of the last update")
    ratio, clipped, A, eps = ex.ratio, ex.clipped_ratio, ex.A_hat, ex.eps
    if ratio is None or clipped is None or A is None:
        w.line("no update yet: collecting the first rollout", style="dim")
    w.eq("r = π_i(a|o_i) / π_i,old(a|o_i)")
    w.eq(f"r = {num(ratio, 4)}", style="")
    w.eq("clip(r, 1−ε, 1+ε)")
    moved = ratio is not None and clipped is not None and abs(ratio - clipped) > 1e-9
    w.eq(f"clip({num(ratio, 4)}, {1 - eps:.2f}, {1 + eps:.2f}) = {num(clipped, 4)}"
         + ("   ← clipped" if moved else ""), style="")
    w.eq("Â = GAE advantage (normalised)")
    w.eq(f"Â = {num(A, 4, signed=True)}", style="")
    w.eq("L = −min(r·Â, clip(r)·Â)")
    if ratio is not None and clipped is not None and A is not None:
        w.eq(f"L = −min({num(ratio * A, 4)}, {num(clipped * A, 4)}) = {num(ex.L_clip, 4)}", style="")
    else:
        w.eq(f"L = {num(ex.L_clip, 4)}", style="")
    stats = (("clip fraction", ex.clip_fraction), ("approx KL", ex.approx_kl), ("entropy", ex.entropy),
             ("mean r", ex.ratio_mean), ("mean Â", ex.A_hat_mean))
    tail = [f"{label} {pct(v) if label == 'clip fraction' else num(v, 3)}"
            for label, v in stats if v is not None]
    w.items(tail, style="dim")


def explored(d: WhyData, ex: QMIXExplain) -> list[bool]:
    """Per agent: did this step's action differ from a*_i? Then ε-greedy explored (a random
    pick that happens to equal a*_i cannot be told apart, and is greedy in effect)."""
    if d.greedy:
        return [False] * len(ex.greedy_value)
    return [i < len(d.actions) and finite(d.actions[i]) and finite(gv) and abs(d.actions[i] - gv) > 1e-6
            for i, gv in enumerate(ex.greedy_value)]


def _qmix(w: _Writer, d: WhyData, ex: QMIXExplain, width: int) -> None:
    w.title("Utilities Q_i(o_i,·), greedy a* = argmax")
    names = _names(d, len(ex.Q_i), width)
    nw = max((len(x) for x in names), default=0)
    word = ACTION_WORD.get(d.kind, "action")
    took = explored(d, ex)
    for i, (name, qs, g, gv) in enumerate(zip(names, ex.Q_i, ex.greedy, ex.greedy_value, strict=True)):
        parts: list[tuple[str, str]] = [(f"{name:<{nw}}  ", "bold")]
        if d.kind == "fulfillment" and len(qs) == 2:
            parts.append((f"dec {num(qs[0], 2):>5} acc {num(qs[1], 2):>5} → ", ""))
            parts.append((_action(d, g), "bold"))
        else:
            parts.append((f"{word} {num(gv, 3)}  Q {num(qs[g], 3)}", ""))
        if took[i]:  # what it took instead, where that fits on the line; else the mark alone
            mark = f"  ✱ took {_action(d, d.actions[i])}"
            fits = 2 + sum(len(x) for x, _ in parts) + len(mark) <= width
            parts.append((mark if fits else " ✱", "bold magenta"))
        if d.kind == "fulfillment" and len(qs) == 2:
            w.parts(*parts)
        else:
            spark_w = max(0, min(len(qs), width - nw - 28))
            extra = [("  " + sparkline(qs, max(spark_w, 6)), "cyan")]
            w.agent(parts, extra if spark_w >= 6 else [], nw + 2)
    if any(took):
        w.line(f"✱ ε-greedy explored: {sum(took)} of {len(took)} not a*", style="magenta")
    w.title("Mixer Q_total = M([Q_1…Q_n], s)")
    w.eq("W = |hyper(s)| ≥ 0 ⇒ ∂Q_total/∂Q_i ≥ 0")
    w.line("⇒ greedy per agent = greedy for the team", style="dim")
    per_agent = [mean(row) for row in ex.mixer_w1]
    room = max(3, (width - 26) // 5)
    shown = " ".join(num(x, 2) for x in per_agent[:room]) + (" …" if len(per_agent) > room else "")
    w.line(f"|W1| per agent (mean): {shown}")
    w.line(f"|W2| mean {num(mean(ex.mixer_w2), 3)} · V(s) {num(ex.mixer_bias, 3)}")
    smallest = min([*flatten(ex.mixer_w1), *ex.mixer_w2])
    ok = smallest >= 0
    w.parts((f"all weights ≥ 0 {'✓' if ok else '✗'}", "bold green" if ok else "bold red"),
            (f" (smallest {num(smallest, 2)})", "dim"))
    w.parts(("Q_total(greedy joint action) = ", ""), (num(ex.Q_total, 4), "bold"))
    w.title("TD target (last batch, mean)")
    w.eq("y = r + γ·Q_total⁻(s′, argmax Q_i(o_i′,·))")
    w.eq("L = (Q_total − y)²")
    w.eq(f"y = {num(ex.y, 4)}   γ = {num(ex.gamma, 3)}", style="" if ex.y is not None else "dim")
    w.line(f"ε-greedy exploration: ε = {num(ex.epsilon, 3)}")


def _oracle(w: _Writer, ex: OracleExplain) -> None:
    w.title("Oracle: the scenario's exact answer")
    w.line(ex.summary or "plays the reference policy")
    w.line("It reads the true state, which no learner sees: it is the target line, "
           "not a competitor.", style="dim")


def _random(w: _Writer) -> None:
    w.title("Random baseline")
    w.line("Every agent draws a uniform action each step: nothing is learned, so there is")
    w.line("no equation to fill in. Its return is the floor any learner must beat.")


def why_text(d: WhyData, width: int) -> Text:
    w = _Writer(width)
    # First, so it is never scrolled away: which decision these numbers are for (the scenario
    # panel shows that same step).
    if d.step is not None:
        w.aside(f"the decision taken in {'greedy step' if d.greedy else 'step'} {d.step:,}")
    if d.algo in ("maddpg", "mappo", "qmix") and d.reward_scale != 1.0:
        w.aside(f"rewards × {d.reward_scale:g} (reward_scale)")
    if d.action_dims > 1:
        numbers = " | ".join(map(str, d.action_sizes)) if d.action_sizes else d.action_dims
        w.aside(f"actions are {numbers} numbers per agent: figures show the first one")
    match d.explain:
        case MADDPGExplain():
            _maddpg(w, d, d.explain, width)
        case MAPPOExplain():
            _mappo(w, d, d.explain, width)
        case QMIXExplain():
            _qmix(w, d, d.explain, width)
        case OracleExplain():
            _oracle(w, d.explain)
        case RandomExplain():
            _random(w)
        case None if not d.note:
            w.aside("no numbers yet")
    if d.note:
        w.aside(d.note)
    return w.t


class WhyPanel(Panel):
    TITLE = "why"
    HINT = "the guide's equations for this algorithm, filled with the numbers of the step on screen"

    data: WhyData | None = None

    def on_mount(self) -> None:
        self.message("the numbers behind each decision appear after the first step")

    def show(self, data: WhyData) -> None:
        self.data = data
        self.border_title = f"why · {ALGO_TITLES.get(data.algo, data.algo)}"
        self.draw(lambda width: why_text(data, width))
