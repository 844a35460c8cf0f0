"""`marl-tui train` and `marl-tui resume`: the trainer in a worker thread, the main thread
showing progress and owning the signal handlers, then the ending (evaluation, chart, table,
summary.json, exit code).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from marl_tui.config import Scenario
from marl_tui.errors import UserError
from marl_tui.headless.output import Out, Progress, is_tty, json_safe
from marl_tui.headless.report import (
    final_table,
    reference_of,
    run_summary,
    team_return_chart,
    write_result,
)
from marl_tui.headless.signals import StopOnSignal, signal_name
from marl_tui.train.rundir import default_run_dir, init_run_dir, lock_run_dir, write_run_config
from marl_tui.train.stats import Stats

if TYPE_CHECKING:
    from marl_tui.train.run import Run


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
    from marl_tui.train.build import build_run
    from marl_tui.train.run_config import RunConfig

    algorithm_class(algo)  # unknown names fail before anything is written
    run_seed = scenario.seed if seed is None else seed
    run_dir = out if out is not None else default_run_dir(scenario.name, algo, run_seed)
    cfg = RunConfig(scenario=scenario, algo=algo, steps=steps, seed=seed, n_envs=n_envs,
                    device=device, overrides=overrides, out_dir=run_dir,
                    checkpoint_every=checkpoint_every)
    trainer = build_run(cfg)  # validates everything before the folder is made
    init_run_dir(trainer, run_dir)
    lock = lock_run_dir(run_dir)
    o = Out(stream)
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
    from marl_tui.train.build import build_run
    from marl_tui.train.checkpoint import env_steps_of, find_checkpoint, read_checkpoint
    from marl_tui.train.resume import check_belongs, restore_state, run_config_from

    ckpt_path, run_dir = find_checkpoint(target)
    if run_dir is None:
        raise UserError(f"{target}: resume continues a run directory (the folder holding "
                        "checkpoints/); to train on from a loose checkpoint use `marl-tui run "
                        "--load` or copy it into RUN_DIR/checkpoints/latest.pt")
    ckpt = read_checkpoint(ckpt_path)
    check_belongs(ckpt, ckpt_path, run_dir)
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
    trainer = build_run(cfg)
    restore_state(trainer, ckpt, ckpt_path)  # in memory: a bad checkpoint changes no file
    lock = lock_run_dir(run_dir)  # before anything in the folder changes
    try:
        warning = trainer.metrics_writer.restore(ckpt["metrics_writer"], True, trainer.env_steps)
        o = Out(stream)
        if warning:
            o.err(f"marl-tui: warning: {warning}")
        if steps is not None:
            write_run_config(trainer, run_dir)  # the new budget
        if not jsonl:
            o.say(f"marl-tui: resuming {cfg.algo} on {cfg.scenario.name} at step {done:,} of "
                  f"{trainer.total_steps:,} ({trainer.env.n_envs} copies, seed {trainer.seed}, "
                  f"{trainer.device}) <- {ckpt_path}")
            o.say(f"reference: {trainer.oracle.summary}")
        return drive(trainer, run_dir, o, jsonl)
    finally:
        lock.close()


def drive(trainer: Run, run_dir: Path, o: Out, jsonl: bool) -> int:
    """Run the trainer in a worker thread with signal handlers, progress, and the ending."""
    from marl_tui.train.allocator import keep_freed_memory

    keep_freed_memory()  # this process trains: no page faults step after step
    started_steps = trainer.env_steps
    started = time.monotonic()
    progress = Progress(o, trainer, jsonl)
    notes_seen = None
    with StopOnSignal(trainer, o) as signals:
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
    summary = run_summary(trainer, stats, wall, stats.env_steps - started_steps)
    if stats.error:
        return _ended_in_error(trainer, run_dir, o, stats, summary)
    if signum is not None or stats.status == "stopped":
        return _ended_by_stop(trainer, run_dir, o, jsonl, stats, summary, signum)
    return _finished(trainer, run_dir, o, jsonl, stats, summary, wall, stats.env_steps - started_steps)


def _resume_hint(run_dir: Path) -> str:
    return f"marl-tui resume {run_dir}"


def _ended_in_error(trainer: Run, run_dir: Path, o: Out, stats: Stats, summary: dict[str, Any]) -> int:
    """A fault stopped the loop: one line saying where, and the last good checkpoint. Exit 1."""
    last = trainer.last_checkpoint_step
    keep = (f"last good checkpoint at step {last:,} ({_resume_hint(run_dir)})" if last is not None
            else "no checkpoint was saved")
    summary["error"] = stats.error
    write_result(run_dir / "summary.json", summary, o)
    o.err(f"marl-tui: training stopped at step {stats.env_steps:,}: {stats.error}; run directory "
          f"{run_dir}, {keep}")
    return 1


def _ended_by_stop(trainer: Run, run_dir: Path, o: Out, jsonl: bool, stats: Stats,
                   summary: dict[str, Any], signum: int | None) -> int:
    """A signal (or a stop) ended the loop: how to continue. Exit 128 + the signal number."""
    resume_hint = _resume_hint(run_dir)
    summary["status"] = "interrupted"
    summary["signal"] = signal_name(signum).split(" ")[0]
    summary["resume"] = resume_hint
    write_result(run_dir / "summary.json", summary, o)
    if jsonl:
        o.say(json.dumps({"stopped": summary["signal"], "env_steps": stats.env_steps,
                          "checkpoint": summary["checkpoint"], "resume": resume_hint}))
    saved = (f"checkpoint saved at step {trainer.last_checkpoint_step:,}"
             if trainer.last_checkpoint_step == stats.env_steps else
             f"checkpoint NOT saved ({trainer.save_note})")
    o.err(f"marl-tui: stopped by {summary['signal']} at step {stats.env_steps:,} of "
          f"{trainer.total_steps:,}; {saved}; continue with: {resume_hint}")
    return 128 + signum if signum is not None else 130


def _finished(trainer: Run, run_dir: Path, o: Out, jsonl: bool, stats: Stats,
              summary: dict[str, Any], wall: float, steps_here: int) -> int:
    """The budget is done: greedy evaluation, chart, KPI table. Exit 0."""
    evaluation = trainer.evaluate()  # after the final checkpoint: it may draw random numbers
    summary["kpis"] = evaluation
    write_result(run_dir / "summary.json", summary, o)
    if jsonl:
        o.say(json.dumps({"summary": str(run_dir / "summary.json"), "kpis": json_safe(evaluation)}))
        return 0
    chart = team_return_chart(stats, trainer.oracle.team_return, color=is_tty(o.stream))
    if chart:
        o.say(chart)
    o.say(final_table(evaluation, reference_of(trainer), wall, stats, steps_here))
    o.say(f"run directory: {run_dir}  (evaluate again: marl-tui eval {run_dir}; "
          f"train on: marl-tui resume {run_dir} --steps N)")
    return 0
