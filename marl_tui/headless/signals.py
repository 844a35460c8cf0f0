"""Signals while training headless: SIGINT (Ctrl-C), SIGTERM and SIGHUP (the SSH session is
gone) stop the loop, and the trainer saves a checkpoint on its way out. A second Ctrl-C (or
SIGTERM) exits at once: every file is written atomically, so the last checkpoint stays whole.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import TYPE_CHECKING, Any

from marl_tui.headless.output import Out

if TYPE_CHECKING:
    from marl_tui.train.run import Run

SIGNAL_NAMES = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}
if hasattr(signal, "SIGHUP"):
    SIGNAL_NAMES[signal.SIGHUP] = "SIGHUP (terminal closed)"


def signal_name(signum: int | None) -> str:
    """'SIGINT (Ctrl-C)', 'SIGTERM', ...; 'a stop' when no signal stopped the run."""
    if signum is None:
        return "a stop"
    return SIGNAL_NAMES.get(signum, "a stop")


class StopOnSignal:
    """Main-thread handlers: the first signal stops the loop (the trainer saves on its way
    out); a second SIGINT/SIGTERM exits at once (atomic writes keep every file whole)."""

    def __init__(self, trainer: Run, out: Out) -> None:
        self.trainer, self.out = trainer, out
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

    def _handle(self, signum: int, frame: object) -> None:
        name = SIGNAL_NAMES.get(signum, f"signal {signum}")
        if self.signum is not None:
            if hasattr(signal, "SIGHUP") and signum == signal.SIGHUP:
                return  # a hung-up terminal may say so twice; keep saving
            self.out.err(f"marl-tui: {name} again: exiting now; the last checkpoint "
                         f"({self.trainer.last_checkpoint or 'none yet'}) is intact")
            os._exit(128 + signum)
        self.signum = signum
        self.trainer.controls.stop()
        # Printed by the main loop once the progress bar is closed (a handler may interrupt it
        # mid-draw).
        self.notice = (f"marl-tui: {name}: stopping and saving a checkpoint (press Ctrl-C again "
                       "to exit at once)")
