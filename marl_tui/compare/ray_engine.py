"""The Ray engine (`--engine ray [--address ADDR]`, the `marl-tui[ray]` extra): each job (or each
algorithm's seeds, with --batched-seeds) is a Ray task that runs exactly what a local process runs
(jobrun.run: `marl-tui train`, `marl-tui train-seeds`, or `marl-tui resume` when a run directory
already has a checkpoint) and writes the same run directory under --out,
which must be storage every node sees at the same path. Ray schedules the tasks (one CPU each);
a task whose node is lost is retried by Ray and resumes from the run's last checkpoint.
Progress is read from the run directories, as for local jobs.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from marl_tui.compare import jobrun
from marl_tui.compare.engines import Engine, Listener
from marl_tui.compare.jobrun import JobOutcome, TrainSpec
from marl_tui.compare.jobs import Job, JobState, Status, Task, tasks
from marl_tui.errors import UserError

RETRIES = 3  # retries of a task whose worker or node died (Ray's max_retries)
WAIT_SECONDS = 0.5
CONNECT_SECONDS = 3.0


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("--engine ray: Ray is not installed; install it with "
                        "`pip install 'marl-tui[ray]'`, or leave out --engine") from None
    return ray


def check_reachable(address: str) -> None:
    """A host:port (or ray://host:port) that does not answer: one line now, where ray.init would
    retry for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and the like: ray.init knows them
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        raise UserError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); start "
                        "one with `ray start --head`, or leave out --address for a local instance") from None


def connect(address: str | None) -> Any:
    """ray.init: a running cluster at `address`, or a Ray instance started here. One line if not."""
    ray = import_ray()
    if address:
        check_reachable(address)
    if ray.is_initialized():
        return ray
    # The jobs' own process and the workers' share of this machine: no log spam on the screen.
    options: dict[str, Any] = {"address": address, "log_to_driver": False, "configure_logging": False}
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"--address {address}" if address else "a local Ray instance"
        raise UserError(f"--engine ray: cannot reach {where} ({str(exc).splitlines()[0]}); "
                        "start one with `ray start --head`, or leave out --engine") from None
    return ray


def _task(task: Task, spec: TrainSpec) -> list[tuple[Job, Status, JobOutcome]]:
    return jobrun.run(task, spec)


class RayEngine(Engine):
    def __init__(self, jobs: Sequence[Job], spec: TrainSpec, address: str | None,
                 on_change: Listener | None = None, batched: frozenset[str] = frozenset()) -> None:
        super().__init__(jobs, on_change)
        self.spec = spec
        self.tasks = tasks(self.jobs, batched)
        self.ray = connect(address)
        self._remote = self.ray.remote(num_cpus=1, max_retries=RETRIES)(_task)
        self._refs: dict[Any, Task] = {}
        self._stop = threading.Event()

    def start(self) -> None:
        for task in self.tasks:
            left = [job for job in task.jobs if not jobrun.finished(job.run_dir)]
            for job in task.jobs:
                if job not in left:
                    self._set(JobState(job, "finished", exit_code=0))
            if not left:
                continue
            task = Task(tuple(left))
            self._refs[self._remote.options(name=f"marl-tui {task.name}").remote(task, self.spec)] = task
            for job in left:
                self._set(JobState(job, "running", started=time.time()))
        threading.Thread(target=self._loop, name="marl-tui-compare-ray", daemon=True).start()

    def stop(self) -> None:
        """Cancel the tasks: each stops its job, which saves a checkpoint (resumable)."""
        self._stop.set()
        for ref in list(self._refs):
            self.ray.cancel(ref)

    def _loop(self) -> None:
        try:
            while self._refs:
                ready, _ = self.ray.wait(list(self._refs), num_returns=1, timeout=WAIT_SECONDS)
                for ref in ready:
                    for state in self._ended(self._refs.pop(ref), ref):
                        self._set(state)
        finally:
            self._done.set()

    def _ended(self, task: Task, ref: Any) -> list[JobState]:
        states = self.states()
        try:
            ended: list[tuple[Job, Status, JobOutcome]] = self.ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - a cancelled task, a task that ran out of retries
            status = "stopped" if self._stop.is_set() else "failed"
            error = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            return [JobState(job, status, started=states[job.name].started, ended=time.time(), error=error)
                    for job in task.jobs]
        return [JobState(job, status, started=states[job.name].started, ended=time.time(),
                         exit_code=result.exit_code, error=result.error) for job, status, result in ended]
