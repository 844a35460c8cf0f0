"""Signals while a headless command runs: SIGINT (Ctrl-C), SIGTERM and SIGHUP (the SSH session
is gone) are answered the same way in every phase (start-up, training, checkpointing, the final
evaluation, writing summary.json): the first one stops what is under way at its next step, the
command saves what it can and exits with 128 + the signal number. A second SIGINT or SIGTERM
exits at once: every file is written atomically, so the last checkpoint stays whole.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import TYPE_CHECKING, Any, Literal

from marl_tui.headless.output import Out

if TYPE_CHECKING:
    from marl_tui.train.run import Run

SIGNAL_NAMES = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}
if hasattr(signal, "SIGHUP"):
    SIGNAL_NAMES[signal.SIGHUP] = "SIGHUP (terminal closed)"

Phase = Literal["start-up", "training", "evaluation", "summary"]
_DOING = {
    "start-up": "stopping before training starts",
    "training": "stopping and saving a checkpoint",
    "evaluation": "stopping the evaluation (training is finished and saved)",
    "summary": "finishing summary.json",
}


def signal_name(signum: int | None) -> str:
    """'SIGINT (Ctrl-C)', 'SIGTERM', ...; 'a stop' when no signal stopped the run."""
    if signum is None:
        return "a stop"
    return SIGNAL_NAMES.get(signum, "a stop")


class StopOnSignal:
    """Main-thread handlers, installed for a whole command. The first signal is remembered
    (`signum`) and stops the trainer once there is one (`attach`); the phase in progress checks
    `signum` at its next step. A second SIGINT/SIGTERM exits at once."""

    def __init__(self, out: Out) -> None:
        self.out = out
        self.trainer: Run | None = None
        self.phase: Phase = "start-up"
        self.signum: int | None = None
        self.notice: str | None = None
        self.saved: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNAL_NAMES:
                self.saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self.saved.items():
            with contextlib.suppress(Exception):
                signal.signal(sig, old)

    def attach(self, trainer: Run) -> None:
        """The trainer exists: a signal that came during start-up stops it before its first step
        (it then saves a checkpoint at step 0, which resume continues)."""
        self.trainer = trainer
        if self.signum is not None:
            trainer.controls.stop()

    def stopped(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: object) -> None:
        name = SIGNAL_NAMES.get(signum, f"signal {signum}")
        if self.signum is not None:
            if hasattr(signal, "SIGHUP") and signum == signal.SIGHUP:
                return  # a hung-up terminal may say so twice; keep saving
            last = self.trainer.last_checkpoint if self.trainer is not None else None
            self.out.err(f"marl-tui: {name} again: exiting now; the last checkpoint "
                         f"({last or 'none yet'}) is intact")
            os._exit(128 + signum)
        self.signum = signum
        if self.trainer is not None:
            self.trainer.controls.stop()
        # Printed by the main loop once the progress bar is closed (a handler may interrupt it
        # mid-draw).
        self.notice = f"marl-tui: {name}: {_DOING[self.phase]} (press Ctrl-C again to exit at once)"
