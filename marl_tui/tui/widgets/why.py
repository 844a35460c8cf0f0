"""The "why" panel: the study guide's equations for the running algorithm, with live numbers.

It reads the plain dict an algorithm's explain() returns. Keys may be missing (before the
first update, or while a colleague changes an algorithm): every part is drawn only from
what is there, and anything unknown is listed at the end rather than dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text

from marl_tui.tui.fmt import as_list, finite, flatten, mean, num, pct, scalar, sparkline
from marl_tui.tui.widgets.panel import Panel


@dataclass
class WhyData:
    explain: dict[str, Any] | None
    algo: str
    agent_names: tuple[str, ...] = ()
    kind: str = ""
    discrete_levels: tuple[float, ...] = ()  # values of discrete actions (QMIX on prices)
    after_step: int | None = None  # explain() describes the observation after this step
    greedy: bool = False  # ... of the greedy view
    note: str = ""
    reward_scale: float = 1.0  # learners see reward × this (the scenario's reward_scale)


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


def _action(d: WhyData, a: Any) -> str:
    if d.kind == "fulfillment" and finite(a):
        return "accept" if round(a) == 1 else "decline"
    return num(a)


class _Writer:
    """Collects lines; remembers which explain() keys were shown."""

    def __init__(self, ex: dict[str, Any], width: int = 80) -> None:
        self.ex = ex
        self.width = width
        self.used: set[str] = {"algo"}
        self.t = Text()

    def get(self, key: str) -> Any:
        if key in self.ex:
            self.used.add(key)
        return self.ex.get(key)

    def has(self, key: str) -> bool:
        return key in self.ex and self.ex[key] not in (None, [], ())

    def title(self, s: str) -> None:
        if self.t.plain:
            self.t.append("\n")
        self.t.append(s, style="bold underline")

    def eq(self, s: str) -> None:
        self.t.append("\n  " + s, style="italic cyan")

    def line(self, s: str = "", style: str = "") -> None:
        self.t.append("\n  " + s, style=style)

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

    def rest(self) -> None:
        extra = [(k, v) for k, v in self.ex.items() if k not in self.used]
        shown = []
        for k, v in extra:
            if finite(v):
                shown.append(f"{k} {num(v, 3)}")
            elif isinstance(v, (list, tuple)) and v:
                m = mean(v)
                shown.append(f"{k} ⟨{num(m, 3)}⟩" if m is not None else k)
            elif isinstance(v, str) and len(v) < 60:
                shown.append(f"{k}: {v}")
        if shown:
            self.title("other numbers")
            self.line(" · ".join(shown), style="dim")


def _maddpg(w: _Writer, d: WhyData, width: int) -> None:
    gamma = w.get("gamma")
    w.title("Critic target (last batch, mean)")
    w.eq(f"y_i = r_i + γ·Q_i⁻(s′, μ⁻(o′))   γ = {num(gamma, 3)}")
    y, r, qn = as_list(w.get("y_i")), as_list(w.get("r_i")), as_list(w.get("Q_next"))
    n = max(len(y), len(r), len(qn))
    names = _names(d, n, width)
    nw = max((len(x) for x in names), default=0)
    if n == 0:
        w.line("no update yet: the replay buffer is still filling", style="dim")
    else:  # the equation filled in for the first agent, then every agent's numbers
        w.parts((f"{names[0]}: ", "bold"),
                (f"{num(y[0] if y else None, 3)} = {num(r[0] if r else None, 3)} + "
                 f"{num(gamma, 3)} × {num(qn[0] if qn else None, 3)}", "italic"))
        w.line(f"{'':<{nw}}  {'y_i':>8} {'r_i':>8} {'Q_i⁻':>8}", style="dim")
    for i in range(n):
        cells = [num(col[i] if i < len(col) else None, 3) for col in (y, r, qn)]
        w.parts((f"{names[i]:<{nw}}  ", "bold"), (f"{cells[0]:>8} ", "bold"),
                (f"{cells[1]:>8} {cells[2]:>8}", ""))
    w.title("Actor follows the critic's slope")
    w.eq("∇θJ_i = E[∇θ μ_i(o_i)·∇a_i Q_i(s,a)|a=μ(o)]")
    acts, q, g = as_list(w.get("actions")), as_list(w.get("Q_i")), as_list(w.get("dQ_da"))
    n = max(len(acts), len(q), len(g))
    names = _names(d, n, width)
    nw = max((len(x) for x in names), default=0)
    word = ACTION_WORD.get(d.kind, "action")
    discrete = any(isinstance(x, (list, tuple)) for x in g)
    slope_head = "∂Q/∂a₁−₀" if discrete else "∂Q_i/∂a_i"
    if n:
        w.line(f"{'':<{nw}}  {'μ_i(o_i)':>8} {'Q_i':>6} {slope_head:>9}  push", style="dim")
    for i in range(n):
        a = acts[i] if i < len(acts) else None
        qi = q[i] if i < len(q) else None
        gi = g[i] if i < len(g) else None
        slope, push = None, ""
        if isinstance(gi, (list, tuple)):  # discrete: slope over the one-hot action
            vals = [float(x) for x in flatten(gi)]
            if len(vals) == 2:
                slope = vals[1] - vals[0]
                push = ("accept" if slope > 0 else "decline") if d.kind == "fulfillment" \
                    else f"action {int(slope > 0)}"
            elif vals:
                best = max(range(len(vals)), key=vals.__getitem__)
                slope, push = vals[best], f"action {best}"
        elif finite(gi):
            verb = {"pricing": ("raise", "lower"), "warehouse": ("more", "less")}.get(
                d.kind, ("up", "down"))
            slope, push = gi, verb[0] if gi > 0 else verb[1]
        w.parts((f"{names[i]:<{nw}}  ", "bold"), (f"{_action(d, a):>8} ", ""),
                (f"{num(qi, 3):>6} ", "dim"), (f"{num(slope, 2, signed=True):>9}  ", ""),
                (push, "bold"))
    if n:
        w.line(f"μ_i(o_i): the actor's {word} now; push: where the critic moves it", style="dim")


def _mappo(w: _Writer, d: WhyData, width: int) -> None:
    w.title("Policy π_i(a|o_i) and centralised V(s)")
    mean_, std, probs, V = (as_list(w.get("mean")), as_list(w.get("std")), as_list(w.get("probs")),
                            as_list(w.get("V")))
    n = max(len(mean_), len(probs), len(V))
    names = _names(d, n, width)
    nw = max((len(x) for x in names), default=0)
    word = ACTION_WORD.get(d.kind, "action")
    for i in range(n):
        parts: list[tuple[str, str]] = [(f"{names[i]:<{nw}}  ", "bold")]
        if i < len(mean_):
            sd = std[i] if i < len(std) else None
            parts.append((f"{word} ~ N({num(mean_[i], 3)}, σ {num(sd, 3)})", ""))
        elif i < len(probs) and isinstance(probs[i], (list, tuple)) and probs[i]:
            p = [float(x) for x in flatten(probs[i])]
            if d.kind == "fulfillment" and len(p) == 2:
                parts.append((f"P(accept) {pct(p[1])}", ""))
            else:
                best = max(range(len(p)), key=p.__getitem__)
                parts.append((f"argmax {best} p {pct(p[best])} ", ""))
                parts.append((sparkline(p, max(8, min(40, width - 40))), "cyan"))
        extra = [(f"  V(s) {num(V[i], 3)}", "dim")] if i < len(V) else []
        w.agent(parts, extra, nw + 2)
    w.title("PPO clip, one sample of the last update")
    eps = scalar(w.get("eps"))
    ratio, clipped, A = scalar(w.get("ratio")), scalar(w.get("clipped_ratio")), scalar(w.get("A_hat"))
    L = scalar(w.get("L_clip"))
    if ratio is None and A is None:
        w.line("no update yet: collecting the first rollout", style="dim")
    lo = f"{1 - eps:.2f}" if eps is not None else "1−ε"
    hi = f"{1 + eps:.2f}" if eps is not None else "1+ε"
    w.eq("r = π_i(a|o_i) / π_i,old(a|o_i)")
    w.line(f"r = {num(ratio, 4)}")
    w.eq("clip(r, 1−ε, 1+ε)")
    w.line(f"clip({num(ratio, 4)}, {lo}, {hi}) = {num(clipped, 4)}"
           + ("   ← clipped" if finite(ratio) and finite(clipped) and abs(ratio - clipped) > 1e-9 else ""))
    w.eq("Â = GAE advantage (normalised)")
    w.line(f"Â = {num(A, 4, signed=True)}")
    w.eq("L = −min(r·Â, clip(r)·Â)")
    if ratio is not None and A is not None and clipped is not None:
        w.line(f"L = −min({num(ratio * A, 4)}, {num(clipped * A, 4)}) = {num(L, 4)}")
    else:
        w.line(f"L = {num(L, 4)}")
    tail = []
    for key, label in (("clip_fraction", "clip fraction"), ("approx_kl", "approx KL"),
                       ("entropy", "entropy"), ("ratio_mean", "mean r"), ("A_hat_mean", "mean Â")):
        v = scalar(w.get(key))
        if v is not None:
            tail.append(f"{label} {pct(v) if key == 'clip_fraction' else num(v, 3)}")
    if tail:
        w.line(" · ".join(tail), style="dim")


def _qmix(w: _Writer, d: WhyData, width: int) -> None:
    w.title("Utilities Q_i(o_i,·), greedy a* = argmax")
    Q, greedy, gval = as_list(w.get("Q_i")), as_list(w.get("greedy")), as_list(w.get("greedy_value"))
    n = max(len(Q), len(greedy))
    names = _names(d, n, width)
    nw = max((len(x) for x in names), default=0)
    word = ACTION_WORD.get(d.kind, "action")
    for i in range(n):
        qs = [float(x) for x in flatten(Q[i])] if i < len(Q) else []
        g = greedy[i] if i < len(greedy) else (max(range(len(qs)), key=qs.__getitem__) if qs else None)
        gv = gval[i] if i < len(gval) else g
        qbest = qs[int(g)] if qs and finite(g) and 0 <= int(g) < len(qs) else (max(qs) if qs else None)
        parts: list[tuple[str, str]] = [(f"{names[i]:<{nw}}  ", "bold")]
        if d.kind == "fulfillment" and len(qs) == 2:
            parts.append((f"dec {num(qs[0], 2):>5} acc {num(qs[1], 2):>5} → ", ""))
            parts.append((_action(d, g), "bold"))
            w.parts(*parts)
        else:
            parts.append((f"{word} {num(gv, 3)}  Q {num(qbest, 3)}", ""))
            spark_w = max(0, min(len(qs), width - nw - 28))
            extra = [("  " + sparkline(qs, max(spark_w, 6)), "cyan")] if qs else []
            w.agent(parts, extra if spark_w >= 6 else [], nw + 2)
    w.title("Mixer Q_total = M([Q_1…Q_n], s)")
    w.eq("W = |hyper(s)| ≥ 0 ⇒ ∂Q_total/∂Q_i ≥ 0")
    w.line("⇒ greedy per agent = greedy for the team", style="dim")
    w1, w2 = w.get("mixer_w1"), w.get("mixer_w2")
    flat = list(flatten(w1)) + list(flatten(w2))
    if w1 is not None:
        per_agent = [mean(row) for row in as_list(w1)]
        room = max(3, (width - 26) // 5)
        shown = " ".join(num(x, 2) for x in per_agent[:room]) + (" …" if len(per_agent) > room else "")
        w.line(f"|W1| per agent (mean): {shown}")
    if w2 is not None or w.has("mixer_bias"):
        w.line(f"|W2| mean {num(mean(w2), 3)} · V(s) {num(scalar(w.get('mixer_bias')), 3)}")
    if flat:
        ok = min(flat) >= 0
        w.parts((f"all weights ≥ 0 {'✓' if ok else '✗'}", "bold green" if ok else "bold red"),
                (f" (smallest {num(min(flat), 2)})", "dim"))
    w.parts(("Q_total(greedy joint action) = ", ""), (num(scalar(w.get("Q_total")), 4), "bold"))
    w.title("TD target (last batch, mean)")
    w.eq("y = r + γ·Q_total⁻(s′, argmax Q_i(o_i′,·))")
    w.eq("L = (Q_total − y)²")
    y = scalar(w.get("y"))
    w.line(f"y = {num(y, 4)}   γ = {num(w.get('gamma'), 3)}" if y is not None or w.has("gamma")
           else "no update yet", style="" if y is not None else "dim")
    eps = w.get("epsilon")
    if eps is not None:
        w.line(f"ε-greedy exploration: ε = {num(eps, 3)}")


def _baseline(w: _Writer, d: WhyData, width: int) -> None:
    if d.algo == "oracle":
        w.title("Oracle: the scenario's exact answer")
        w.line(str(w.get("summary") or "plays the reference policy"))
        w.line("It reads the true state, which no learner sees: it is the target line, "
               "not a competitor.", style="dim")
    else:
        w.title("Random baseline")
        w.line("Every agent draws a uniform action each step: nothing is learned, so there is")
        w.line("no equation to fill in. Its return is the floor any learner must beat.")


RENDERERS = {"maddpg": _maddpg, "mappo": _mappo, "qmix": _qmix, "random": _baseline,
             "oracle": _baseline}


def why_text(d: WhyData, width: int) -> Text:
    ex = d.explain or {}
    algo = str(ex.get("algo") or d.algo)
    w = _Writer(ex, width)
    # First, so it is never scrolled away: these numbers are for the next decision, while the
    # scenario panel shows the step just taken.
    if d.after_step is not None:
        view = "greedy step" if d.greedy else "step"
        w.t.append(f"the next decision, after {view} {d.after_step:,}", style="dim")
    if algo in ("maddpg", "mappo", "qmix") and d.reward_scale != 1.0:
        newline = "\n" if w.t.plain else ""
        w.t.append(f"{newline}rewards × {d.reward_scale:g} (reward_scale)", style="dim")
    try:
        RENDERERS.get(algo, lambda *_: None)(w, d, width)
        w.rest()
    except Exception as exc:  # noqa: BLE001 - unexpected shapes: show them raw
        w = _Writer(ex)
        w.title(f"explain() (shown raw: {type(exc).__name__})")
        for k, v in ex.items():
            w.line(f"{k}: {str(v)[: max(20, width - len(k) - 6)]}")
    if d.note:
        w.t.append(f"\n{d.note}", style="dim")
    return w.t


class WhyPanel(Panel):
    TITLE = "why"
    HINT = "the guide's equations for this algorithm with the latest numbers (refreshed ≤ 2×/s)"

    def on_mount(self) -> None:
        self.message("the numbers behind the next decision appear after the first step")

    def show(self, data: WhyData) -> None:
        title = {"maddpg": "MADDPG", "mappo": "MAPPO", "qmix": "QMIX"}.get(data.algo, data.algo)
        self.border_title = f"why · {title}"
        self.draw(lambda width: why_text(data, width))
