"""Frames from a run's steps: built only when one is wanted, from tensors the loop kept by
reference, copy 0 of every step at once (one host transfer for the scene and its trail)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from marl_tui.stream.frames import ChartPoints, Frame, FrameStats, OracleView, Progress, Ready, StepScene
from marl_tui.train.evaluation import acting_on
from marl_tui.train.loop import EpisodeEnd, Loop, StepOutcome
from marl_tui.train.run import Run
from marl_tui.train.stats import RunningMeans


def scenes(outcomes: Sequence[StepOutcome], env_steps: int | None = None) -> list[StepScene]:
    """Copy 0 of each step as plain numbers. env_steps stamps steps of a loop that does not
    count them (the greedy view) with the training run's count."""
    last = outcomes[-1]
    keys = list(last.info)
    columns = [[o.native_actions[0] for o in outcomes], [o.reward[0] for o in outcomes],
               *[[o.info[k][0] for o in outcomes] for k in keys]]
    parts = [torch.stack(col).reshape(len(outcomes), -1).to(torch.float64) for col in columns]
    rows = torch.cat(parts, dim=1).tolist()
    widths = [p.shape[1] for p in parts]
    scalar = [last.info[k][0].dim() == 0 for k in keys]
    # Vector actions ([N, d] per copy): the scene keeps every agent's vector and its first number.
    dims = last.native_actions.shape[-1] if last.native_actions[0].dim() == 2 else 0
    out = []
    for o, row in zip(outcomes, rows, strict=True):
        cut, fields = 0, []
        for w in widths:
            fields.append(tuple(row[cut:cut + w]))
            cut += w
        info = {k: (v[0] if one else v) for k, v, one in zip(keys, fields[2:], scalar, strict=True)}
        actions, vectors = fields[0], ()
        if dims:
            vectors = tuple(actions[i:i + dims] for i in range(0, len(actions), dims))
            actions = tuple(v[0] for v in vectors)
        out.append(StepScene(step=o.step, env_steps=o.env_steps if env_steps is None else env_steps,
                             episode=o.episode, t=o.t, actions=actions, reward=fields[1], info=info,
                             action_vectors=vectors))
    return out


def frame_stats(run: Run) -> FrameStats:
    exploration = run.algo.exploration()
    return FrameStats(episodes=run.episodes, updates=run.updates, team_return=run.team_return,
                      agent_returns=run.agent_returns, kpis=dict(run.kpis), metrics=dict(run.metrics),
                      exploration=None if exploration is None else (exploration[0], float(exploration[1])))


def build_frame(run: Run, greedy: bool, chart: ChartPoints, loop: Loop | None = None,
                trail: int | None = None, stats: FrameStats | None = None) -> Frame | None:
    """The frame of the newest step of the training loop (or of the greedy view, or of `loop`);
    None before its first step. `trail`: at most this many steps before it (default: all the
    loop keeps). Explain runs on the observation that step acted on, with the weights that
    acted (a loop updates only at the start of its next step)."""
    loop = loop or (run.greedy if greedy else run.loop)
    if loop is None or not loop.recent:
        return None
    steps = list(loop.recent)
    if trail is not None:
        steps = steps[-(trail + 1):]
    rows = scenes(steps, env_steps=run.env_steps if greedy else None)
    last = steps[-1]
    explain, error = None, None
    try:
        with acting_on(run.algo, loop.env):  # no no_grad: MADDPG's explain takes ∂Q_i/∂a_i
            explain = run.algo.explain(last.obs, last.state)
    except Exception as exc:  # noqa: BLE001 - the frame still shows the step; the panel says why
        error = f"{type(exc).__name__}: {exc}"
    return Frame(greedy=greedy, scene=rows[-1], trail=tuple(rows[:-1]), explain=explain,
                 explain_error=error, stats=stats or frame_stats(run), chart=chart)


def greedy_stats(run: Run, means: RunningMeans | None = None) -> FrameStats:
    """Figures of a greedy view (the run's, or `means` of another): means over the episodes it
    has finished, no exploration."""
    m = means or run.greedy_means
    return FrameStats(episodes=m.episodes, updates=run.updates, team_return=m.team_return,
                      agent_returns=m.agent_returns, kpis=m.kpis, metrics=dict(run.metrics),
                      exploration=None)


class ChartCollector:
    """Chart points made since they were last taken (what a frame carries to its view)."""

    MAX_PENDING = 1000  # beyond it every other point is dropped: a chart shows ~2 per column

    def __init__(self) -> None:
        self._episodes: list[tuple[float, float, tuple[float, ...]]] = []
        self._losses: dict[str, list[tuple[float, float]]] = {}

    def episode(self, ended: EpisodeEnd) -> None:
        self._episodes.append((float(ended.env_steps), ended.team_return, ended.agent_returns))
        self._thin(self._episodes)

    def update(self, env_steps: int, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            series = self._losses.setdefault(k, [])
            series.append((float(env_steps), v))
            self._thin(series)

    def peek(self) -> ChartPoints:
        return ChartPoints(episodes=tuple(self._episodes),
                           losses={k: tuple(v) for k, v in self._losses.items()})

    def clear(self) -> None:
        self._episodes, self._losses = [], {}

    def _thin(self, points: list) -> None:
        if len(points) > self.MAX_PENDING:
            del points[::2]


def ready(run: Run) -> Ready:
    """What a view needs about a built run besides its frames."""
    oracle = run.oracle
    return Ready(
        spec=run.env.spec, n_envs=run.env.n_envs, total_steps=run.total_steps,
        oracle=OracleView(summary=oracle.summary, kpis=dict(oracle.kpis), team_return=oracle.team_return,
                          has_policy=oracle.has_policy,
                          values={k: float(v) for k, v in oracle.values.items()
                                  if isinstance(v, (int, float)) and not isinstance(v, bool)}),
        history=ChartPoints(
            episodes=tuple((x, y, tuple(s.y[k] for s in run.agent_history))
                           for k, (x, y) in enumerate(zip(run.team_history.x, run.team_history.y, strict=True))),
            losses={name: tuple(zip(s.x, s.y, strict=True)) for name, s in run.loss_history.items()},
        ),
    )


def progress(run: Run) -> Progress:
    status = run.status
    if status == "running" and run.controls.paused:
        status = "paused"
    stats = run.stats
    return Progress(status=status, env_steps=run.env_steps, total_steps=run.total_steps,
                    greedy_steps=run.greedy_steps, steps_per_second=stats.steps_per_second,
                    save_note=run.save_note, error=run.error, findings=run.findings,
                    held=run.controls.held)
