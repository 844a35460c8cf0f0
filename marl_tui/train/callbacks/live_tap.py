"""The live tap: pushes frames and progress to a view over a byte pipe (the app's training
process). A frame goes out when the view has asked for one (ControlState.frames_granted): the
view sets the pace, so nothing about screens lives here, and at full speed the loop builds a
frame only a few times a second. Chart points made between frames ride with the next one.
A what-if asked (ControlState.whatif) is answered once, between steps (train/whatif.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

from marl_tui.stream.frames import encode
from marl_tui.train.framing import ChartCollector, build_frame, greedy_stats, progress
from marl_tui.train.loop import EpisodeEnd, StepOutcome
from marl_tui.train.run import Callback, Run
from marl_tui.train.whatif import answer

PROGRESS_SECONDS = 0.25  # counters between frames


class LiveTap(Callback):
    def __init__(self, send: Callable[[bytes], None]) -> None:
        self.send = send
        self.frames_sent = 0
        self.sent_for: tuple[bool, int] | None = None  # (greedy view?, step) of the last frame sent
        self._progress_at = 0.0
        self.chart = ChartCollector()
        self.whatifs_answered = 0  # the id of the last what-if answered

    # --- chart points ---------------------------------------------------------
    def on_episode_end(self, run: Run, ended: EpisodeEnd) -> None:
        self.chart.episode(ended)

    def on_update(self, run: Run, metrics: dict[str, float]) -> None:
        self.chart.update(run.env_steps, metrics)

    # --- frames and progress --------------------------------------------------
    def on_step(self, run: Run, outcome: StepOutcome) -> None:
        self._offer(run)

    def on_greedy_step(self, run: Run, outcome: StepOutcome) -> None:
        self._offer(run)

    def on_idle(self, run: Run) -> None:
        # Settled into a pause (or told something while paused): the view gets the step the run
        # stands on even when its grants were used up by earlier steps (n pressed quickly).
        self._offer(run, progress_now=True, settled=True)

    def on_checkpoint(self, run: Run, path: object) -> None:
        self._send_progress(run)

    def on_end(self, run: Run) -> None:
        self._offer(run, progress_now=True, settled=True)

    def _offer(self, run: Run, progress_now: bool = False, settled: bool = False) -> None:
        self._answer_what_if(run)
        greedy = run.controls.greedy
        last = run.last_outcome(greedy)
        stands_on = None if last is None else (greedy, last.step)
        unsent = settled and stands_on is not None and stands_on != self.sent_for
        if run.controls.state.frames_granted > self.frames_sent or unsent:
            frame = build_frame(run, greedy, self.chart.peek(), stats=greedy_stats(run) if greedy else None)
            if frame is not None:
                self.chart.clear()
                self.frames_sent = run.controls.state.frames_granted
                self.sent_for = stands_on
                self.send(encode(frame))
                progress_now = True
        if progress_now or time.monotonic() - self._progress_at >= PROGRESS_SECONDS:
            self._send_progress(run)

    def _answer_what_if(self, run: Run) -> None:
        query = run.controls.state.whatif
        if query is not None and query.id > self.whatifs_answered:
            self.whatifs_answered = query.id
            self.send(encode(answer(run, query)))

    def _send_progress(self, run: Run) -> None:
        self._progress_at = time.monotonic()
        self.send(encode(progress(run)))
