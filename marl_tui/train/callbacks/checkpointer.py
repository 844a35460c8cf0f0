"""Checkpoints: every `checkpoint_every` env steps (counted in env steps, never wall time, so a
resumed run repeats the uninterrupted one exactly), when a view asks (`s`, paused or not), and
when the loop ends (finished or stopped; a failed run keeps its last good checkpoint)."""

from __future__ import annotations

from marl_tui.errors import UserError
from marl_tui.train.checkpoint import save_checkpoint
from marl_tui.train.loop import StepOutcome
from marl_tui.train.run import Callback, Run


class Checkpointer(Callback):
    def __init__(self) -> None:
        self._next = 0
        self._saved_at: tuple[int, int] | None = None  # (iteration, env steps) of the last save

    def on_start(self, run: Run) -> None:
        every = run.checkpoint_every if run.run_config.out_dir is not None else 0  # nowhere to save
        self._next = (run.env_steps // every + 1) * every if every else 0
        if run.last_checkpoint_step == run.env_steps:
            self._saved_at = (run.iteration, run.env_steps)

    def on_step(self, run: Run, outcome: StepOutcome) -> None:
        if self._next and run.env_steps >= self._next:
            self._next = (run.env_steps // run.checkpoint_every + 1) * run.checkpoint_every
            self._save(run)
        self._saves_asked(run)

    def on_greedy_step(self, run: Run, outcome: StepOutcome) -> None:
        self._saves_asked(run)

    def on_idle(self, run: Run) -> None:
        self._saves_asked(run)

    def on_end(self, run: Run) -> None:
        if run.status in ("finished", "stopped") and run.run_config.out_dir is not None:
            self._save(run)

    def _saves_asked(self, run: Run) -> None:
        if not run.controls.save_due:
            return
        run.controls.save_taken()
        if run.run_config.out_dir is None:
            run.save_note = "not saved: this run has no run directory"
        else:
            self._save(run, force=True)

    def _save(self, run: Run, force: bool = False) -> None:
        """Save now. Non-finite parameters stay a TrainingFault (nothing written, the last good
        checkpoint stays); a full disk or a missing folder becomes a note, and training goes on."""
        at = (run.iteration, run.env_steps)
        if not force and self._saved_at == at:
            return
        try:
            path = save_checkpoint(run)
        except (OSError, UserError) as exc:
            run.save_note = f"checkpoint not saved at env step {run.env_steps:,}: {exc}"
            return
        run.checkpoint_written(path)
        self._saved_at = at
