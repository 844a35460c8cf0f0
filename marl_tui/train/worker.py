"""The app's training process: one Trainer, steered and watched over a pipe.

Why a process and not a thread: in one process the screen and the training loop share the
interpreter lock, and the screen's ~10 % of it slowed a fast loop by as much. In its own
process the loop runs as fast as `marl-tui train` does. remote.TrainerProcess starts this
and is the app's side of the pipe.

Messages are pickled tuples of plain data:
  app -> here:  ("pause",) ("resume",) ("step", n) ("speed", s) ("greedy", on) ("save",)
                ("explain",) ("stop",)
  here -> app:  ("ready", RunInfo) or ("failed", one line); then, as the trainer publishes,
                ("stats", Stats without histories, new StepRecords, histories or None) and
                ("explain", (greedy view?, step), numbers) or ("explain_failed", one line).
The pipe closing (the app has gone) stops the run, which then saves like any stopped run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from marl_tui.envs.base import EnvSpec, Oracle
from marl_tui.errors import UserError
from marl_tui.train.controls import Controls
from marl_tui.train.records import Stats
from marl_tui.train.trainer import RunConfig, Trainer

HISTORY_SECONDS = 1.0  # chart histories (the bulk of a Stats) travel at most this often while running
HISTORY_FIELDS = ("team_history", "agent_history", "loss_history")
NO_HISTORIES = {"team_history": ((), ()), "agent_history": (), "loss_history": {}}


@dataclass(frozen=True)
class RunInfo:
    """What the app needs about a built run besides its Stats."""

    oracle: Oracle
    spec: EnvSpec
    n_envs: int
    total_steps: int


@dataclass(frozen=True)
class WorkerStart:
    """Everything the training process is started with (pickled into it)."""

    run: RunConfig
    paused: bool = False
    speed: float | None = None
    greedy: bool = False
    stopped: bool = False
    load: Path | None = None  # continue from this checkpoint (`marl-tui run --load`)
    trainer_factory: Callable[..., Trainer] | None = None  # a Trainer subclass (tests)


class Link:
    """The sending end, shared by the training and command threads. A gone app is not an error."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, *msg: Any) -> None:
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock, contextlib.suppress(OSError, ValueError):
            self.conn.send_bytes(data)


class Publisher:
    """The trainer's publish_hook: each fresh Stats goes out with the records made since."""

    def __init__(self, trainer: Trainer, link: Link) -> None:
        self.trainer, self.link = trainer, link
        self._sent_at = -math.inf
        self._sent_for: tuple[int, int] | None = None  # (episodes, updates) of the histories sent

    def __call__(self, stats: Stats) -> None:
        records = self.trainer.records.drain()
        now = time.monotonic()
        changed = (stats.episodes, stats.updates) != self._sent_for
        histories = None
        if changed and (stats.status != "running" or now - self._sent_at >= HISTORY_SECONDS):
            histories = {k: getattr(stats, k) for k in HISTORY_FIELDS}
            self._sent_at, self._sent_for = now, (stats.episodes, stats.updates)
        self.link.send("stats", dataclasses.replace(stats, **NO_HISTORIES), records, histories)


class Commands:
    """Applies the app's commands to the run's Controls; answers explain requests."""

    def __init__(self, conn: Connection, trainer: Trainer, link: Link) -> None:
        self.conn, self.trainer, self.link = conn, trainer, link

    def apply(self, msg: tuple[Any, ...]) -> None:
        controls, kind = self.trainer.controls, msg[0]
        if kind == "pause":
            controls.pause()
        elif kind == "resume":
            controls.resume()
        elif kind == "step":
            controls.step(int(msg[1]))
        elif kind == "speed":
            controls.set_speed(msg[1])
        elif kind == "greedy":
            controls.set_greedy(bool(msg[1]))
        elif kind == "save":
            controls.request_save()
        elif kind == "stop":
            controls.stop()
        elif kind == "explain":
            self.explain()

    def explain(self) -> None:
        try:
            view, numbers = self.trainer.explain_step()
        except Exception as exc:  # noqa: BLE001 - the app shows it; training goes on
            self.link.send("explain_failed", f"{type(exc).__name__}: {exc}")
        else:
            self.link.send("explain", view, numbers)

    def receive(self) -> bool:
        """Apply one command; False after "stop" or once the app has gone (which stops the run)."""
        try:
            msg = pickle.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            self.trainer.controls.stop()
            return False
        self.apply(msg)
        return msg[0] != "stop"

    def serve(self) -> None:
        while self.receive():
            pass


def pending(conn: Connection) -> tuple[list[tuple[Any, ...]], bool]:
    """Commands already waiting in the pipe, and whether the run must stop (told so, or the
    app has gone)."""
    msgs: list[tuple[Any, ...]] = []
    try:
        while conn.poll():
            msgs.append(pickle.loads(conn.recv_bytes()))
            if msgs[-1][0] == "stop":
                return msgs, True
    except (EOFError, OSError):
        return msgs, True
    return msgs, False


def build(start: WorkerStart, controls: Controls) -> Trainer:
    """The Trainer (from the checkpoint when asked); its run directory is not written yet."""
    trainer = (start.trainer_factory or Trainer)(start.run, controls=controls)
    if start.load is not None:
        from marl_tui.train.resume import load_checkpoint_into

        load_checkpoint_into(trainer, start.load)
    return trainer


def serve(conn: Connection, start: WorkerStart) -> None:
    """The training process's main: build, report, train until done or told to stop."""
    # The app owns the terminal: Ctrl-C and a hang-up are its to handle, and its end reaches
    # this process as the pipe closing, which stops the run with a checkpoint.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # The screen is the app's: a stray warning or traceback from here must not draw over it.
    # (What goes wrong in training reaches the app as stats.error.)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    early, stop = pending(conn)
    if start.stopped or stop:
        return  # the app quit (or this run was dropped) before it was built: write nothing
    link = Link(conn)
    controls = Controls(paused=start.paused)
    controls.set_speed(start.speed)
    controls.set_greedy(start.greedy)
    try:
        trainer = build(start, controls)
        later, stop = pending(conn)  # a pause or a speed chosen while it was built acts before step one
        if stop:
            return  # dropped while it was built (a quick restart, quit): write nothing
        if start.run.out_dir is not None:
            from marl_tui.train.rundir import init_run_dir

            init_run_dir(trainer, start.run.out_dir)
    except UserError as exc:
        link.send("failed", str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - one line in the app, never a hang
        link.send("failed", f"{type(exc).__name__}: {exc}")
        return
    oracle = dataclasses.replace(trainer.oracle, extra={})  # extra may hold tensors; views never read it
    link.send("ready", RunInfo(oracle=oracle, spec=trainer.env.spec, n_envs=trainer.env.n_envs,
                               total_steps=trainer.total_steps))
    trainer.publish_hook = Publisher(trainer, link)
    commands = Commands(conn, trainer, link)
    for msg in early + later:
        commands.apply(msg)
    trainer.publish()
    listener = threading.Thread(target=commands.serve, name="marl-tui-commands", daemon=True)
    listener.start()
    with contextlib.suppress(Exception):  # already sent as stats.error
        trainer.run()
    if trainer.status != "stopped":
        listener.join()  # finished or failed: the screen may still ask about the policy, until it lets go
