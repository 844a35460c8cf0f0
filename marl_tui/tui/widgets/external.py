"""The scene of an environment marl-tui has no panel of its own for (PettingZoo, VMAS): episode
progress, then one row per agent (this step's reward, its sum over the episode so far, the
action, what it observed), then the actions over the recent steps and the KPIs. Actions of d > 1
numbers (MPE's or VMAS's continuous forces) show as their norm ‖a‖ per step, and this step's
numbers below the table. Agents whose actions differ in size (a speaker with 3 words beside a
listener with 5 moves) are shown with their own: agent i's n_i choices in its histogram, its first
d_i numbers (the padding its env never receives is left out of the numbers and the norm).

Observations come from the step's info["obs"] (the external adapters put every agent's there,
flattened); each agent's is drawn as one bar per number, scaled to that agent's own range."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from marl_tui.stream.frames import StepScene
from marl_tui.tui.widgets.scene import SceneData, ScenePanel, kpi_lines, step_header

BARS = " ▁▂▃▄▅▆▇█"


def progress_bar(t: int, horizon: int, width: int) -> Text:
    """'episode ████░░░░ 13/25'."""
    label = f" {t}/{horizon}"
    cells = max(4, width - len("episode ") - len(label))
    done = round(cells * t / max(horizon, 1))
    out = Text("episode ", style="bold")
    out.append("█" * done, style="green")
    out.append("░" * (cells - done), style="dim")
    out.append(label)
    return out


def sparkline(values: tuple[float, ...] | list[float], width: int) -> str:
    """One bar per value, scaled from the smallest to the largest (cut to `width`)."""
    shown = list(values)[:width]
    if not shown:
        return ""
    low, high = min(shown), max(shown)
    span = high - low
    return "".join(BARS[0 if span == 0 else round((v - low) / span * (len(BARS) - 1))] for v in shown)


def action_counts(steps: list[StepScene], agent: int, n: int) -> list[int]:
    """How often each of the n discrete actions was taken by `agent` over `steps`."""
    counts = [0] * n
    for s in steps:
        a = int(s.actions[agent])
        if 0 <= a < n:
            counts[a] += 1
    return counts


def histogram(counts: list[int]) -> str:
    """'0▁ 1▃ 2█': each action index with a bar for its share."""
    top = max(counts) or 1
    return " ".join(f"{i}{BARS[round(c / top * (len(BARS) - 1))] if c else '·'}" for i, c in enumerate(counts))


def norm(v: tuple[float, ...]) -> float:
    """The Euclidean norm ‖a‖ of one agent's vector action."""
    return sum(x * x for x in v) ** 0.5


def vector_row(v: tuple[float, ...], width: int) -> str:
    """'+0.12 -0.50 +0.33 …': an action's numbers, as many as fit `width`."""
    cells = [f"{x:+.2f}" for x in v]
    fit = max(1, (width + 1) // 6)
    return " ".join(cells[:fit]) + (" …" if len(cells) > fit else "")


def own_size(data: SceneData, agent: int, padded: int) -> int:
    """How many of the `padded` choices or numbers are `agent`'s own."""
    return data.action_sizes[agent] if data.action_sizes else padded


def own_vector(data: SceneData, step: StepScene, agent: int) -> tuple[float, ...]:
    """`agent`'s action numbers in `step`, without padding."""
    v = step.action_vectors[agent]
    return v[: own_size(data, agent, len(v))]


def this_episode(data: SceneData) -> list[StepScene]:
    """The steps on hand of the episode on screen (the trail may not reach its start)."""
    r = data.record
    assert r is not None
    return [s for s in data.recent if s.episode == r.episode and s.t <= r.t]


class ExternalPanel(ScenePanel):
    """Any environment marl-tui did not write: numbers it can show without knowing the domain."""

    TITLE = "environment"

    def lines(self, data: SceneData, width: int) -> Any:
        r = data.record
        assert r is not None
        t = step_header(data, "t")
        t.append("\n")
        t.append(progress_bar(r.t, data.episode_length, width))
        names = data.agent_names or tuple(f"agent {i}" for i in range(len(r.reward)))
        episode = this_episode(data)
        since = episode[0].t if episode else r.t
        name_w = min(12, max(len(n) for n in names))
        discrete = data.discrete_actions > 0
        vectors = bool(r.action_vectors)
        obs = r.info.get("obs")
        per_agent = len(obs) // len(names) if isinstance(obs, tuple) and names else 0
        head = (f"\n{'agent':<{name_w}} {'reward':>8} {'Σ t≥' + str(since):>9} "
                f"{'‖a‖' if vectors else 'action':>7}  observation")
        t.append(head, style="bold")
        spark_w = max(4, width - name_w - 29)
        for i, name in enumerate(names):
            total = sum(s.reward[i] for s in episode)
            action = (f"{int(r.actions[i])}" if discrete else
                      f"{norm(own_vector(data, r, i)):.3g}" if vectors else f"{r.actions[i]:.3g}")
            t.append(f"\n{name[:name_w]:<{name_w}} {r.reward[i]:>8.3g} {total:>9.4g} {action:>7}  ")
            if per_agent:
                values = obs[i * per_agent:(i + 1) * per_agent]  # type: ignore[index]
                t.append(sparkline(values, spark_w), style="cyan")
        team = sum(r.reward)
        t.append(f"\n{'team':<{name_w}} {team:>8.3g} {sum(sum(s.reward) for s in episode):>9.4g}", style="bold")
        if per_agent:
            t.append(f"\nobservations: {per_agent} numbers per agent, each row scaled to its own range",
                     style="dim")
        span = data.recent[-min(len(data.recent), 50):]
        if vectors:
            sizes = data.action_sizes or (len(r.action_vectors[0]),)
            t.append(f"\nactions: {' | '.join(map(str, sizes))} numbers per agent, this step's:", style="bold")
            for i, name in enumerate(names):
                t.append(f"\n{name[:name_w]:<{name_w}} {vector_row(own_vector(data, r, i), width - name_w - 1)}")
        if discrete:
            t.append(f"\nactions over the last {len(span)} steps:", style="bold")
            for i, name in enumerate(names):
                counts = action_counts(list(span), i, own_size(data, i, data.discrete_actions))
                t.append(f"\n{name[:name_w]:<{name_w}} {histogram(counts)}")
        else:
            what = "action norms ‖a‖" if vectors else "actions"
            t.append(f"\n{what} over the last {len(span)} steps (oldest first):", style="bold")
            for i, name in enumerate(names):
                t.append(f"\n{name[:name_w]:<{name_w}} ")
                trace = [norm(own_vector(data, s, i)) if vectors and s.action_vectors else s.actions[i] for s in span]
                t.append(sparkline(trace, width - name_w - 1), style="magenta")
        t.append("\n")
        t.append(kpi_lines(data, width))
        return t
