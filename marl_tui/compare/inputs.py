"""What `marl-tui compare` was given, checked before anything starts: a scenario and the matrix
to train, or run directories (or folders holding them) to compare. Every problem is one line."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from marl_tui.compare.jobs import Job
from marl_tui.compare.runs import RunInfo, read_info
from marl_tui.config import Scenario
from marl_tui.errors import UserError

DEFAULT_ALGOS = "maddpg,mappo,qmix"
DEFAULT_SEEDS = 5


def is_run_dir(path: Path) -> bool:
    return (path / "config.toml").is_file()


def looks_like_paths(targets: Sequence[str]) -> bool:
    """Run directories rather than a scenario: several targets, a path, or an existing folder."""
    first = targets[0]
    return len(targets) > 1 or "/" in first or Path(first).is_dir() and not first.endswith(".toml")


def discover(targets: Sequence[str]) -> list[tuple[Path, RunInfo]]:
    """Each target is a run directory or a folder holding run directories (one level down)."""
    found: list[tuple[Path, RunInfo]] = []
    for target in targets:
        path = Path(target)
        if not path.is_dir():
            raise UserError(f"{target}: no such directory; give run directories (runs/NAME-ALGO-sSEED-TIME) "
                            "or a folder holding them (a `marl-tui compare` output)")
        runs = [path] if is_run_dir(path) else sorted(p for p in path.iterdir() if p.is_dir() and is_run_dir(p))
        if not runs:
            raise UserError(f"{target}: holds no run directories (folders with a config.toml made by "
                            "`marl-tui train` or `marl-tui compare`)")
        found += [(run, read_info(run)) for run in runs]
    check_one_scenario(found)
    return found


def check_one_scenario(runs: Sequence[tuple[Path, RunInfo]]) -> None:
    names = sorted({info.scenario for _, info in runs})
    if len(names) > 1:
        example = {info.scenario: path for path, info in runs}
        raise UserError("runs of different scenarios cannot be compared: "
                        + ", ".join(f"{n} ({example[n]})" for n in names) + "; give runs of one scenario")


def default_out(scenario: Scenario) -> Path:
    return Path("runs") / f"compare-{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_out(out: Path, jobs: Sequence[Job], scenario: Scenario, total_steps: dict[str, int]) -> int:
    """--out may be new, or a comparison of the same matrix to continue (its finished runs are
    kept, stopped ones resumed). Returns how many of the jobs' run directories already exist."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: a file with that name exists; choose another --out")
    existing = 0
    for job in jobs:
        if not job.run_dir.exists():
            continue
        existing += 1
        if not is_run_dir(job.run_dir):
            continue  # lost before it wrote anything: the job starts it again
        info = read_info(job.run_dir)
        if info.scenario != scenario.name:
            raise UserError(f"--out {out}: {job.run_dir} belongs to scenario {info.scenario!r}, not "
                            f"{scenario.name!r}; choose another --out")
        if (info.algo, info.seed) != (job.algo, job.seed):
            raise UserError(f"--out {out}: {job.run_dir} holds a {info.algo} run with seed {info.seed}; "
                            "choose another --out")
        if info.total_steps != total_steps[job.algo]:
            raise UserError(f"--out {out}: {job.run_dir} was started with --steps {info.total_steps:,}, not "
                            f"{total_steps[job.algo]:,}; give the same --steps to continue it, or another --out")
    return existing
