"""What one task runs: exactly `marl-tui train` (or `marl-tui resume` when its run directory has a
checkpoint), or `marl-tui train-seeds` for seeds batched, in a process of its own with one torch
thread, its output in DIR/logs/. Both engines use it: the local one starts it as a child
process, a Ray task runs it on its node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from marl_tui.compare.jobs import Job, Status, Task
from marl_tui.train.checkpoint import LATEST, checkpoints_dir

# One thread per job: seeds and algorithms share the cores instead of oversubscribing them.
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
EVALUATIONS = 10  # checkpoints (each with a greedy evaluation) over a job's budget


@dataclass(frozen=True)
class TrainSpec:
    """What every job of a comparison shares."""

    scenario: str  # a bundled name or an absolute path to a .toml
    steps: dict[str, int]  # algorithm -> env-step budget (resolved, so checkpoints can be spaced)


@dataclass(frozen=True)
class JobOutcome:
    exit_code: int
    error: str | None  # the job's last error line, when it did not finish


def finished(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / "summary.json").read_text(encoding="utf-8")).get("status") == "finished"
    except (OSError, ValueError):
        return False


def job_argv(job: Job, spec: TrainSpec) -> list[str]:
    """`marl-tui resume` for a run with a checkpoint; otherwise `marl-tui train` into a fresh
    folder (a folder left by a job lost before its first checkpoint is kept beside it)."""
    cli = [sys.executable, "-m", "marl_tui"]
    if (checkpoints_dir(job.run_dir) / LATEST).is_file():
        return [*cli, "resume", str(job.run_dir), "--jsonl"]
    _keep_lost(job)
    return [*cli, "train", spec.scenario, "--algo", job.algo, "--seed", str(job.seed), *_budget(job, spec),
            "--out", str(job.run_dir), "--jsonl"]


def task_argv(task: Task, spec: TrainSpec) -> list[str]:
    """job_argv for one job; `marl-tui train-seeds` for a batch (see startable)."""
    if not task.batched:
        return job_argv(task.jobs[0], spec)
    argv = [sys.executable, "-m", "marl_tui", "train-seeds", spec.scenario, "--algo", task.jobs[0].algo,
            *_budget(task.jobs[0], spec), "--jsonl"]
    for job in task.jobs:
        _keep_lost(job)
        argv += ["--seed", str(job.seed), "--out", str(job.run_dir)]
    return argv


def startable(task: Task) -> list[Task]:
    """What to start for `task` now: its jobs not finished yet; a batch as a batch only while none
    of them has a checkpoint (a batch interrupted after one resumes seed by seed, each run
    directory being a whole run of its own)."""
    left = [job for job in task.jobs if not finished(job.run_dir)]
    if len(left) > 1 and not any((checkpoints_dir(j.run_dir) / LATEST).is_file() for j in left):
        return [Task(tuple(left))]
    return [Task((job,)) for job in left]


def _budget(job: Job, spec: TrainSpec) -> list[str]:
    steps = spec.steps[job.algo]
    return ["--steps", str(steps), "--checkpoint-every", str(max(1, steps // EVALUATIONS))]


def _keep_lost(job: Job) -> None:
    if job.run_dir.exists():
        job.run_dir.rename(job.run_dir.with_name(f"{job.run_dir.name}.lost-{time.strftime('%Y%m%d-%H%M%S')}"))


def job_env() -> dict[str, str]:
    return {**os.environ, **ONE_THREAD}


def open_log(task: Task) -> int:
    """The task's log, appended to (a resumed job adds to what the first attempt wrote)."""
    task.log.parent.mkdir(parents=True, exist_ok=True)
    return os.open(task.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def start(task: Task, spec: TrainSpec) -> subprocess.Popen[bytes]:
    fd = open_log(task)
    try:
        # A session of its own: a Ctrl-C at the terminal reaches the comparison, which stops each
        # job once (a second signal would make `marl-tui train` exit without saving).
        return subprocess.Popen(task_argv(task, spec), stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                                env=job_env(), start_new_session=True)
    finally:
        os.close(fd)


def last_error(log: Path) -> str | None:
    """The last line a task said about an error ("marl-tui: error: ..." or a traceback's end)."""
    try:
        lines = [ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return None
    lines = [ln for ln in lines if ln and not ln.startswith("{")]  # progress lines are JSON
    said = [ln for ln in lines if ln.startswith("marl-tui:")]
    return (said or lines or [None])[-1]


# `marl-tui train` stopped by SIGHUP, SIGINT or SIGTERM: it saved (exit 128 + n), or the signal
# came before its handlers were in place (killed by it: -n), before it had anything to save.
STOPPED_CODES = (129, 130, 143, -1, -2, -15)


def status_of(code: int) -> Status:
    return "finished" if code == 0 else "stopped" if code in STOPPED_CODES else "failed"


def outcomes(task: Task, code: int) -> list[tuple[Job, Status, JobOutcome]]:
    """How each of the task's jobs ended, its process having exited with `code`: a batch's seed
    whose run finished did, whatever another seed's fault made the exit code."""
    error = None if code == 0 else (last_error(task.log) or f"exit code {code}")
    ended: list[tuple[Job, Status, JobOutcome]] = []
    for job in task.jobs:
        if task.batched and finished(job.run_dir):
            ended.append((job, "finished", JobOutcome(0, None)))
        elif task.batched and code == 0:  # the batch said it finished, but this seed's run did not
            ended.append((job, "failed", JobOutcome(code, f"{job.run_dir}: no finished summary.json")))
        else:
            ended.append((job, status_of(code), JobOutcome(code, error)))
    return ended


def run(task: Task, spec: TrainSpec) -> list[tuple[Job, Status, JobOutcome]]:
    """Run the task to its end here (a Ray task's body): what startable() says, one process after
    another. Interrupted (a cancelled task), it asks the job running to stop, which saves a
    checkpoint to resume from."""
    ended = [(job, "finished", JobOutcome(0, None)) for job in task.jobs if finished(job.run_dir)]
    for part in startable(task):
        proc = start(part, spec)
        try:
            ended += outcomes(part, proc.wait())
        except BaseException:
            proc.terminate()
            proc.wait()
            raise
    return ended
