"""`marl-tui train` and `marl-tui resume`: the same trainer as the app, no terminal needed.

The trainer runs in a worker thread; the main thread shows progress (a rich progress
bar with the live KPIs on a terminal, plain lines without one, or one JSON object per
interval with --jsonl), owns the signal handlers, and at the end evaluates the greedy
policy and prints a chart of team return against the oracle and a summary table.

Signals: SIGINT (Ctrl-C), SIGTERM and SIGHUP (the SSH session is gone) stop the loop; the
trainer saves a checkpoint on its way out, summary.json is written, and the process exits
with 128 + the signal number (130, 143, 129) after one line saying how to continue. A
second Ctrl-C (or SIGTERM) exits at once: every file is written atomically, so the last
checkpoint stays whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from marl_tui.config import HEADLINE_KPI, Scenario
from marl_tui.errors import UserError
from marl_tui.train.records import Stats
from marl_tui.train.rundir import default_run_dir, init_run_dir, lock_run_dir, write_config, write_json

if TYPE_CHECKING:
    from marl_tui.train.trainer import Trainer

PROGRESS_SECONDS = 5.0  # plain lines and JSON lines
BAR_SECONDS = 0.25  # the progress bar on a terminal


def fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:,.0f}"


def progress_line(stats: Stats, scenario: Scenario, oracle_kpis: dict[str, float],
                  oracle_return: float) -> str:
    pct = 100.0 * stats.env_steps / max(stats.total_steps, 1)
    key = HEADLINE_KPI[scenario.kind]
    kpi = stats.kpis.get(key)
    parts = [
        f"[{pct:5.1f}%] step {stats.env_steps:,}/{stats.total_steps:,}",
        f"episodes {stats.episodes:,}",
        f"team return {fmt(stats.team_return)} (oracle {fmt(oracle_return)})",
        f"{key} {fmt(kpi)} (oracle {fmt(oracle_kpis.get(key))})",
        f"{stats.steps_per_second:,.0f} steps/s",
    ]
    return " · ".join(parts)


def _finite(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def progress_json(stats: Stats) -> str:
    return json.dumps(
        {
            "env_steps": stats.env_steps, "total_steps": stats.total_steps,
            "episodes": stats.episodes, "updates": stats.updates,
            "team_return": _finite(stats.team_return),
            "steps_per_second": round(stats.steps_per_second, 1),
            "kpis": {k: _finite(v) for k, v in stats.kpis.items()},
            "metrics": {k: _finite(v) for k, v in stats.metrics.items()},
        }
    )


# --------------------------------------------------------------------------- output


class _Out:
    """Prints that never raise: after SIGHUP the terminal is gone and writes fail (EIO)."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = sys.stdout if stream is None else stream
        self.alive = True

    def say(self, line: str) -> None:
        self._write(self.stream, line)

    def err(self, line: str) -> None:
        self._write(sys.stderr, line)

    def _write(self, stream: TextIO, line: str) -> None:
        try:
            print(line, file=stream, flush=True)
        except (OSError, ValueError):
            if stream is self.stream:
                self.alive = False


class _Progress:
    """Progress shown while training: plain lines, JSON lines, or a rich bar on a terminal."""

    def __init__(self, out: _Out, trainer: Trainer, jsonl: bool) -> None:
        self.out, self.trainer, self.jsonl = out, trainer, jsonl
        self.bar: Any = None
        self.closed = False
        self.last = time.monotonic()
        tty = False
        with contextlib.suppress(Exception):
            tty = out.stream.isatty()
        if tty and not jsonl and os.environ.get("TERM") != "dumb":
            self._start_bar()

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
        from rich.table import Column

        console = Console(file=self.out.stream)
        # Three columns short of the edge: a full-width last line leaves the cursor at the margin,
        # where the terminal's echo of ^C starts a new line and the bar's redraw lands one off.
        console.width = max(console.width - 3, 20)
        self.bar = Progress(
            TextColumn("[bold]{task.percentage:>5.1f}%"), BarColumn(bar_width=24),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"), TimeRemainingColumn(),
            # The live KPIs wrap under themselves on a narrow terminal instead of being cut.
            TextColumn("{task.fields[live]}", table_column=Column(no_wrap=False, ratio=1)),
            console=console, auto_refresh=False, transient=False,
        )
        self.task = self.bar.add_task("train", total=self.trainer.total_steps, live="")
        self.bar.start()

    def tick(self, final: bool = False) -> None:
        if self.closed:
            return
        now = time.monotonic()
        stats = self.trainer.stats
        if self.bar is not None:
            if now - self.last < BAR_SECONDS and not final:
                return
            self.last = now
            key = HEADLINE_KPI[self.trainer.scenario.kind]
            o = self.trainer.oracle
            live = (f"return {fmt(stats.team_return)} (oracle {fmt(o.team_return)}) · "
                    f"{key} {fmt(stats.kpis.get(key))} (oracle {fmt(o.kpis.get(key))}) · "
                    f"{stats.steps_per_second:,.0f} steps/s")
            try:
                self.bar.update(self.task, completed=stats.env_steps, live=live)
                self.bar.refresh()
            except (OSError, ValueError):
                self.out.alive = False
            return
        if final or now - self.last < PROGRESS_SECONDS:
            return
        self.last = now
        o = self.trainer.oracle
        self.out.say(progress_json(stats) if self.jsonl else
                     progress_line(stats, self.trainer.scenario, o.kpis, o.team_return))

    def close(self) -> None:
        if self.bar is not None:
            self.tick(final=True)
            with contextlib.suppress(Exception):
                self.bar.stop()
            self.bar = None
        self.closed = True


# --------------------------------------------------------------------------- signals


_SIGNAL_NAMES = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}
if hasattr(signal, "SIGHUP"):
    _SIGNAL_NAMES[signal.SIGHUP] = "SIGHUP (terminal closed)"


class _StopOnSignal:
    """Main-thread handlers: the first signal stops the loop (the trainer saves on its way
    out); a second SIGINT/SIGTERM exits at once (atomic writes keep every file whole)."""

    def __init__(self, trainer: Trainer, out: _Out) -> None:
        self.trainer, self.out = trainer, out
        self.signum: int | None = None
        self.notice: str | None = None
        self.saved: dict[int, Any] = {}

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNAL_NAMES:
                self.saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self.saved.items():
            with contextlib.suppress(Exception):
                signal.signal(sig, old)

    def _handle(self, signum: int, frame: object) -> None:
        name = _SIGNAL_NAMES.get(signum, f"signal {signum}")
        if self.signum is not None:
            if hasattr(signal, "SIGHUP") and signum == signal.SIGHUP:
                return  # a hung-up terminal may say so twice; keep saving
            self.out.err(f"marl-tui: {name} again: exiting now; the last checkpoint "
                         f"({self.trainer.last_checkpoint or 'none yet'}) is intact")
            os._exit(128 + signum)
        self.signum = signum
        self.trainer.controls.stop()
        # Printed by the main loop once the progress bar is closed (a handler may interrupt it
        # mid-draw).
        self.notice = (f"marl-tui: {name}: stopping and saving a checkpoint (press Ctrl-C again "
                       "to exit at once)")


# --------------------------------------------------------------------------- runs


def run_headless(
    scenario: Scenario,
    algo: str,
    steps: int | None,
    seed: int | None,
    n_envs: int | None,
    device: str,
    out: Path | None,
    overrides: dict[str, Any],
    jsonl: bool = False,
    stream: TextIO | None = None,
    checkpoint_every: int | None = None,
) -> int:
    """`marl-tui train`: a new run directory, training, evaluation. Returns the exit code."""
    from marl_tui.algos.registry import algorithm_class
    from marl_tui.train.trainer import RunConfig, Trainer

    algorithm_class(algo)  # unknown names fail before anything is written
    run_seed = scenario.seed if seed is None else seed
    run_dir = out if out is not None else default_run_dir(scenario.name, algo, run_seed)
    cfg = RunConfig(scenario=scenario, algo=algo, steps=steps, seed=seed, n_envs=n_envs,
                    device=device, overrides=overrides, out_dir=run_dir,
                    checkpoint_every=checkpoint_every)
    trainer = Trainer(cfg)  # validates everything before the folder is made
    init_run_dir(trainer, run_dir)
    lock = lock_run_dir(run_dir)
    o = _Out(stream)
    if not jsonl:
        o.say(f"marl-tui: training {algo} on {scenario.name} for {trainer.total_steps:,} steps "
              f"({trainer.env.n_envs} copies, seed {run_seed}, {trainer.device}) -> {run_dir}")
        o.say(f"reference: {trainer.oracle.summary}")
    try:
        return drive(trainer, run_dir, o, jsonl)
    finally:
        lock.close()


def resume_headless(target: Path, steps: int | None, device: str | None = None, jsonl: bool = False,
                    stream: TextIO | None = None) -> int:
    """`marl-tui resume RUN_DIR`: continue a run exactly where its last checkpoint left it.

    steps: a new total budget counted from the run's start (not extra steps)."""
    from marl_tui.train.checkpoint import (
        check_compatible,
        env_steps_of,
        find_checkpoint,
        read_checkpoint,
        restore_state,
        run_config_from,
    )
    from marl_tui.train.trainer import Trainer

    ckpt_path, run_dir = find_checkpoint(target)
    if run_dir is None:
        raise UserError(f"{target}: resume continues a run directory (the folder holding "
                        "checkpoints/); to train on from a loose checkpoint use `marl-tui run "
                        "--load` or copy it into RUN_DIR/checkpoints/latest.pt")
    ckpt = read_checkpoint(ckpt_path)
    _check_belongs(ckpt, ckpt_path, run_dir, check_compatible)
    done, total = env_steps_of(ckpt), int(ckpt["config"]["total_steps"])
    if steps is not None and steps <= done:
        raise UserError(f"--steps {steps:,}: this run is already at step {done:,}; --steps is the "
                        f"total budget from the run's start, so give more than {done:,}")
    if steps is None and done >= total:
        raise UserError(f"{run_dir}: this run is finished ({done:,} of {total:,} steps); give a larger "
                        f"total with --steps (e.g. --steps {2 * total:,}), or evaluate it with "
                        f"`marl-tui eval {run_dir}`")
    if device is not None and device not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device {device!r}: choose auto, cpu or cuda")
    cfg = run_config_from(ckpt, ckpt_path, out_dir=run_dir, steps=steps, device=device)
    trainer = Trainer(cfg)
    restore_state(trainer, ckpt, ckpt_path)  # in memory: a bad checkpoint changes no file
    lock = lock_run_dir(run_dir)  # before anything in the folder changes
    try:
        warning = trainer.metrics_writer.restore(ckpt["metrics_writer"], True, trainer.env_steps)
        o = _Out(stream)
        if warning:
            o.err(f"marl-tui: warning: {warning}")
        if steps is not None:
            _rewrite_config(trainer, run_dir)
        if not jsonl:
            o.say(f"marl-tui: resuming {cfg.algo} on {cfg.scenario.name} at step {done:,} of "
                  f"{trainer.total_steps:,} ({trainer.env.n_envs} copies, seed {trainer.seed}, "
                  f"{trainer.device}) <- {ckpt_path}")
            o.say(f"reference: {trainer.oracle.summary}")
        return drive(trainer, run_dir, o, jsonl)
    finally:
        lock.close()


def _check_belongs(ckpt: dict[str, Any], ckpt_path: Path, run_dir: Path, check_compatible: Any) -> None:
    """A checkpoint copied into another run's folder would mix two runs' files: refuse."""
    from marl_tui.config import parse_scenario

    scenario_file = run_dir / "scenario.toml"
    if scenario_file.is_file():
        try:
            here = parse_scenario(scenario_file.read_text(encoding="utf-8"), str(scenario_file))
        except UserError:
            here = None
        if here is not None:
            try:
                check_compatible(ckpt, ckpt_path, ckpt["config"]["algo"], here)
            except UserError:
                raise UserError(f"{ckpt_path}: belongs to another run: its scenario differs from "
                                f"{scenario_file}; resume the run it came from") from None
    config_file = run_dir / "config.toml"
    if config_file.is_file():
        from marl_tui.config import tomllib

        with contextlib.suppress(OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            algo = tomllib.loads(config_file.read_text(encoding="utf-8")).get("run", {}).get("algo")
            if isinstance(algo, str) and algo != ckpt["config"]["algo"]:
                raise UserError(f"{ckpt_path}: belongs to another run: it is a checkpoint of "
                                f"{ckpt['config']['algo']}, but {config_file} says this run trains {algo}; "
                                "resume the run it came from")


def _rewrite_config(trainer: Trainer, run_dir: Path) -> None:
    write_config(
        run_dir,
        {"scenario": trainer.scenario.name, "algo": trainer.run_config.algo, "seed": trainer.seed,
         "steps": trainer.total_steps, "envs": trainer.env.n_envs, "device": str(trainer.device)},
        dataclasses.asdict(trainer.hp),
    )


def drive(trainer: Trainer, run_dir: Path, o: _Out, jsonl: bool) -> int:
    """Run the trainer in a worker thread with signal handlers, progress, and the ending."""
    started_steps = trainer.env_steps
    started = time.monotonic()
    progress = _Progress(o, trainer, jsonl)
    notes_seen = None
    with _StopOnSignal(trainer, o) as signals:
        thread = trainer.start_thread()
        try:
            while thread.is_alive():
                thread.join(timeout=0.1)
                if signals.notice:
                    progress.close()
                    o.err(signals.notice)
                    signals.notice = None
                progress.tick()
                note = trainer.save_note
                if note != notes_seen:
                    notes_seen = note
                    if note and note.startswith("checkpoint not saved"):
                        o.err(f"marl-tui: warning: {note}")
        finally:
            progress.close()
        signum = signals.signum
    # From here on Ctrl-C is plain again (KeyboardInterrupt: exit 130); the checkpoint is saved.
    wall = time.monotonic() - started
    stats = trainer.stats
    if stats.status != "stopped":
        signum = None  # the run ended on its own just as the signal came
    return _ending(trainer, run_dir, o, jsonl, stats, wall, started_steps, signum)


def _ending(trainer: Trainer, run_dir: Path, o: _Out, jsonl: bool, stats: Stats, wall: float,
            started_steps: int, signum: int | None) -> int:
    oracle = trainer.oracle
    steps_here = stats.env_steps - started_steps
    summary: dict[str, Any] = {
        "scenario": trainer.scenario.name, "algo": trainer.run_config.algo, "seed": trainer.seed,
        "steps": stats.env_steps, "total_steps": trainer.total_steps,
        "wall_seconds": round(wall, 3), "wall_seconds_total": round(trainer.elapsed_seconds(), 3),
        "steps_per_second": round(steps_here / wall, 1) if wall > 0 else None,
        "status": stats.status, "device": str(trainer.device), "envs": trainer.env.n_envs,
        "training_kpis": stats.kpis, "oracle": oracle.values, "oracle_kpis": oracle.kpis,
        "oracle_team_return": oracle.team_return,
        "hyperparameters": dataclasses.asdict(trainer.hp),
        "checkpoint": str(trainer.last_checkpoint) if trainer.last_checkpoint else None,
        "checkpoint_step": trainer.last_checkpoint_step,
    }
    resume_hint = f"marl-tui resume {run_dir}"
    if stats.error:
        last = trainer.last_checkpoint_step
        keep = (f"last good checkpoint at step {last:,} ({resume_hint})" if last is not None
                else "no checkpoint was saved")
        summary["error"] = stats.error
        _write_summary(run_dir, summary, o)
        o.err(f"marl-tui: training stopped at step {stats.env_steps:,}: {stats.error}; run directory "
              f"{run_dir}, {keep}")
        return 1
    if signum is not None or stats.status == "stopped":
        name = _SIGNAL_NAMES.get(signum, "a stop") if signum is not None else "a stop"
        summary["status"] = "interrupted"
        summary["signal"] = name.split(" ")[0]
        summary["resume"] = resume_hint
        _write_summary(run_dir, summary, o)
        if jsonl:
            o.say(json.dumps({"stopped": summary["signal"], "env_steps": stats.env_steps,
                              "checkpoint": summary["checkpoint"], "resume": resume_hint}))
        saved = (f"checkpoint saved at step {trainer.last_checkpoint_step:,}"
                 if trainer.last_checkpoint_step == stats.env_steps else
                 f"checkpoint NOT saved ({trainer.save_note})")
        o.err(f"marl-tui: stopped by {summary['signal']} at step {stats.env_steps:,} of "
              f"{trainer.total_steps:,}; {saved}; continue with: {resume_hint}")
        return 128 + signum if signum is not None else 130
    evaluation = trainer.evaluate()  # after the final checkpoint: it may draw random numbers
    summary["kpis"] = evaluation
    _write_summary(run_dir, summary, o)
    if jsonl:
        o.say(json.dumps({"summary": str(run_dir / "summary.json"), "kpis": _json_safe(evaluation)}))
        return 0
    chart = team_return_chart(stats, oracle.team_return, color=_isatty(o.stream))
    if chart:
        o.say(chart)
    o.say(final_table(evaluation, oracle.kpis | {"team_return": oracle.team_return},
                      wall, stats, steps_here))
    o.say(f"run directory: {run_dir}  (evaluate again: marl-tui eval {run_dir}; "
          f"train on: marl-tui resume {run_dir} --steps N)")
    return 0


def _json_safe(d: dict[str, float]) -> dict[str, Any]:
    return {k: _finite(v) for k, v in d.items()}


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError, AttributeError):
        return False


def _write_summary(run_dir: Path, summary: dict[str, Any], o: _Out) -> None:
    try:
        write_json(run_dir / "summary.json", summary)
    except OSError as exc:
        o.err(f"marl-tui: warning: could not write {run_dir / 'summary.json'}: {exc.strerror}")


def team_return_chart(stats: Stats, oracle_return: float, color: bool = False,
                      width: int = 72, height: int = 16) -> str | None:
    """Team return per episode over env steps, with the oracle's line (plotext, no Textual)."""
    xs, ys = stats.team_history
    if len(xs) < 2:
        return None
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(width, height)
    if not color:
        plt.theme("clear")
    plt.plot(list(xs), list(ys), label="team return", marker="braille")
    lo, hi = min(ys), max(ys)
    if oracle_return is not None and math.isfinite(oracle_return):
        plt.plot([xs[0], xs[-1]], [oracle_return, oracle_return], label="oracle (exact)", marker="-")
        lo, hi = min(lo, oracle_return), max(hi, oracle_return)
    pad = 0.08 * (hi - lo) if hi > lo else 1.0
    plt.ylim(lo - pad, hi + 2 * pad)  # room for the legend above the lines
    plt.title("team return per episode (training, mean over copies)")
    plt.xlabel("env steps")
    text = plt.build()
    plt.clear_figure()
    return text if color else plt.uncolorize(text)


def final_table(evaluation: dict[str, float], oracle_kpis: dict[str, float], wall: float,
                stats: Stats, steps: int | None = None) -> str:
    steps = stats.env_steps if steps is None else steps
    rows = [f"greedy evaluation after {stats.env_steps:,} steps ({wall:.1f} s, "
            f"{steps / max(wall, 1e-9):,.0f} steps/s):",
            f"  {'kpi':<22}{'learned':>14}{'oracle':>14}"]
    for k, v in evaluation.items():
        rows.append(f"  {k:<22}{fmt(v):>14}{fmt(oracle_kpis.get(k)):>14}")
    return "\n".join(rows)


# --------------------------------------------------------------------------- evaluation


def evaluate_checkpoint(target: Path, episodes: int, as_json: bool = False,
                        stream: TextIO | None = None) -> int:
    """`marl-tui eval`: greedy play of a checkpoint's policy, its KPIs against the oracle."""
    from marl_tui.train.checkpoint import env_steps_of, find_checkpoint, read_checkpoint, run_config_from
    from marl_tui.train.trainer import Trainer

    if episodes <= 0:
        raise UserError(f"--episodes {episodes}: give a positive number of episodes")
    ckpt_path, run_dir = find_checkpoint(target)
    ckpt = read_checkpoint(ckpt_path)
    cfg = run_config_from(ckpt, ckpt_path, out_dir=None)
    trainer = Trainer(cfg)
    try:
        trainer.algo.load_state_dict(ckpt["algorithm"])
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UserError(f"{ckpt_path}: does not fit {cfg.algo} on {cfg.scenario.name} ({first})") from None
    started = time.monotonic()
    evaluation = trainer.evaluate(episodes=episodes)
    wall = time.monotonic() - started
    oracle = trainer.oracle
    ref = oracle.kpis | {"team_return": oracle.team_return}
    result = {
        "checkpoint": str(ckpt_path), "scenario": cfg.scenario.name, "algo": cfg.algo,
        "env_steps": env_steps_of(ckpt), "episodes": episodes, "copies": trainer.env.n_envs,
        "kpis": {k: {"learned": _finite(v), "oracle": _finite(ref.get(k))} for k, v in evaluation.items()},
        "oracle_summary": oracle.summary, "wall_seconds": round(wall, 3),
    }
    where = run_dir if run_dir is not None else ckpt_path.parent
    out_file = where / "eval.json"
    o = _Out(stream)
    try:
        write_json(out_file, result)
    except OSError as exc:
        o.err(f"marl-tui: warning: could not write {out_file}: {exc.strerror}")
        out_file = None  # type: ignore[assignment]
    if as_json:
        o.say(json.dumps(result, indent=2))
        return 0
    o.say(f"marl-tui: greedy evaluation of {cfg.algo} on {cfg.scenario.name} after "
          f"{env_steps_of(ckpt):,} training steps: {episodes} episodes x {trainer.env.n_envs} copies")
    o.say(f"reference: {oracle.summary}")
    rows = [f"  {'kpi':<22}{'learned':>14}{'oracle':>14}"]
    rows += [f"  {k:<22}{fmt(v):>14}{fmt(ref.get(k)):>14}" for k, v in evaluation.items()]
    o.say("\n".join(rows))
    if out_file is not None:
        o.say(f"written: {out_file}")
    return 0
