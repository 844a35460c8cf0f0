"""The fork server training processes come from: started once, early, it imports torch and
the trainer in a process of its own, so that a run (and every restart) starts in a blink.

Light on purpose (no torch here): the app starts it before its first screen is drawn.
"""

from __future__ import annotations

import multiprocessing
import sys
from typing import Any

# Imported once by the fork server. Each training process still imports the main module
# (multiprocessing's rule; marl-tui's entry points only define functions there).
PRELOAD = ["marl_tui.train.worker"]


def context() -> Any:
    """The fork server (started here if it is not running), or spawn where there is none."""
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    # Starting it hands the real stderr to multiprocessing's helper processes; a running
    # Textual app has replaced sys.stderr with a capture that has no file descriptor.
    saved = sys.stderr
    sys.stderr = sys.__stderr__ or saved
    try:
        from multiprocessing import forkserver

        forkserver.ensure_running()
    finally:
        sys.stderr = saved
    return ctx


def warm_up() -> None:
    """Start the fork server now, so torch is imported while a person is still choosing."""
    context()
