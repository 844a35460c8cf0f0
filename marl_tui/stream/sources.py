"""Sources a view reads a run from. LiveSource: a run training in a process of its own;
ReplaySource: a run's recorded stream in its run directory (finished, killed, or still going).

    source = LiveSource(run_config, ControlState(paused=True))
    source.start(); source.wait_ready()      # None, or the one-line reason it was not built
    source.controls.pause() / .step() / ...  # each change goes to the run as a ControlState
    source.on_news = callback                # called (on the receiver thread) when something came
    source.take_frame()                      # the newest Frame and the chart points since the last take
    source.progress, source.ready            # the newest Progress; the run's Ready
    source.controls.ask_what_if(...)         # a paused step's what-if; its answer: source.what_if

The receiver thread keeps only the newest frame and progress, merging the chart points of
frames a slow screen never took, so a view can coalesce its wake-ups freely and still draw
every point. Messages that do not decode are logged to RUN_DIR/app.log and skipped. The
process comes from a fork server that has imported torch and the trainer once, so a restart
starts in a blink.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from marl_tui.errors import UserError
from marl_tui.stream.forkserver import context
from marl_tui.stream.frames import (
    ChartPoints,
    ControlState,
    Failed,
    Frame,
    GreedyEpisode,
    Progress,
    Ready,
    StreamError,
    StreamHeader,
    WhatIfAnswer,
    WhatIfRefused,
    decode_to_app,
    encode,
)
from marl_tui.stream.store import StreamReader, records_path
from marl_tui.train.controls import Controls
from marl_tui.train.run import Run
from marl_tui.train.run_config import RunConfig
from marl_tui.train.worker import WorkerStart, serve

FINAL = ("finished", "stopped", "error")
APP_LOG = "app.log"


class LiveSource:
    """One training run in its own process, seen through what it pushes."""

    def __init__(self, run: RunConfig, controls: ControlState | None = None, *, load: Path | None = None,
                 run_class: type[Run] = Run, watch: bool = False) -> None:
        self.run_config = run
        self.controls = Controls(controls, on_change=self._send_state)
        self._load, self._run_class, self._watch = load, run_class, watch
        self.ready: Ready | None = None
        self.error: str | None = None  # why the run could not be built
        self.progress = Progress(status="starting", env_steps=0, total_steps=0, greedy_steps=0,
                                 steps_per_second=0.0)
        self.on_news: Callable[[], None] | None = None
        self.what_if: WhatIfAnswer | WhatIfRefused | None = None  # the newest what-if answer
        self.malformed = 0  # messages that did not decode (each logged)
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._points: list[ChartPoints] = []
        self._built = threading.Event()
        # Only the receiver thread reaps the process (two threads reading a fork-server child's
        # exit status race for it); everyone else waits on this.
        self._exited = threading.Event()
        self._conn: Any = None
        self._proc: Any = None
        self._send_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        ctx = context()
        ours, theirs = ctx.Pipe(duplex=True)
        self._conn = ours
        start = WorkerStart(run=self.run_config, controls=self.controls.state, load=self._load,
                            run_class=self._run_class, watch=self._watch)
        proc = ctx.Process(target=serve, args=(theirs, start), name="marl-tui-training", daemon=True)
        proc.start()  # the first one waits while the fork server imports torch
        self._proc = proc
        theirs.close()
        threading.Thread(target=self._receive, name="marl-tui-receiver", daemon=True).start()

    def wait_ready(self, timeout: float | None = None) -> str | None:
        """Block until the run is built: None, or the one-line reason it was not."""
        if not self._built.wait(timeout):
            return "the training process did not start in time"
        return self.error

    def stop(self, timeout: float = 0.5) -> None:
        """Ask the run to stop (it saves, as any stopped run) and wait a little for it. A run
        still being built (a quick restart, p pressed again) is cancelled at once: it has
        written nothing yet, and a build can take seconds and hundreds of MB."""
        self.controls.stop()
        if self._proc is not None and not self._built.is_set():
            with contextlib.suppress(OSError, ValueError, AttributeError):
                self._proc.terminate()  # ignored once it writes its run directory (worker.py)
        self.join(timeout)

    def join(self, timeout: float) -> bool:
        """True once the process has ended (or never started)."""
        return self._proc is None or self._exited.wait(timeout)

    @property
    def alive(self) -> bool:
        return self._proc is not None and not self._exited.is_set()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def status(self) -> str:
        return self.progress.status

    # ------------------------------------------------------------------ what views read
    def take_frame(self) -> tuple[Frame, list[ChartPoints]] | None:
        """The newest frame and every chart point that came since the last take, once."""
        with self._lock:
            if self._frame is None:
                return None
            frame, points = self._frame, self._points
            self._frame, self._points = None, []
            return frame, points

    # ------------------------------------------------------------------ the pipe
    def _send_state(self, state: ControlState) -> None:
        if self._conn is None:
            return  # not started: the start message carries the state
        # A process that has ended cannot be told anything; its last Progress says how it ended.
        with self._send_lock, contextlib.suppress(OSError, ValueError):
            self._conn.send_bytes(encode(state))

    def _receive(self) -> None:
        while True:
            try:
                data = self._conn.recv_bytes()
            except (EOFError, OSError):
                break
            self._handle_bytes(data)
        self._proc.join()  # the pipe closes as the process ends: this is quick
        self._exited.set()
        self._ended(self._proc.exitcode)

    def _handle_bytes(self, data: bytes) -> None:
        try:
            msg = decode_to_app(data)
        except StreamError as exc:
            self._log_malformed(exc)
        else:
            self._handle(msg)

    def _log_malformed(self, exc: StreamError) -> None:
        self.malformed += 1
        out = self.run_config.out_dir
        if out is not None:
            with contextlib.suppress(OSError), (out / APP_LOG).open("a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} skipped {exc}\n")

    def _ended(self, code: int | None) -> None:
        if not self._built.is_set():
            self.error = f"the training process ended before the run was built (exit code {code})"
            self._built.set()
        elif self.progress.status not in FINAL:
            self.progress = msgspec.structs.replace(
                self.progress, status="error",
                error=f"the training process ended unexpectedly (exit code {code}); "
                      "the last checkpoint in the run directory is kept")
        self._news()

    def _handle(self, msg: Ready | Failed | Frame | Progress | WhatIfAnswer | WhatIfRefused) -> None:
        if isinstance(msg, WhatIfAnswer | WhatIfRefused):
            self.what_if = msg
        elif isinstance(msg, Frame):
            with self._lock:
                self._frame = msg
                self._points.append(msg.chart)
        elif isinstance(msg, Progress):
            self.progress = msg
        elif isinstance(msg, Ready):
            self.ready = msg
            self._built.set()
        else:
            self.error = msg.reason
            self._built.set()
        self._news()

    def _news(self) -> None:
        callback = self.on_news
        if callback is not None:
            callback()


class ReplaySource:
    """A recorded run, read from its run directory's stream (stream/store.py): the header, the
    training frames in order, the checkpoints' greedy episodes, every chart point. refresh()
    reads what was added since (a run still training, or copied in later)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        path = records_path(run_dir)
        if not path.is_file():
            raise UserError(_not_a_recording(run_dir))
        self.reader = StreamReader(path)
        self.frames: list[Frame] = []
        self.episodes: list[GreedyEpisode] = []
        self.points: list[ChartPoints] = []
        self.refresh()
        if self.reader.header is None:
            raise UserError(f"{path}: an empty stream (the run was stopped before its first step); "
                            "nothing to replay")

    @property
    def header(self) -> StreamHeader:
        assert self.reader.header is not None
        return self.reader.header

    def refresh(self) -> int:
        """Read the records added since the last call; how many there were."""
        try:
            records = self.reader.read()
        except StreamError as exc:
            raise UserError(str(exc)) from None
        for record in records:
            if isinstance(record, Frame):
                self.frames.append(record)
                self.points.append(record.chart)
            elif isinstance(record, GreedyEpisode):
                self.episodes.append(record)
            else:
                self.points.append(record.ready.history)
        return len(records)


def _not_a_recording(run_dir: Path) -> str:
    if not run_dir.is_dir():
        return f"{run_dir} is not a directory: give a run directory (runs/NAME-ALGO-sSEED-TIME)"
    if (run_dir / "checkpoints").is_dir():
        return (f"{run_dir} has no recorded stream (it was made before marl-tui recorded runs); "
                f"`marl-tui watch {run_dir}` plays its trained policy")
    return f"{run_dir} is not a run directory (no stream/ or checkpoints/ in it): give one under runs/"
