"""A comparison's jobs: one run of `marl-tui train` per (algorithm, seed), each in its own run
directory under the comparison's folder, and the states an engine reports for them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from marl_tui.config import ALGO_TITLES, did_you_mean
from marl_tui.errors import UserError

Status = Literal["queued", "running", "finished", "failed", "stopped"]
LOGS = "logs"  # DIR/logs/ALGO-sSEED.log: each job's output


@dataclass(frozen=True)
class Job:
    algo: str
    seed: int
    run_dir: Path

    @property
    def name(self) -> str:
        return f"{self.algo}-s{self.seed}"

    @property
    def log(self) -> Path:
        return self.run_dir.parent / LOGS / f"{self.name}.log"


@dataclass(frozen=True)
class Task:
    """What one process trains: one job, or several seeds of one algorithm batched
    (`marl-tui train-seeds`, --batched-seeds)."""

    jobs: tuple[Job, ...]

    @property
    def batched(self) -> bool:
        return len(self.jobs) > 1

    @property
    def name(self) -> str:
        first = self.jobs[0]
        return first.name if not self.batched else f"{first.algo}-s{'-'.join(str(j.seed) for j in self.jobs)}"

    @property
    def log(self) -> Path:
        """The process's output (a batch's goes to a log of its own beside the jobs')."""
        first = self.jobs[0]
        return first.log if not self.batched else first.log.with_name(f"{self.name}.log")


def tasks(jobs: Sequence[Job], batched: frozenset[str]) -> list[Task]:
    """The jobs as processes: every job alone, except those of an algorithm in `batched`, whose
    jobs train together (in the place of their first job)."""
    order: list[Job | str] = []  # a job alone, or the algorithm whose batch stands there
    batches: dict[str, list[Job]] = {}
    for job in jobs:
        if job.algo not in batched:
            order.append(job)
            continue
        if job.algo not in batches:
            batches[job.algo] = []
            order.append(job.algo)
        batches[job.algo].append(job)
    return [Task(tuple(batches[x])) if isinstance(x, str) else Task((x,)) for x in order]


@dataclass(frozen=True)
class JobState:
    job: Job
    status: Status
    started: float | None = None  # time.time() of this session's start
    ended: float | None = None
    exit_code: int | None = None
    error: str | None = None  # why it failed or stopped, one line

    def elapsed(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended if self.ended is not None else time.time()) - self.started


def parse_algos(text: str) -> tuple[str, ...]:
    """--algos maddpg,mappo,qmix: known names, lower case, each once, in the order given."""
    names: list[str] = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name not in ALGO_TITLES:
            raise UserError(f"--algos: unknown algorithm {name!r}{did_you_mean(name, ALGO_TITLES)}; "
                            f"choose from: {', '.join(ALGO_TITLES)}")
        if name not in names:
            names.append(name)
    if not names:
        raise UserError("--algos: give at least one algorithm, e.g. --algos maddpg,mappo,qmix")
    return tuple(names)


def plan(out: Path, algos: Sequence[str], seeds: Sequence[int]) -> list[Job]:
    """Seed by seed, every algorithm (so each algorithm appears early in a live comparison)."""
    return [Job(algo, seed, out / f"{algo}-s{seed}") for seed in seeds for algo in algos]
