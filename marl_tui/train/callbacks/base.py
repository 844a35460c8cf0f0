"""The hooks a Run calls (after BenchMARL's experiment callbacks): each callback has one job.

Callbacks see the Run and what just happened; they never pace or step it. A callback that
raises stops the run with its error (a TrainingFault names the quantity and the advice).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from marl_tui.train.loop import EpisodeEnd, StepOutcome
    from marl_tui.train.run import Run


class Callback:
    """Every hook does nothing by default; override the ones a job needs."""

    def on_start(self, run: Run) -> None:
        """The loop is about to take its first step of this session (after any resume)."""

    def on_update(self, run: Run, metrics: dict[str, float]) -> None:
        """One learning step happened; metrics are its declared scalars."""

    def on_step(self, run: Run, outcome: StepOutcome) -> None:
        """One training step, after its episode accounting (EpisodeEnd already announced)."""

    def on_greedy_step(self, run: Run, outcome: StepOutcome) -> None:
        """One step of the greedy view (no learning)."""

    def on_episode_end(self, run: Run, ended: EpisodeEnd) -> None:
        """A training episode finished in every copy."""

    def on_idle(self, run: Run) -> None:
        """The run is paused between steps and its controls changed (or it just paused)."""

    def on_checkpoint(self, run: Run, path: Path) -> None:
        """A checkpoint was written."""

    def on_end(self, run: Run) -> None:
        """The loop has ended: finished, stopped or failed (run.status says which)."""
