"""The app's handle on a training process (worker.py): the trainer's view-facing API over a pipe.

    controls = RemoteControls(paused=True)
    proc = TrainerProcess(run_config, controls)
    proc.start(); proc.wait_ready()   # None, or the one-line reason it could not be built
    proc.stats, proc.records.drain(), proc.info.oracle / .spec / .n_envs
    proc.request_explain(); later proc.take_explain()

A receiver thread reads the pipe and keeps the newest Stats and a bounded queue of records,
so reading them costs the screen nothing. The process comes from a fork server that has
imported torch and the trainer once, so a restart starts in a blink.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import pickle
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any

from marl_tui.train.controls import Controls
from marl_tui.train.records import RecordQueue, Stats
from marl_tui.train.run_config import RunConfig
from marl_tui.train.worker import RunInfo, WorkerStart, serve

# Imported once by the fork server. Each training process still imports the main module
# (multiprocessing's rule; marl-tui's entry points only define functions there).
PRELOAD = ["marl_tui.train.worker"]
FINAL = ("finished", "stopped", "error")


def _context() -> Any:
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
    _context()


class RemoteControls:
    """Controls for a run in another process: the same calls views make on Controls.

    A local Controls keeps what the screen shows (paused, speed, greedy) at once; each call
    also goes to the process, or into the start message while there is no process yet.
    """

    def __init__(self, paused: bool = False) -> None:
        self.local = Controls(paused=paused)
        self._lock = threading.Lock()
        self._send: Any = None

    def attach(self, send: Any) -> dict[str, Any]:
        """From now on commands go through send; returns the state to start the process in."""
        with self._lock:
            self._send = send
            c = self.local
            return {"paused": c.paused, "speed": c.speed, "greedy": c.greedy, "stopped": c.stopped}

    def _tell(self, *msg: Any) -> None:
        with self._lock:
            if self._send is not None:
                self._send(msg)

    def pause(self) -> None:
        self.local.pause()
        self._tell("pause")

    def resume(self) -> None:
        self.local.resume()
        self._tell("resume")

    def step(self, n: int = 1) -> None:
        self._tell("step", n)

    def stop(self) -> None:
        self.local.stop()
        self._tell("stop")

    def faster(self) -> float | None:
        speed = self.local.faster()
        self._tell("speed", speed)
        return speed

    def slower(self) -> float | None:
        speed = self.local.slower()
        self._tell("speed", speed)
        return speed

    def set_greedy(self, on: bool) -> None:
        self.local.set_greedy(on)
        self._tell("greedy", on)

    def request_save(self) -> None:
        self._tell("save")

    @property
    def paused(self) -> bool:
        return self.local.paused

    @property
    def stopped(self) -> bool:
        return self.local.stopped

    @property
    def greedy(self) -> bool:
        return self.local.greedy

    @property
    def speed(self) -> float | None:
        return self.local.speed


class TrainerProcess:
    """One training run in its own process, seen through what it publishes."""

    def __init__(self, run: RunConfig, controls: RemoteControls, *, load: Path | None = None,
                 trainer_factory: Any = None) -> None:
        self.run_config = run
        self.controls = controls
        self._load, self._factory = load, trainer_factory
        self.records = RecordQueue()
        self.info: RunInfo | None = None
        self.error: str | None = None  # why the run could not be built
        self._stats = Stats(status="starting")
        self._histories: dict[str, Any] = {}
        # The newest explain answer; a deque so the receiver's put and the screen's take never race.
        self._answers: deque[tuple[tuple[bool, int] | None, dict[str, Any] | None, str | None]] = deque(maxlen=1)
        self._explain_asked = False
        self._ready = threading.Event()
        # Only the receiver thread reaps the process (two threads reading a fork-server child's
        # exit status race for it); everyone else waits on this.
        self._exited = threading.Event()
        self._conn: Any = None
        self._proc: Any = None
        self._send_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        ctx = _context()
        ours, theirs = ctx.Pipe(duplex=True)
        self._conn = ours
        start = WorkerStart(run=self.run_config, load=self._load, trainer_factory=self._factory,
                            **self.controls.attach(self._send))
        proc = ctx.Process(target=serve, args=(theirs, start), name="marl-tui-training", daemon=True)
        proc.start()  # the first one waits while the fork server imports torch
        self._proc = proc
        theirs.close()
        threading.Thread(target=self._receive, name="marl-tui-receiver", daemon=True).start()

    def wait_ready(self, timeout: float | None = None) -> str | None:
        """Block until the run is built: None, or the one-line reason it was not."""
        if not self._ready.wait(timeout):
            return "the training process did not start in time"
        return self.error

    def stop(self, timeout: float = 0.5) -> None:
        """Ask the run to stop (it saves, as any stopped run) and wait a little for it."""
        self.controls.stop()
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

    # ------------------------------------------------------------------ what views read
    @property
    def stats(self) -> Stats:
        return self._stats

    def request_explain(self) -> None:
        """Ask for the algorithm's numbers; take_explain() has them a moment later."""
        if not self._explain_asked:
            self._explain_asked = True
            self._send(("explain",))

    def take_explain(self) -> tuple[tuple[bool, int] | None, dict[str, Any] | None, str | None] | None:
        """((greedy view?, step), numbers, None) or (None, None, why it failed), once; else None."""
        try:
            return self._answers.popleft()
        except IndexError:
            return None

    # ------------------------------------------------------------------ the pipe
    def _send(self, msg: tuple[Any, ...]) -> None:
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        # A process that has ended cannot be told anything; its last Stats say how it ended.
        with self._send_lock, contextlib.suppress(OSError, ValueError):
            self._conn.send_bytes(data)

    def _receive(self) -> None:
        while True:
            try:
                data = self._conn.recv_bytes()
            except (EOFError, OSError):
                break
            with contextlib.suppress(Exception):  # one bad message must not blind the screen
                self._handle(pickle.loads(data))
        self._proc.join()  # the pipe closes as the process ends: this is quick
        self._exited.set()
        self._ended(self._proc.exitcode)

    def _ended(self, code: int | None) -> None:
        if not self._ready.is_set():
            self.error = f"the training process ended before the run was built (exit code {code})"
            self._ready.set()
        elif self._stats.status not in FINAL:
            self._stats = dataclasses.replace(
                self._stats, status="error",
                error=f"the training process ended unexpectedly (exit code {code}); "
                      "the last checkpoint in the run directory is kept")

    def _handle(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "stats":
            _, light, records, histories = msg
            if histories is not None:
                self._histories = histories
            for record in records:
                self.records.put(record)
            self._stats = dataclasses.replace(light, **self._histories)
        elif kind == "explain":
            self._answers.append((msg[1], msg[2], None))
            self._explain_asked = False
        elif kind == "explain_failed":
            self._answers.append((None, None, msg[1]))
            self._explain_asked = False
        elif kind == "ready":
            self.info = msg[1]
            self._ready.set()
        elif kind == "failed":
            self.error = msg[1]
            self._ready.set()
