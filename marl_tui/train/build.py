"""build_run: a Run with the callbacks every run has (NaN guard, checkpoints, metrics.csv, the
doctor; with a run directory the flight recorder, and TensorBoard when installed), plus the
ones its entry point adds (the app's live tap). Seeds the global generators first, so the same
RunConfig builds the same networks."""

from __future__ import annotations

from collections.abc import Sequence

from marl_tui.learn.doctor import Doctor
from marl_tui.train.budget import check_budget
from marl_tui.train.callbacks.checkpointer import Checkpointer
from marl_tui.train.callbacks.metrics_csv import MetricsCsv
from marl_tui.train.callbacks.nan_guard import NanGuard
from marl_tui.train.callbacks.recorder import Recorder
from marl_tui.train.callbacks.tensorboard import TensorBoard, tensorboard_available
from marl_tui.train.controls import Controls
from marl_tui.train.run import Callback, Run
from marl_tui.train.run_config import RunConfig, seed_everything


def build_run(config: RunConfig, controls: Controls | None = None, extra: Sequence[Callback] = (),
              run_class: type[Run] = Run, training_frames: bool = True) -> Run:
    """training_frames=False: the flight recorder keeps only the checkpoints' greedy episodes
    (a seed trained batched: train/seed_batch.py)."""
    check_budget(config)  # before anything is allocated
    seed_everything(config.resolved_seed())
    # The order matters at the end: the checkpoint (holding metrics rows not yet written) before
    # metrics.csv is flushed; the recorder after the checkpointer (a checkpoint's greedy episode
    # follows it); views last, so they see what the others did.
    out = config.out_dir
    files = [] if out is None else [Recorder(out, training_frames)] + ([TensorBoard(out / "tensorboard")]
                                                      if tensorboard_available() else [])
    return run_class(config, controls,
                     callbacks=[NanGuard(), Checkpointer(), MetricsCsv(), Doctor(), *files, *extra])
