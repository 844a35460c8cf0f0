"""Engines train a comparison's jobs and report their states. Each job writes its own run
directory, which is all a view reads; an engine only says which jobs are queued, running or
over, and how they ended.

LocalEngine: child processes on this machine, at most `workers` at a time (default: one per
core, one torch thread each), started in order from a queue; a process trains one job, or the
seeds of an algorithm batched (--batched-seeds: jobs.tasks). The Ray engine is in ray_engine.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from marl_tui.compare import jobrun
from marl_tui.compare.jobrun import TrainSpec
from marl_tui.compare.jobs import Job, JobState, Task, tasks

POLL_SECONDS = 0.2  # how often the engine looks at its child processes

Listener = Callable[[JobState], None]


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class Engine:
    """Job states, kept under a lock: a view's thread reads them while the engine's writes."""

    def __init__(self, jobs: Sequence[Job], on_change: Listener | None = None) -> None:
        self.jobs = list(jobs)
        self.on_change = on_change
        self._lock = threading.Lock()
        self._states = {j.name: JobState(j, "queued") for j in self.jobs}
        self._done = threading.Event()

    def states(self) -> dict[str, JobState]:
        with self._lock:
            return dict(self._states)

    def _set(self, state: JobState) -> None:
        with self._lock:
            self._states[state.job.name] = state
        if self.on_change is not None:
            self.on_change(state)

    def join(self, timeout: float | None = None) -> bool:
        """True once every job is over (or will never start)."""
        return self._done.wait(timeout)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Ask running jobs to stop (each saves a checkpoint); queued ones never start."""
        raise NotImplementedError


class LocalEngine(Engine):
    def __init__(self, jobs: Sequence[Job], spec: TrainSpec, workers: int,
                 on_change: Listener | None = None, batched: frozenset[str] = frozenset()) -> None:
        super().__init__(jobs, on_change)
        self.spec, self.workers = spec, max(1, workers)
        self.tasks = tasks(self.jobs, batched)
        self._stop = threading.Event()
        self._procs: dict[str, tuple[Task, subprocess.Popen[bytes]]] = {}
        self._signalled: set[str] = set()

    def start(self) -> None:
        threading.Thread(target=self._loop, name="marl-tui-compare", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        queue = list(self.tasks)
        try:
            while queue or self._procs:
                if self._stop.is_set():
                    self._terminate()
                    for task in queue:
                        for job in task.jobs:
                            self._set(JobState(job, "stopped", error="not started"))
                    queue = []
                while queue and len(self._procs) < self.workers:
                    self._launch(queue.pop(0), queue)
                self._reap()
                self._stop.wait(POLL_SECONDS)
        finally:
            self._done.set()

    def _launch(self, task: Task, queue: list[Task]) -> None:
        """Start `task`, or what of it is left to start (jobrun.startable) at the queue's head."""
        left = jobrun.startable(task)
        for job in task.jobs:  # a comparison run again: these are done already
            if not any(job in part.jobs for part in left):
                self._set(JobState(job, "finished", exit_code=0))
        if left != [task]:
            queue[0:0] = left
            return
        try:
            proc = jobrun.start(task, self.spec)
        except OSError as exc:
            for job in task.jobs:
                self._set(JobState(job, "failed", error=f"could not start: {exc}"))
            return
        self._procs[task.name] = (task, proc)
        for job in task.jobs:
            self._set(JobState(job, "running", started=time.time()))

    def _reap(self) -> None:
        for name, (task, proc) in list(self._procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del self._procs[name]
            for job, status, result in jobrun.outcomes(task, code):
                before = self.states()[job.name]
                self._set(JobState(job, status, started=before.started, ended=time.time(),
                                   exit_code=result.exit_code, error=result.error))

    def _terminate(self) -> None:
        """SIGTERM: each `marl-tui train` saves a checkpoint and exits 143 (resumable)."""
        for name, (_, proc) in self._procs.items():
            if name not in self._signalled and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                self._signalled.add(name)
