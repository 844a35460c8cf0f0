"""One run directory read as it grows: metrics.csv (a row per training episode), the stream's
header (scenario, oracle) and greedy evaluations (one per checkpoint), summary.json.

`RunTail.poll()` reads only what was added since the last poll, so a comparison can follow runs
training here, in other processes, or on other machines writing to shared storage. A file that
was cut back or replaced (`marl-tui resume` rewinds metrics.csv and the stream to its checkpoint)
is read again from its start.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from marl_tui.config import tomllib
from marl_tui.errors import UserError
from marl_tui.stream.frames import GreedyEpisode, OracleView, StreamError, StreamHeader
from marl_tui.stream.store import StreamReader, records_path

Series = tuple[tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True)
class Evaluation:
    """The greedy policy at one checkpoint: what it scored over every copy (the stream's
    GreedyEpisode without its frames)."""

    env_steps: int
    team_return: float
    kpis: Mapping[str, float]


@dataclass(frozen=True)
class RunInfo:
    """What config.toml says a run is."""

    scenario: str
    algo: str
    seed: int
    total_steps: int


@dataclass(frozen=True)
class RunData:
    """One run as a comparison sees it at one poll."""

    run_dir: Path
    info: RunInfo
    kind: str | None  # from the stream header (None until the run has started)
    oracle: OracleView | None
    env_steps: int  # of the last finished training episode or checkpoint
    curves: Mapping[str, Series]  # metrics.csv column -> (env steps, values)
    evaluations: tuple[Evaluation, ...]
    summary_status: str | None  # summary.json's status (finished, interrupted, error), if newer than the stream
    wall_seconds: float | None  # summary.json's wall_seconds_total
    error: str | None


def read_info(run_dir: Path) -> RunInfo:
    """config.toml's [run] table; UserError naming the folder when it is not a run directory."""
    path = run_dir / "config.toml"
    try:
        run = tomllib.loads(path.read_text(encoding="utf-8"))["run"]
        return RunInfo(scenario=str(run["scenario"]), algo=str(run["algo"]), seed=int(run["seed"]),
                       total_steps=int(run["steps"]))
    except FileNotFoundError:
        raise UserError(f"{run_dir}: not a run directory (no config.toml); give folders made by "
                        "`marl-tui train` or `marl-tui compare`") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: cannot read it ({exc}); is it a marl-tui run directory?") from None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


@dataclass
class _CsvTail:
    path: Path
    inode: int | None = None
    offset: int = 0
    header: list[str] | None = None
    columns: dict[str, list[float]] = field(default_factory=dict)

    def poll(self) -> bool:
        ident = _identity(self.path)
        if ident is None:
            return False
        inode, size = ident
        if inode != self.inode or size < self.offset:  # replaced or cut back: start again
            self.inode, self.offset, self.header, self.columns = inode, 0, None, {}
        if size == self.offset:
            return False
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read(size - self.offset)
        end = data.rfind(b"\n") + 1  # whole lines only: the last one may be half written
        if end == 0:
            return False
        self.offset += end
        for row in csv.reader(io.StringIO(data[:end].decode("utf-8", errors="replace"))):
            if self.header is None:
                self.header = row
                self.columns = {k: [] for k in row}
            elif len(row) == len(self.header):
                for k, v in zip(self.header, row, strict=True):
                    self.columns[k].append(_number(v))
        return True

    def series(self) -> dict[str, Series]:
        xs = tuple(self.columns.get("env_steps", ()))
        return {k: (xs, tuple(v)) for k, v in self.columns.items() if k != "env_steps"}


@dataclass
class _StreamTail:
    path: Path
    inode: int | None = None
    reader: StreamReader | None = None
    evaluations: list[Evaluation] = field(default_factory=list)
    problem: str | None = None

    @property
    def header(self) -> StreamHeader | None:
        return self.reader.header if self.reader is not None else None

    def poll(self) -> bool:
        ident = _identity(self.path)
        if ident is None:
            return False
        inode, size = ident
        if self.reader is None or inode != self.inode or size < self.reader.offset:
            self.inode, self.reader, self.evaluations = inode, StreamReader(self.path), []
        if size == self.reader.offset:
            return False
        try:
            records = self.reader.read()
        except StreamError as exc:
            self.problem = str(exc)
            return False
        for r in records:  # frames are for replay; a comparison keeps the greedy evaluations
            if isinstance(r, GreedyEpisode):
                self.evaluations.append(Evaluation(r.env_steps, r.team_return, dict(r.kpis)))
        return bool(records)


class RunTail:
    """A run directory followed poll by poll."""

    def __init__(self, run_dir: Path, info: RunInfo | None = None) -> None:
        self.run_dir = run_dir
        self.info = info  # known before the run exists when an engine is about to make it
        self._csv = _CsvTail(run_dir / "metrics.csv")
        self._stream = _StreamTail(records_path(run_dir))
        self._summary_id: tuple[int, int, int] | None = None
        self._summary: dict = {}
        self._snapshot: RunData | None = None

    def poll(self) -> bool:
        """Read what was added; True if anything changed."""
        if self.info is None:
            if not (self.run_dir / "config.toml").is_file():
                return False
            self.info = read_info(self.run_dir)
        changed = self._csv.poll() | self._stream.poll() | self._poll_summary()
        if changed:
            self._snapshot = None
        return changed

    def _poll_summary(self) -> bool:
        path = self.run_dir / "summary.json"
        try:
            st = path.stat()
        except OSError:
            return False
        ident = (st.st_ino, st.st_size, st.st_mtime_ns)
        if ident == self._summary_id:
            return False
        self._summary_id = ident
        try:
            self._summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._summary = {}  # being replaced right now: read on the next poll
            self._summary_id = None
        return True

    def _summary_status(self) -> str | None:
        """summary.json's status, unless the run has recorded more since (it was resumed)."""
        status = self._summary.get("status")
        if status is None:
            return None
        try:
            written = (self.run_dir / "summary.json").stat().st_mtime_ns
            recorded = records_path(self.run_dir).stat().st_mtime_ns
        except OSError:
            return status
        return status if written >= recorded else None

    def snapshot(self) -> RunData | None:
        if self.info is None:
            return None
        if self._snapshot is None:
            header = self._stream.header
            curves = self._csv.series()
            xs = curves.get("team_return", ((), ()))[0]
            evaluated = [e.env_steps for e in self._stream.evaluations[-1:]]
            wall = self._summary.get("wall_seconds_total")
            self._snapshot = RunData(
                run_dir=self.run_dir, info=self.info,
                kind=header.kind if header else None, oracle=header.ready.oracle if header else None,
                env_steps=int(max([*xs[-1:], *evaluated, 0])), curves=curves,
                evaluations=tuple(self._stream.evaluations), summary_status=self._summary_status(),
                wall_seconds=float(wall) if isinstance(wall, (int, float)) else None,
                error=self._summary.get("error") or self._stream.problem)
        return self._snapshot
