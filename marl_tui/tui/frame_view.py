"""The panels of a run's screen and what they are given for one frame: shared by the live
dashboard and the replay screen, so a frame reads the same wherever it is shown."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Container

from marl_tui.config import Scenario
from marl_tui.stream.frames import ChartPoints, Frame, Ready
from marl_tui.train.stats import BoundedSeries
from marl_tui.tui.widgets.charts import LossChart, ReturnChart
from marl_tui.tui.widgets.scene import SceneData, ScenePanel
from marl_tui.tui.widgets.why import WhyData, WhyPanel


def run_body(scene: ScenePanel) -> ComposeResult:
    """The four panels of a run's screen (dashboard, replay), in the layout app.tcss gives #body."""
    with Container(id="body"):
        yield scene
        yield WhyPanel(id="why", classes="text-panel")
        yield ReturnChart(id="returns")
        yield LossChart(id="losses")


def scene_data(frame: Frame, ready: Ready, scenario: Scenario, algo: str, paused: bool = False,
               trail: tuple = ()) -> SceneData:
    """The scenario panel's data: the frame's step, its trail (or `trail`: steps before it from
    elsewhere, a greedy episode's), its explain, the figures at that step."""
    return SceneData(
        record=frame.scene, greedy=frame.greedy, kpis=dict(frame.stats.kpis), kpi_episodes=frame.stats.episodes,
        oracle_kpis=dict(ready.oracle.kpis), oracle_values=dict(ready.oracle.values), model=scenario.model,
        agent_names=tuple(ready.spec.agent_names), episode_length=ready.spec.episode_length,
        n_envs=ready.n_envs, discrete_actions=ready.spec.action_space.n, explain=frame.explain, algo=algo,
        action_sizes=ready.spec.action_space.per_agent,
        paused=paused,
        recent=(*(trail or frame.trail), frame.scene),
    )


def why_data(frame: Frame, ready: Ready, algo: str, kind: str) -> WhyData:
    """The why panel's data: the equations filled with this frame's decision."""
    spec = ready.spec
    return WhyData(
        explain=frame.explain, algo=algo, agent_names=tuple(spec.agent_names), kind=kind,
        discrete_levels=tuple(spec.action_levels), step=frame.scene.step, greedy=frame.greedy,
        note=f"explain() failed: {frame.explain_error}" if frame.explain_error else "",
        reward_scale=spec.reward_scale, actions=frame.scene.actions, action_dims=spec.action_space.dims,
        action_sizes=spec.action_space.per_agent,
    )


class ChartHistory:
    """The charts' data on the screen's side: every point the frames brought, bounded."""

    def __init__(self, agents: int) -> None:
        self.team = BoundedSeries()
        self.agents = [BoundedSeries() for _ in range(agents)]
        self.losses: dict[str, BoundedSeries] = {}

    def add(self, points: ChartPoints) -> None:
        for x, team, agents in points.episodes:
            self.team.append(x, team)
            for series, y in zip(self.agents, agents, strict=False):
                series.append(x, y)
        for name, pairs in points.losses.items():
            series = self.losses.setdefault(name, BoundedSeries())
            for x, y in pairs:
                series.append(x, y)
