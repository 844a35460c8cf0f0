"""The app's training process: one Run, steered by ControlStates and watched through frames.

Why a process and not a thread: in one process the screen and the training loop share the
interpreter lock, and the screen's ~10 % of it slowed a fast loop by as much. In its own
process the loop runs as fast as `marl-tui train` does. stream/sources.LiveSource starts this
and is the app's side of the pipe.

Over the pipe travel only the typed messages of stream/frames.py, in their one codec:
  app -> here:  ControlState (the whole state, on every change)
  here -> app:  Ready or Failed once; then Frame (when the app has asked for one) and Progress.
A message that does not decode is written to this process's log (RUN_DIR/train.log) and
skipped. The pipe closing (the app has gone) stops the run, which then saves like any
stopped run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from marl_tui.errors import UserError
from marl_tui.stream.frames import ControlState, Failed, StreamError, ToApp, decode_to_run, encode
from marl_tui.train.allocator import keep_freed_memory
from marl_tui.train.build import build_run
from marl_tui.train.callbacks.live_tap import LiveTap
from marl_tui.train.controls import Controls
from marl_tui.train.framing import ready
from marl_tui.train.run import Run
from marl_tui.train.run_config import RunConfig

LOG_NAME = "train.log"


@dataclass(frozen=True)
class WorkerStart:
    """The training process's start arguments (multiprocessing hands them over once)."""

    run: RunConfig
    controls: ControlState
    load: Path | None = None  # continue from this checkpoint (`marl-tui run --load`)
    run_class: type[Run] = Run  # a Run subclass (tests)
    watch: bool = False  # the loaded policy only plays: its budget counts as spent


class Link:
    """The sending end, shared by the run's and the listener's threads. A gone app is not an error."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, data: bytes) -> None:
        with self._lock, contextlib.suppress(OSError, ValueError):
            self.conn.send_bytes(data)

    def say(self, msg: ToApp) -> None:
        self.send(encode(msg))


def _log(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(f"marl-tui training process: {line}", file=sys.stderr, flush=True)


def receive(conn: Connection, block: bool) -> tuple[list[ControlState], bool]:
    """Control states waiting in the pipe (all of them, or at least one when block), and whether
    the app has gone. Malformed messages are logged and skipped."""
    states: list[ControlState] = []
    try:
        while (block and not states) or conn.poll():
            data = conn.recv_bytes()
            try:
                states.append(decode_to_run(data))
            except StreamError as exc:
                _log(f"skipped {exc}")
    except (EOFError, OSError):
        return states, True
    return states, False


def listen(conn: Connection, controls: Controls) -> None:
    """Apply the app's states until it stops the run or goes away (which stops it too)."""
    while True:
        states, gone = receive(conn, block=True)
        for state in states:
            controls.apply(state)
        if gone:
            controls.stop()
            return
        if controls.stopped:
            return


def _output_to(run_dir: Path | None) -> None:
    """The screen is the app's: this process's stdout goes nowhere, its stderr (warnings, a
    traceback, skipped messages) nowhere until the run directory exists, then into its
    train.log."""
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    target = quiet
    if run_dir is not None:
        with contextlib.suppress(OSError):
            target = os.open(run_dir / LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(target, 2)


def serve(conn: Connection, start: WorkerStart) -> None:
    """The training process's main: build, report, train until done or told to stop."""
    # The app owns the terminal: Ctrl-C and a hang-up are its to handle, and its end reaches
    # this process as the pipe closing, which stops the run with a checkpoint.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    keep_freed_memory()  # the process that trains: no page faults step after step
    _output_to(None)
    controls = Controls(start.controls)
    link = Link(conn)

    def caught_up() -> bool:
        """Apply what the app said meanwhile; False when the run must not start."""
        states, gone = receive(conn, block=False)
        for state in states:
            controls.apply(state)
        return not (gone or controls.stopped)

    if not caught_up():
        return  # the app quit (or dropped this run) before it was built: write nothing
    try:
        run = build_run(start.run, controls, extra=[LiveTap(link.send)], run_class=start.run_class)
        if start.load is not None:
            from marl_tui.train.resume import load_checkpoint_into

            load_checkpoint_into(run, start.load)
            if start.watch:
                run.total_steps = run.env_steps
        if not caught_up():
            return  # dropped while it was built (a quick restart, quit): write nothing
        # From here on the run directory is written: the app's "cancel" (SIGTERM, while a
        # superseded run is still being built) must no longer cut it short; a stop still ends
        # the run, with its checkpoint.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if start.run.out_dir is not None:
            from marl_tui.train.rundir import init_run_dir

            init_run_dir(run, start.run.out_dir)
            _output_to(start.run.out_dir)
    except UserError as exc:
        link.say(Failed(str(exc)))
        return
    except Exception as exc:  # noqa: BLE001 - one line in the app, never a hang
        link.say(Failed(f"{type(exc).__name__}: {exc}"))
        return
    link.say(ready(run))
    listener = threading.Thread(target=listen, args=(conn, controls), name="marl-tui-controls", daemon=True)
    listener.start()
    with contextlib.suppress(Exception):  # already in run.error, sent as Progress
        run.run(linger=True)  # a finished run's greedy view stays on call
    if run.status != "stopped":
        listener.join()  # finished or failed: the app may still look, until it lets go
