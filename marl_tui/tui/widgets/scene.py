"""What every scenario panel is given, and the pieces they share (KPI table, step header)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.text import Text

from marl_tui.algos.base import Explain
from marl_tui.stream.frames import StepScene
from marl_tui.tui.fmt import humanise, kpi_value
from marl_tui.tui.widgets.panel import Panel


@dataclass
class SceneData:
    """Plain data for a scenario panel: one frame's step, its trail, and what never changes."""

    record: StepScene | None = None  # the frame's step (copy 0), or None before the first step
    greedy: bool = False  # the step was taken by the greedy view
    kpi_episodes: int = 0  # the greedy view's KPIs are means over this many episodes it played
    kpis: dict[str, float] = field(default_factory=dict)  # last finished episode
    oracle_kpis: dict[str, float] = field(default_factory=dict)
    oracle_values: dict[str, Any] = field(default_factory=dict)
    model: Any = None  # the scenario's [model] dataclass
    agent_names: tuple[str, ...] = ()
    episode_length: int = 0
    n_envs: int = 1
    discrete_actions: int = 0  # actions to choose from; 0: continuous
    # Agents whose actions differ in size: each one's own count or numbers (ActionSpace.per_agent);
    # empty when all share the space. Views show each agent's own, never the padding.
    action_sizes: tuple[int, ...] = ()
    explain: Explain | None = None  # explain() for the decision taken in this step
    algo: str = ""
    recent: tuple[StepScene, ...] = ()  # consecutive steps of the same view, oldest first, ending at `record`
    paused: bool = False  # the run is paused (before its first step: say how to take one)


def packed(parts: list[Text], width: int, sep: str = " · ", sep_style: str = "dim") -> Text:
    """parts joined by sep, with a line break instead where the next part would not fit: a
    line breaks between parts, never inside one."""
    t = Text()
    col = 0
    for k, part in enumerate(parts):
        if k and col + len(sep) + part.cell_len > width:
            t.append("\n")
            col = 0
        elif k:
            t.append(sep, style=sep_style)
            col += len(sep)
        t.append(part)
        col += part.cell_len
    return t


def kpi_lines(data: SceneData, width: int) -> Text:
    """'last episode (oracle)' for every KPI, packed into as few lines as fit."""
    oracle = "(oracle)" if data.oracle_kpis else "(no oracle for this environment)"
    head = (f"greedy KPIs, {data.kpi_episodes} episode{'s' * (data.kpi_episodes != 1)} watched {oracle}: "
            if data.greedy else f"KPIs, last episode {oracle}: ")
    if not data.kpis:
        return Text.assemble((head, "bold"), ("none yet — the first episode is still running", "dim"))
    items = [Text(f"{humanise(k)} {kpi_value(k, v)}"
                  + (f" ({kpi_value(k, data.oracle_kpis.get(k))})" if data.oracle_kpis else ""))
             for k, v in data.kpis.items()]
    items[0] = Text.assemble((head, "bold"), items[0])
    return packed(items, width)


def step_header(data: SceneData, what: str) -> Text:
    r = data.record
    t = Text()
    if r is None:
        return t
    t.append(f"{what} {r.t}/{data.episode_length}", style="bold")
    view = "greedy " if data.greedy else ""
    t.append(f" · {view}episode {r.episode + 1} · {view}step {r.step:,} · copy 1 of {data.n_envs}",
             style="dim")
    if data.greedy:
        t.append("  ")
        t.append(" greedy policy, not learning ", style="reverse")
    return t


class ScenePanel(Panel):
    """Base class: subclasses implement lines(data, width) -> renderable. A panel in a cell of
    its own height may fill the rows its content leaves empty: lines() then reads `spare_rows`
    (how many; 0 on the first pass and in a stacked layout)."""

    TITLE = "scenario"
    GROWS = False  # lines() uses spare_rows

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.data: SceneData | None = None
        self.spare_rows = 0

    def on_mount(self) -> None:
        self.message("waiting for the first step…")

    def show(self, data: SceneData) -> None:
        self.data = data
        if data.record is None:
            hint = "  (paused: n takes one step, space runs)" if data.paused else ""
            self.message(f"waiting for the first step…{hint}")
            return
        self.draw(lambda width: self.safe_lines(data, width))

    def safe_lines(self, data: SceneData, width: int) -> Any:
        try:
            self.spare_rows = 0
            content = self.lines(data, width)
            if self.GROWS and self.spare_room and isinstance(content, Text):
                spare = self.scrollable_content_region.height - len(content.wrap(self.app.console, width))
                if spare > 0:
                    self.spare_rows = spare
                    content = self.lines(data, width)
            return content
        except Exception as exc:  # noqa: BLE001 - a drawing bug must not take the app down
            return Text(f"cannot draw this step: {type(exc).__name__}: {exc}", style="red")

    def lines(self, data: SceneData, width: int) -> Any:
        raise NotImplementedError


def styled_cells(cells: list[str], styles: list[str]) -> Text:
    """One line of text from a character and a style per cell (the panels' bar gauges)."""
    t = Text()
    for ch, st in zip(cells, styles, strict=True):
        t.append(ch, style=st)
    return t


def trail(data: SceneData, span: int) -> list[StepScene]:
    """Up to `span` consecutive steps ending at the step on screen, oldest first."""
    return list(data.recent[-span:])
