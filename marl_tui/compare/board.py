"""The runs of one comparison, followed: the jobs an engine trains (their states come from the
engine) or run directories that already exist (their states from what they wrote). Views and
the headless printer poll it and read Members and Comparisons; the results files are written
once every run is over."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from marl_tui.compare.engines import Engine
from marl_tui.compare.jobs import Job, Status
from marl_tui.compare.results import write_results
from marl_tui.compare.runs import RunData, RunInfo, RunTail
from marl_tui.compare.summary import Comparison, Member, summarize

# summary.json's status -> a member's, for runs no engine of ours is training. A run without
# one is training (here or elsewhere) or was killed; `marl-tui resume` continues the latter.
SUMMARY_STATUS: dict[str, Status] = {"finished": "finished", "error": "failed", "interrupted": "stopped"}


class Board:
    def __init__(self, scenario: str, tails: Sequence[RunTail], engine: Engine | None = None,
                 results_dir: Path | None = None) -> None:
        self.scenario = scenario
        self.tails = list(tails)
        self.engine = engine
        self.results_dir = results_dir  # None: results are not written
        self.written: list[Path] = []

    @classmethod
    def for_jobs(cls, scenario: str, jobs: Sequence[Job], total_steps: dict[str, int], engine: Engine,
                 results_dir: Path) -> Board:
        tails = [RunTail(j.run_dir, RunInfo(scenario, j.algo, j.seed, total_steps[j.algo])) for j in jobs]
        return cls(scenario, tails, engine, results_dir)

    def poll(self) -> bool:
        changed = False
        for tail in self.tails:
            changed |= tail.poll()
        return changed

    def members(self) -> list[Member]:
        states = {s.job.run_dir: s for s in self.engine.states().values()} if self.engine else {}
        out = []
        for tail in self.tails:
            data = tail.snapshot()
            state = states.get(tail.run_dir)
            if state is not None:
                out.append(Member(state.job.algo, state.job.seed, tail.run_dir, state.status, data,
                                  error=state.error, elapsed=state.elapsed()))
            elif data is not None:
                out.append(Member(data.info.algo, data.info.seed, tail.run_dir, _status(data), data,
                                  error=data.error))
        return out

    def comparison(self, metrics: Sequence[str] = (), points: int = 60) -> Comparison:
        return summarize(self.scenario, self.members(), metrics, points)

    def over(self) -> bool:
        """Every job has ended (or, with no engine, there is nothing to wait for)."""
        return self.engine is None or self.engine.join(0)

    def write_results(self, comparison: Comparison | None = None) -> list[Path]:
        if self.results_dir is not None:
            self.written = write_results(self.results_dir, comparison or self.comparison())
        return self.written


def _status(data: RunData) -> Status:
    return SUMMARY_STATUS.get(data.summary_status or "", "running")
