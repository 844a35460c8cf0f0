"""`marl-tui compare`: check the input, start the engine, then show the comparison (the screen
on a terminal, progress lines and a final table without one) and write the results files."""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from marl_tui.catalogue import find_scenario
from marl_tui.compare import inputs
from marl_tui.compare.board import Board
from marl_tui.compare.engines import Engine, Listener, LocalEngine, default_workers
from marl_tui.compare.headless import PROGRESS_SECONDS, final_table, job_line, progress_line, say
from marl_tui.compare.jobrun import TrainSpec
from marl_tui.compare.jobs import JobState, parse_algos, plan
from marl_tui.compare.runs import RunTail
from marl_tui.errors import UserError

ENGINES = ("local", "ray")
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class CompareOptions:
    targets: tuple[str, ...]
    algos: str | None = None
    seeds: int | None = None
    steps: int | None = None
    out: Path | None = None
    engine: str = "local"
    address: str | None = None
    jobs: int | None = None
    headless: bool = False
    batched_seeds: bool | None = None  # --batched-seeds / --separate-seeds (None: separate)


def _training_only(o: CompareOptions) -> None:
    given = [flag for flag, v in (("--algos", o.algos), ("--seeds", o.seeds), ("--steps", o.steps),
                                  ("--address", o.address), ("--jobs", o.jobs),
                                  ("--batched-seeds" if o.batched_seeds else "--separate-seeds", o.batched_seeds))
             if v is not None]
    if o.engine != "local":
        given.append("--engine")
    if given:
        raise UserError(f"{', '.join(given)}: only when training a comparison (`marl-tui compare SCENARIO "
                        "...`); existing runs are compared as they are")


def board_for_runs(o: CompareOptions) -> Board:
    _training_only(o)
    runs = inputs.discover(o.targets)
    folder = Path(o.targets[0]) if len(o.targets) == 1 and not inputs.is_run_dir(Path(o.targets[0])) else None
    return Board(runs[0][1].scenario, [RunTail(path, info) for path, info in runs],
                 results_dir=o.out if o.out is not None else folder)


def board_for_training(o: CompareOptions, on_change: Listener | None) -> tuple[Board, str]:
    """Checks everything, then makes the engine (Ray connects here). Returns the board and a
    line saying what starts. Nothing is written before every check has passed."""
    from marl_tui.algos.registry import resolve_hparams

    if len(o.targets) != 1:
        raise UserError("give one scenario to train a comparison, or run directories to compare")
    if o.engine not in ENGINES:
        raise UserError(f"--engine {o.engine!r}: choose local or ray")
    if o.seeds is not None and o.seeds <= 0:
        raise UserError(f"--seeds {o.seeds}: give at least 1")
    if o.jobs is not None and o.jobs <= 0:
        raise UserError(f"--jobs {o.jobs}: give at least 1")
    if o.address is not None and o.engine != "ray":
        raise UserError("--address is the Ray cluster's address: add --engine ray")
    sc = find_scenario(o.targets[0])
    algos = parse_algos(o.algos or inputs.DEFAULT_ALGOS)
    seeds = [sc.seed + i for i in range(o.seeds or inputs.DEFAULT_SEEDS)]
    total = {a: int(o.steps or resolve_hparams(a, sc).steps) for a in algos}
    out = o.out or inputs.default_out(sc)
    jobs = plan(out, algos, seeds)
    existing = inputs.check_out(out, jobs, sc, total)
    batched, note = batched_algos(algos, len(seeds), o.batched_seeds)
    target = o.targets[0]  # the jobs load it as given: a bundled name, or a file (from any folder)
    spec = TrainSpec(scenario=str(Path(target).resolve()) if target.endswith(".toml") else target, steps=total)
    engine: Engine
    if o.engine == "ray":
        from marl_tui.compare.ray_engine import RayEngine

        engine = RayEngine(jobs, spec, o.address, on_change=on_change, batched=batched)
        where = f"Ray ({o.address or 'a local instance'})"
    else:
        workers = o.jobs or default_workers()
        engine = LocalEngine(jobs, spec, workers, on_change=on_change, batched=batched)
        where = f"{workers} local process{'es' if workers > 1 else ''}, one torch thread each"
    out.mkdir(parents=True, exist_ok=True)
    again = f"; {existing} run(s) already there are kept or resumed" if existing else ""
    line = (f"marl-tui: comparing {', '.join(algos)} on {sc.name}: {len(seeds)} seed(s) each, {len(jobs)} runs "
            f"on {where} -> {out}{again}{note}")
    return Board.for_jobs(sc.name, jobs, total, engine, out), line


def batched_algos(algos: tuple[str, ...], seeds: int, asked: bool | None) -> tuple[frozenset[str], str]:
    """The algorithms whose seeds train batched in one process (train/seed_batch.py; asked with
    --batched-seeds: on a CPU a batch costs what separate runs do, so it is not the default), and
    a note for the starting line."""
    from marl_tui.algos.registry import algorithm_class

    if seeds < 2 or not asked:
        return frozenset(), ""
    chosen = frozenset(a for a in algos if algorithm_class(a).supports_seed_stack)
    if not chosen:
        return chosen, "; seeds train as separate runs (none of these algorithms stacks seeds)"
    separate = [a for a in algos if a not in chosen]
    return chosen, (f"; seeds batched for {', '.join(a for a in algos if a in chosen)}"
                    + (f" (separate runs for {', '.join(separate)})" if separate else ""))


def run_compare(o: CompareOptions, stream: TextIO | None = None) -> int:
    from marl_tui.tui.terminal import require_terminal

    out = stream or sys.stdout
    headless = o.headless
    if not headless:
        try:
            require_terminal("marl-tui compare")
        except UserError:
            headless = True
    if inputs.looks_like_paths(o.targets):
        board = board_for_runs(o)
        if headless:
            return _headless_runs(board, out)
        from marl_tui.tui.launch import launch_compare

        return launch_compare(board)
    printed: list[JobState] = []
    board, line = board_for_training(o, printed.append if headless else None)
    say(out, line)
    if headless:
        return _headless_training(board, printed, out)
    from marl_tui.tui.launch import launch_compare

    return launch_compare(board)


def _headless_runs(board: Board, out: TextIO) -> int:
    board.poll()
    comparison = board.comparison()
    say(out, final_table(comparison))
    _say_written(board.write_results(comparison), out)
    return 0


def _headless_training(board: Board, printed: list[JobState], out: TextIO) -> int:
    engine = board.engine
    assert engine is not None
    stop = _StopOnSignals(engine, out)
    engine.start()
    last = time.monotonic()
    try:
        while not engine.join(POLL_SECONDS):
            while printed:
                say(out, job_line(printed.pop(0)))
            if time.monotonic() - last >= PROGRESS_SECONDS:
                board.poll()
                say(out, progress_line(board.members()))
                last = time.monotonic()
    finally:
        stop.restore()
    while printed:
        say(out, job_line(printed.pop(0)))
    board.poll()
    comparison = board.comparison()
    say(out, final_table(comparison))
    _say_written(board.write_results(comparison), out)
    failed = sum(m.status == "failed" for a in comparison.algos for m in a.members)
    if stop.signum is not None:
        say(out, f"marl-tui: stopped by signal {stop.signum}; run the same command again to resume the "
                 "stopped runs")
        return 128 + stop.signum
    return 1 if failed else 0


def _say_written(paths: list[Path], out: TextIO) -> None:
    if paths:
        say(out, "results: " + ", ".join(str(p) for p in paths))


class _StopOnSignals:
    """Ctrl-C, SIGTERM, SIGHUP: every running job is asked to stop (each saves a checkpoint),
    queued ones never start; the results so far are written."""

    def __init__(self, engine: Engine, out: TextIO) -> None:
        self.engine, self.out = engine, out
        self.signum: int | None = None
        self._old = {}
        for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.signum is None:
            say(self.out, "marl-tui: stopping every job (each saves a checkpoint)…")
        self.signum = signum
        self.engine.stop()

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
