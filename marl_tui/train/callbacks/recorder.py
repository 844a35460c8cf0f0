"""The flight recorder: every run writes a bounded, append-only stream into RUN_DIR/stream/.

What it records (stream/store.py has the file format):
- a StreamHeader once (spec, oracle, the chart points before this stream began);
- training frames on a schedule dense early and sparser later (every step up to DENSE_STEPS,
  then about PER_DECADE frames per tenfold of steps), each with a short trail and the chart
  points made since the frame before, so a whole run fits and its timeline is complete;
- at every checkpoint, one complete greedy episode of the policy as it was then (its frames and
  what it scored over every copy), on an evaluation env of its own seed (the same episodes each
  time, so checkpoints compare).
A run continued from a checkpoint first cuts the stream back to the records made up to that
checkpoint (a kill may have left later ones), as metrics.csv is cut back. The size is bounded:
past MAX_BYTES training frames stop (checkpoints' episodes go on) and the reader says so.
Recording draws no random numbers and changes nothing in the run (a test checks metrics.csv).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from marl_tui import __version__
from marl_tui.stream.frames import ChartPoints, Frame, GreedyEpisode, StreamHeader, StreamRecord
from marl_tui.stream.store import STREAM_FORMAT, RecordWriter, StreamReader, records_path
from marl_tui.train.evaluation import EVALUATION_SEED_OFFSET, acting_on
from marl_tui.train.framing import ChartCollector, build_frame, greedy_stats, ready
from marl_tui.train.loop import EpisodeEnd, Loop, StepOutcome
from marl_tui.train.run import Callback, Run
from marl_tui.train.stats import RunningMeans

DENSE_STEPS = 200  # every batched step up to here is recorded
PER_DECADE = 200  # then about this many frames per tenfold of steps
RECORDED_TRAIL = 24  # steps of trail a recorded training frame carries
MAX_BYTES = 20 << 20  # training frames stop past this size; checkpoints' episodes go on
EPISODE_COPIES = 64  # copies a checkpoint's greedy episode plays (its score's sample)


def due(step: int) -> bool:
    """Whether batched step `step` is recorded: all early ones, then ~PER_DECADE per decade."""
    if step <= DENSE_STEPS:
        return True
    every = max(1, 10 ** (int(math.log10(step)) + 1) // PER_DECADE)
    return step % every == 0


def _env_steps_of(record: StreamRecord) -> int | None:
    if isinstance(record, Frame):
        return record.scene.env_steps
    if isinstance(record, GreedyEpisode):
        return record.env_steps
    return None


class Recorder(Callback):
    def __init__(self, run_dir: Path, training_frames: bool = True) -> None:
        self.path = records_path(run_dir)
        self.training_frames = training_frames  # False: checkpoints' greedy episodes only
        self.writer: RecordWriter | None = None
        self.chart = ChartCollector()
        self._recorded_step = -1
        self.full = False

    def on_start(self, run: Run) -> None:
        if self.writer is not None:
            return  # a paused run started again in the same process
        if self.path.exists() and self.path.stat().st_size:
            self._cut_back_to(run.env_steps)
        self.writer = RecordWriter(self.path)
        if self.writer.bytes == 0:
            self.writer.append(StreamHeader(
                format=STREAM_FORMAT, marl_tui=__version__, scenario=run.scenario.name,
                kind=run.scenario.kind, algo=run.run_config.algo, seed=run.seed, ready=ready(run)))

    def _cut_back_to(self, env_steps: int) -> None:
        """Keep the records made up to `env_steps` (where the run continues from)."""
        keep = 0
        try:
            for record, end in StreamReader(self.path).read_with_ends():
                made = _env_steps_of(record)
                if made is not None and made > env_steps:
                    break
                keep = end
        except ValueError:
            pass  # damage: everything after the last whole record before it goes
        with self.path.open("r+b") as f:
            f.truncate(keep)

    def on_episode_end(self, run: Run, ended: EpisodeEnd) -> None:
        self.chart.episode(ended)

    def on_update(self, run: Run, metrics: dict[str, float]) -> None:
        self.chart.update(run.env_steps, metrics)

    def on_step(self, run: Run, outcome: StepOutcome) -> None:
        if self.training_frames and due(outcome.step):
            self._record_training_frame(run)

    def _record_training_frame(self, run: Run) -> None:
        if self.writer is None or self.full:
            return
        frame = build_frame(run, greedy=False, chart=self.chart.peek(), trail=RECORDED_TRAIL)
        if frame is None:
            return
        self.chart.clear()
        self.writer.append(frame)
        self._recorded_step = frame.scene.step
        self.full = self.writer.bytes >= MAX_BYTES

    def on_checkpoint(self, run: Run, path: object) -> None:
        if self.writer is None:
            return
        if run.algo.has_greedy_policy:
            self.writer.append(self.greedy_episode(run))
        self.writer.sync()

    def greedy_episode(self, run: Run) -> GreedyEpisode:
        """One episode of the greedy policy on the evaluation env: copy 0's frames, and the
        episode's score over every copy. Learns nothing and draws from no training stream."""
        env = run.make_env(min(run.env.n_envs, EPISODE_COPIES), run.seed + EVALUATION_SEED_OFFSET)
        loop = Loop(env, run.algo, seed=None, learn=False)
        frames: list[Frame] = []
        means = RunningMeans()
        ended = None
        while ended is None:
            with acting_on(run.algo, env), torch.no_grad():
                _, ended = loop.step()
            if ended is not None:
                means.add(ended.team_return, ended.agent_returns, ended.kpis)
            frames.append(build_frame(run, greedy=True, chart=ChartPoints(), loop=loop, trail=0,
                                      stats=greedy_stats(run, means)))
        return GreedyEpisode(env_steps=run.env_steps, frames=tuple(frames), team_return=ended.team_return,
                             kpis=dict(ended.kpis), copies=env.n_envs)

    def on_end(self, run: Run) -> None:
        if self.writer is None:
            return
        if run.iteration != self._recorded_step and run.iteration > 0:
            self._record_training_frame(run)  # the step it ended on
        self.writer.sync()
        self.writer.close()
        self.writer = None
