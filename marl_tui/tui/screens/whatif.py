"""`w` on a paused run: what if agent i had acted differently? (the study guide, Part 8)

Pick an agent (up/down) and its alternative action a'_i (left/right; shift for big steps; on a
discrete choice each press moves to the next choice). Every change asks the run
(Controls.ask_what_if); the run replays the step on copies of its env with a_i replaced and the
others' actions held, and sends back what every agent would have earned, agent i's best
response, and what the algorithm's networks make of it (stream/frames.WhatIfAnswer). This
screen only shows that answer; it computes nothing itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from marl_tui.envs.base import EnvSpec
from marl_tui.stream.frames import Frame, WhatIfAnswer, WhatIfRefused
from marl_tui.tui.fmt import num

FINE_STEPS = 100  # a continuous range is crossed in this many presses (shift: a tenth of them)
COARSE_STEPS = 10
DECISIONS = ("decline", "accept")  # a two-action scenario's 0 and 1 (fulfillment)

# Shown where a replayed run is asked: its recording holds frames, not the env nor the networks.
NEEDS_LIVE_RUN = ("what-if needs a live, paused run: a recording keeps what was shown, not the "
                  "env's state or the networks to replay a step with another action. Start the "
                  "run with `marl-tui run SCENARIO --algo ALGO`, pause (space), then w")


@dataclass(frozen=True)
class ActionDial:
    """The alternatives offered for one agent's action, in the scenario's units: the levels a
    discrete-action algorithm picks from, a discrete set's indices, or a continuous range."""

    spec: EnvSpec

    @property
    def choices(self) -> tuple[float, ...] | None:
        space = self.spec.action_space
        if space.kind != "discrete":
            return None
        return self.spec.action_levels or tuple(float(k) for k in range(space.n))

    def move(self, value: float, presses: int) -> float:
        choices = self.choices
        if choices is not None:
            at = min(range(len(choices)), key=lambda k: abs(choices[k] - value))
            if not self.spec.action_levels:  # a set of decisions: the arrows go round it
                return choices[(at + presses) % len(choices)]
            return choices[max(0, min(len(choices) - 1, at + presses))]
        space = self.spec.action_space
        step = (space.high - space.low) / FINE_STEPS
        return max(space.low, min(space.high, value + presses * step))

    def label(self, value: float) -> str:
        space = self.spec.action_space
        if space.kind == "discrete" and not self.spec.action_levels and space.n == len(DECISIONS):
            return f"{DECISIONS[int(value)]} ({int(value)})"
        return num(value)

    def describe(self) -> str:
        choices = self.choices
        if choices is None:
            space = self.spec.action_space
            step = (space.high - space.low) / FINE_STEPS
            return f"range {space.low:g}..{space.high:g} · ←/→ ±{num(step)} · shift ±{num(COARSE_STEPS * step)}"
        if self.spec.action_levels:
            return f"{len(choices)} levels (the algorithm acts on these) · ←/→ the next level"
        return f"{len(choices)} choices · ←/→ the next"


class WhatIfScreen(ModalScreen[None]):
    """One paused step, one agent, one alternative action, and the run's answer."""

    BINDINGS = [
        Binding("up", "agent(-1)", "agent", key_display="↑/↓", tooltip="the agent whose action changes"),
        Binding("down", "agent(1)", "agent", show=False),
        Binding("left", "move(-1)", "action", key_display="←/→", tooltip="its alternative action"),
        Binding("right", "move(1)", "action", show=False),
        Binding("shift+left", "move(-10)", "coarse", show=False),
        Binding("shift+right", "move(10)", "coarse", show=False),
        Binding("m", "mark", "marks", tooltip="the scenario's reference actions in turn (Nash, collusive)"),
        Binding("b", "best", "best", tooltip="try the best response the run found"),
        Binding("a", "as_taken", "taken", tooltip="back to the action taken"),
        Binding("n", "step", "next", tooltip="let the run take one step; ask again there"),
        Binding("g", "glossary", "glossary", tooltip="what D_i, the best response and COMA's A_i mean"),
        Binding("escape,w", "close", "close"),
    ]
    DEFAULT_CSS = """
    WhatIfScreen { align: center middle; }
    WhatIfScreen #whatif-box { width: 100%; height: 1fr; border: round $accent; padding: 0 1; }
    """

    def __init__(self, frame: Frame, spec: EnvSpec, ask: Callable[[bool, int, int, float], int],
                 step: Callable[[], None] | None = None, agent: int = 0,
                 marks: Callable[[int], dict[str, float]] | None = None) -> None:
        """ask(greedy, step, agent, action) sends a question and returns its id; step() lets the
        run take one step; marks(agent) names reference actions (the oracle's Nash price, ...)."""
        super().__init__()
        self.frame, self.spec, self._ask, self._step = frame, spec, ask, step
        self._marks = marks or (lambda agent: {})
        self.dial = ActionDial(spec)
        self.agent = agent
        self.action = frame.scene.actions[agent]
        self.asked: int | None = None  # the id of the question whose answer is awaited
        self.answer: WhatIfAnswer | WhatIfRefused | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="whatif-box", can_focus=False) as box:  # the arrows are the dial's
            box.border_title = "what if? (the study guide, Part 8: credit assignment)"
            box.border_subtitle = "esc to close"
            yield Static(id="whatif-body")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self._ask_now()

    # ------------------------------------------------------------------ keys
    def action_agent(self, delta: int) -> None:
        self.agent = (self.agent + delta) % self.spec.n_agents
        self.action = self.frame.scene.actions[self.agent]
        self._ask_now()

    def action_move(self, presses: int) -> None:
        if self.dial.choices is not None:
            presses = 1 if presses > 0 else -1  # a discrete set moves one choice at a time
        self.action = self.dial.move(self.action, presses)
        self._ask_now()

    def action_mark(self) -> None:
        """The next of the agent's reference actions, in the order the scenario names them."""
        # On a set of levels each mark is the level nearest it (QMIX prices on a grid).
        marks = [self.dial.move(v, 0) for v in self._marks(self.agent).values()]
        if not marks:
            self.notify("this scenario names no reference action to jump to", timeout=2)
            return
        later = [k for k, v in enumerate(marks) if abs(v - self.action) < 1e-9]
        self.action = marks[(later[0] + 1) % len(marks)] if later else marks[0]
        self._ask_now()

    def action_best(self) -> None:
        answer = self.answer
        if isinstance(answer, WhatIfAnswer) and answer.id == self.asked:  # this agent's, this step's
            self.action = answer.best_action
            self._ask_now()

    def action_as_taken(self) -> None:
        self.action = self.frame.scene.actions[self.agent]
        self._ask_now()

    def action_step(self) -> None:
        if self._step is not None:
            self._step()  # the dashboard follows the new frame into follow()

    def action_glossary(self) -> None:
        from marl_tui.tui.screens.glossary import GlossaryScreen

        self.app.push_screen(GlossaryScreen(panel="whatif"))

    def action_close(self) -> None:
        self.dismiss(None)

    # ------------------------------------------------------------------ the run's side
    def follow(self, frame: Frame) -> None:
        """The run stands on a new step: ask the same question about it."""
        if frame.scene.step == self.frame.scene.step and frame.greedy == self.frame.greedy:
            return
        self.frame = frame
        self._ask_now()

    def show_answer(self, answer: WhatIfAnswer | WhatIfRefused | None) -> None:
        if answer is None or answer.id != self.asked:
            return  # an older question's answer: a newer one is on its way
        self.answer = answer
        self._redraw()

    def _ask_now(self) -> None:
        self.asked = self._ask(self.frame.greedy, self.frame.scene.step, self.agent, self.action)
        self._redraw()

    # ------------------------------------------------------------------ what it shows
    def _redraw(self) -> None:
        self.query_one("#whatif-body", Static).update(whatif_text(
            self.frame, self.spec, self.dial, self.agent, self.action, self._marks(self.agent),
            self.answer if self.answer is not None and self.answer.id == self.asked else None))


def whatif_text(frame: Frame, spec: EnvSpec, dial: ActionDial, agent: int, action: float,
                marks: dict[str, float], answer: WhatIfAnswer | WhatIfRefused | None) -> Text:
    """The question, and the answer once it came (None: still asked)."""
    names = spec.agent_names
    s = frame.scene
    t = Text()
    view = "the greedy view" if frame.greedy else "training"
    t.append(f"What if {names[agent]} had acted differently in step {s.step}", style="bold")
    t.append(f" ({view}, t = {s.t}/{spec.episode_length}, copy 1)? Everyone else's action is held.\n")
    t.append(f"{names[agent]}: ", style="bold")
    t.append(f"a'_{agent + 1} = ")
    t.append(dial.label(action), style="bold reverse")
    t.append(f"   taken a_{agent + 1} = {dial.label(s.actions[agent])}   ")
    named = "".join(f" · {name} {num(v)}" for name, v in marks.items())
    t.append(f"{dial.describe()}{named} (m) · ↑/↓ the agent\n" if marks else f"{dial.describe()} · ↑/↓ the agent\n",
             style="dim")
    if answer is None:
        t.append("\nasking the run…", style="dim")
        return t
    if isinstance(answer, WhatIfRefused):
        t.append("\n" + answer.reason, style="bold yellow")
        return t
    t.append_text(_rewards(answer, spec, dial))
    t.append_text(_values(answer, spec))
    return t


def _rewards(a: WhatIfAnswer, spec: EnvSpec, dial: ActionDial) -> Text:
    """Every agent's reward as it happened and with a_i replaced, the difference reward, and
    agent i's best response (the env's own numbers, replayed on a copy)."""
    names, i = spec.agent_names, a.agent
    nw = max(len(n) for n in names)
    t = Text("\nr_j, the env's reward (raw units), as taken → with a'_i:\n", style="bold")
    if spec.cooperative:  # every agent is paid the same share: one line says it
        t.append(f"  each of the {len(names)} agents is paid the team's Σ ÷ {len(names)}: "
                 f"{num(a.reward[0])} → {num(a.replaced[0])}\n")
    for j, name in enumerate(() if spec.cooperative else names):
        delta = a.replaced[j] - a.reward[j]
        style = "bold" if j == i else ""
        t.append(f"  {name:<{nw}}  {num(a.reward[j]):>9} → {num(a.replaced[j]):>9}  ", style=style)
        t.append(f"Δ {num(delta, signed=True):>9}\n", style="green" if delta > 0 else "red" if delta < 0 else "dim")
    team, team_cf = sum(a.reward), sum(a.replaced)
    t.append(f"  {'team Σ':<{nw}}  {num(team):>9} → {num(team_cf):>9}  Δ {num(team_cf - team, signed=True):>9}\n",
             style="bold")
    if a.replaced == a.reward and a.action != a.actions[i]:
        t.append("  no reward changed: in this state the env ends up treating both actions alike "
                 "(a cap or a clip: the warehouse's storage cap, a price bound)\n", style="dim")
    t.append(f"difference reward D_{i + 1} = G(a) − G(a_-{i + 1}, a'_{i + 1}) = {num(team - team_cf, signed=True)}",
             style="bold")
    t.append(f"  (what {names[i]}'s action as taken added to the team's G = Σ r_j, against a')\n", style="dim")
    goal = "the team's Σ r_j" if a.best_for == "team" else f"its own r_{i + 1}"
    best = a.best_reward[i] if a.best_for == "own" else sum(a.best_reward)
    searched = "every action" if spec.action_space.kind == "discrete" else f"{a.candidates} evenly spaced actions"
    t.append(f"best response of {names[i]} to the others' actions (max {goal}, over {searched}): ", style="bold")
    t.append(f"a = {dial.label(a.best_action)} → {num(best)}  (b tries it)\n")
    return t


def _values(a: WhatIfAnswer, spec: EnvSpec) -> Text:
    """What the algorithm's networks make of it (learner units: reward × reward_scale)."""
    from marl_tui.algos.maddpg import MADDPGWhatIf
    from marl_tui.algos.mappo import MAPPOWhatIf
    from marl_tui.algos.qmix import QMIXWhatIf

    v, i, names = a.values, a.agent, spec.agent_names
    t = Text()
    scale = f" (learner units: reward × {a.reward_scale:g})"
    if v is None:
        t.append("\nthis baseline has no networks to ask: only the env's answer above", style="dim")
        return t
    k = i + 1
    if isinstance(v, MADDPGWhatIf):
        t.append(f"\nMADDPG: each critic Q_j(s, a_1..a_n), as taken → with a'_{k}; at μ(o){scale}\n", style="bold")
        nw = max(len(n) for n in names)
        for j, name in enumerate(names):
            t.append(f"  Q_{j + 1} {name:<{nw}}  {num(v.Q_taken[j]):>9} → {num(v.Q_replaced[j]):>9}  "
                     f"Δ {num(v.Q_replaced[j] - v.Q_taken[j], signed=True):>9}   μ: {num(v.Q_greedy[j])}\n",
                     style="bold" if j == i else "")
        if v.A_taken is not None:
            t.append(f"COMA A_{k} = Q_{k}(s,a) − Σ_a' π_{k}(a'|o_{k}) Q_{k}(s,(a_-{k},a')): "
                     f"as taken {num(v.A_taken, signed=True)} · with a'_{k} {num(v.A_replaced, signed=True)}\n")
    elif isinstance(v, MAPPOWhatIf):
        t.append(f"\nMAPPO: π_{k}(a|o_{k}) and V(s){scale}\n", style="bold")
        t.append(f"  log π_{k}(a_{k}|o_{k}) {num(v.log_pi_taken)} → log π_{k}(a'_{k}|o_{k}) {num(v.log_pi_replaced)}"
                 f"   ratio π(a')/π(a) = {num(v.ratio)}\n")
        t.append(f"  V(s) = {num(v.V)} · one-step Â = r + γV(s') − V(s), γ = {v.gamma:g}: as taken "
                 f"{num(v.A_taken, signed=True)} (V(s') {num(v.V_next_taken)}) → with a'_{k} "
                 f"{num(v.A_replaced, signed=True)} (V(s') {num(v.V_next_replaced)})\n")
        t.append("  Â > 0 makes PPO raise π of that action, < 0 lower it (GAE sums these over the rollout)\n",
                 style="dim")
    elif isinstance(v, QMIXWhatIf):
        t.append(f"\nQMIX: Q_{k}(o_{k}, a) and Q_total through the mixer{scale}\n", style="bold")
        t.append(f"  Q_{k}(o_{k}, a_{k}) {num(v.Q_i_taken)} → Q_{k}(o_{k}, a'_{k}) {num(v.Q_i_replaced)}\n")
        t.append(f"  Q_total {num(v.Q_total_taken)} → {num(v.Q_total_replaced)} "
                 f"(Δ {num(v.Q_total_replaced - v.Q_total_taken, signed=True)}) · greedy joint "
                 f"{num(v.Q_total_greedy)} · ∂Q_total/∂Q_{k} = {num(v.dQtot_dQi)} ≥ 0 (monotonic)\n")
        t.append(f"  COMA A_{k} = Q_tot(s,a) − Σ_a' π_{k}(a'|o_{k}) Q_tot(s,(a_-{k},a')): as taken "
                 f"{num(v.A_taken, signed=True)} · with a'_{k} {num(v.A_replaced, signed=True)}\n")
    return t
