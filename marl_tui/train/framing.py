"""Frames from a run's steps: built only when one is wanted, from tensors the loop kept by
reference, copy 0 of every step at once (one host transfer for the scene and its trail)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from marl_tui.stream.frames import ChartPoints, Frame, FrameStats, Progress, StepScene
from marl_tui.train.evaluation import acting_on
from marl_tui.train.loop import Loop, StepOutcome
from marl_tui.train.run import Run


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
    out = []
    for o, row in zip(outcomes, rows, strict=True):
        cut, fields = 0, []
        for w in widths:
            fields.append(tuple(row[cut:cut + w]))
            cut += w
        info = {k: (v[0] if one else v) for k, v, one in zip(keys, fields[2:], scalar, strict=True)}
        out.append(StepScene(step=o.step, env_steps=o.env_steps if env_steps is None else env_steps,
                             episode=o.episode, t=o.t, actions=fields[0], reward=fields[1], info=info))
    return out


def frame_stats(run: Run) -> FrameStats:
    exploration = run.algo.exploration()
    return FrameStats(episodes=run.episodes, updates=run.updates, team_return=run.team_return,
                      agent_returns=run.agent_returns, kpis=dict(run.kpis), metrics=dict(run.metrics),
                      exploration=None if exploration is None else (exploration[0], float(exploration[1])))


def build_frame(run: Run, greedy: bool, chart: ChartPoints) -> Frame | None:
    """The frame of the newest step of the training loop (or of the greedy view); None before
    its first step. Explain runs on the observation that step acted on, with the weights that
    acted (a loop updates only at the start of its next step)."""
    loop: Loop | None = run.greedy if greedy else run.loop
    if loop is None or not loop.recent:
        return None
    rows = scenes(list(loop.recent), env_steps=run.env_steps if greedy else None)
    last = loop.recent[-1]
    explain, error = None, None
    try:
        with acting_on(run.algo, loop.env):  # no no_grad: MADDPG's explain takes ∂Q_i/∂a_i
            explain = run.algo.explain(last.obs, last.state)
    except Exception as exc:  # noqa: BLE001 - the frame still shows the step; the panel says why
        error = f"{type(exc).__name__}: {exc}"
    return Frame(greedy=greedy, scene=rows[-1], trail=tuple(rows[:-1]), explain=explain,
                 explain_error=error, stats=frame_stats(run), chart=chart)


def progress(run: Run) -> Progress:
    status = run.status
    if status == "running" and run.controls.paused:
        status = "paused"
    stats = run.stats
    return Progress(status=status, env_steps=run.env_steps, total_steps=run.total_steps,
                    greedy_steps=run.greedy_steps, steps_per_second=stats.steps_per_second,
                    save_note=run.save_note, error=run.error)
