"""The live tap: pushes frames and progress to a view over a byte pipe (the app's training
process). A frame goes out when the view has asked for one (ControlState.frames_granted): the
view sets the pace, so nothing about screens lives here, and at full speed the loop builds a
frame only a few times a second. Chart points made between frames ride with the next one."""

from __future__ import annotations

import time
from collections.abc import Callable

from marl_tui.stream.frames import ChartPoints, encode
from marl_tui.train.framing import build_frame, progress
from marl_tui.train.loop import EpisodeEnd, StepOutcome
from marl_tui.train.run import Callback, Run

PROGRESS_SECONDS = 0.25  # counters between frames
MAX_PENDING = 1000  # chart points held for the next frame; beyond it every other one is dropped


def _thin(points: list) -> None:
    if len(points) > MAX_PENDING:
        del points[::2]


class LiveTap(Callback):
    def __init__(self, send: Callable[[bytes], None]) -> None:
        self.send = send
        self.frames_sent = 0
        self._progress_at = 0.0
        self._episodes: list[tuple[float, float, tuple[float, ...]]] = []
        self._losses: dict[str, list[tuple[float, float]]] = {}

    # --- chart points ---------------------------------------------------------
    def on_episode_end(self, run: Run, ended: EpisodeEnd) -> None:
        self._episodes.append((float(ended.env_steps), ended.team_return, ended.agent_returns))
        _thin(self._episodes)

    def on_update(self, run: Run, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            series = self._losses.setdefault(k, [])
            series.append((float(run.env_steps), v))
            _thin(series)

    # --- frames and progress --------------------------------------------------
    def on_step(self, run: Run, outcome: StepOutcome) -> None:
        self._offer(run)

    def on_greedy_step(self, run: Run, outcome: StepOutcome) -> None:
        self._offer(run)

    def on_idle(self, run: Run) -> None:
        self._offer(run, progress_now=True)

    def on_checkpoint(self, run: Run, path: object) -> None:
        self._send_progress(run)

    def on_end(self, run: Run) -> None:
        self._offer(run, progress_now=True)

    def _offer(self, run: Run, progress_now: bool = False) -> None:
        if run.controls.state.frames_granted > self.frames_sent:
            chart = ChartPoints(episodes=tuple(self._episodes),
                                losses={k: tuple(v) for k, v in self._losses.items()})
            frame = build_frame(run, run.controls.greedy, chart)
            if frame is not None:
                self._episodes, self._losses = [], {}
                self.frames_sent = run.controls.state.frames_granted
                self.send(encode(frame))
                progress_now = True
        if progress_now or time.monotonic() - self._progress_at >= PROGRESS_SECONDS:
            self._send_progress(run)

    def _send_progress(self, run: Run) -> None:
        self._progress_at = time.monotonic()
        self.send(encode(progress(run)))
