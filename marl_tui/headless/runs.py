"""`marl-tui train` and `marl-tui resume`: the trainer in a worker thread, the main thread
showing progress and owning the signal handlers, then the ending (evaluation, chart, table,
summary.json, exit code).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from marl_tui.config import Scenario
from marl_tui.errors import UserError
from marl_tui.headless.output import EvaluationProgress, Out, Progress, is_tty, json_safe
from marl_tui.headless.report import (
    final_table,
    reference_of,
    run_summary,
    team_return_chart,
    write_result,
)
from marl_tui.headless.signals import StopOnSignal, signal_name
from marl_tui.train.rundir import (
    check_new,
    default_run_dir,
    init_run_dir,
    lock_run_dir,
    write_run_config,
)
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
    o = Out(stream)
    with StopOnSignal(o) as signals:  # from the start: a signal in start-up is answered too
        from marl_tui.algos.registry import algorithm_class
        from marl_tui.train.build import build_run
        from marl_tui.train.run_config import RunConfig

        algorithm_class(algo)  # unknown names fail before anything is written
        run_seed = scenario.seed if seed is None else seed
        run_dir = out if out is not None else default_run_dir(scenario.name, algo, run_seed)
        check_new(run_dir)  # before anything is built: the trainer opens its metrics.csv there
        cfg = RunConfig(scenario=scenario, algo=algo, steps=steps, seed=seed, n_envs=n_envs,
                        device=device, overrides=overrides, out_dir=run_dir,
                        checkpoint_every=checkpoint_every)
        trainer = build_run(cfg)  # validates everything before the folder is made
        if signals.signum is not None:
            o.err(f"marl-tui: stopped by {signal_name(signals.signum).split(' ')[0]} during start-up, "
                  "before the run directory was made; nothing was written; start again with the "
                  "same command")
            return 128 + signals.signum
        init_run_dir(trainer, run_dir)
        lock = lock_run_dir(run_dir)
        # A signal from here on stops the trainer; before its first step it saves a checkpoint
        # at step 0, so the run directory is always one that resume continues.
        signals.attach(trainer)
        try:
            if not jsonl:
                o.say(f"marl-tui: training {algo} on {scenario.name} for {trainer.total_steps:,} steps "
                      f"({trainer.env.n_envs} copies, seed {run_seed}, {trainer.device}) -> {run_dir}")
                o.say(f"reference: {trainer.oracle.summary}")
            return drive(trainer, run_dir, o, jsonl, signals)
        finally:
            lock.close()


def resume_headless(target: Path, steps: int | None, device: str | None = None, jsonl: bool = False,
                    stream: TextIO | None = None) -> int:
    """`marl-tui resume RUN_DIR`: continue a run exactly where its last checkpoint left it.

    steps: a new total budget counted from the run's start (not extra steps); None: the run's
    own, or the one its config.toml was edited to."""
    o = Out(stream)
    with StopOnSignal(o) as signals:
        from marl_tui.train.build import build_run
        from marl_tui.train.checkpoint import env_steps_of, find_checkpoint, read_checkpoint
        from marl_tui.train.resume import check_belongs, restore_state, run_config_from, steps_in_config_file

        ckpt_path, run_dir = find_checkpoint(target)
        if run_dir is None:
            raise UserError(f"{target}: resume continues a run directory (the folder holding "
                            "checkpoints/); to train on from a loose checkpoint use `marl-tui run "
                            "--load` or copy it into RUN_DIR/checkpoints/latest.pt")
        ckpt = read_checkpoint(ckpt_path)
        if device is not None and device not in ("auto", "cpu", "cuda"):
            raise UserError(f"--device {device!r}: choose auto, cpu or cuda")
        # The checkpoint's own settings first: a bad value in it is the checkpoint's problem.
        cfg = run_config_from(ckpt, ckpt_path, out_dir=run_dir, device=device)
        check_belongs(ckpt, ckpt_path, run_dir)
        edited = steps_in_config_file(ckpt, run_dir)
        done, total = env_steps_of(ckpt), int(ckpt["config"]["total_steps"])
        asked = "--steps"
        if steps is None and edited is not None:
            steps, asked = edited, f"{run_dir / 'config.toml'}: run.steps ="
        if steps is not None and steps <= done:
            raise UserError(f"{asked} {steps:,}: this run is already at step {done:,}; the budget is the "
                            f"total from the run's start, so give more than {done:,}")
        if steps is None and done >= total:
            raise UserError(f"{run_dir}: this run is finished ({done:,} of {total:,} steps); give a larger "
                            f"total with --steps (e.g. --steps {2 * total:,}), or evaluate it with "
                            f"`marl-tui eval {run_dir}`")
        if steps is not None:
            cfg = dataclasses.replace(cfg, steps=steps)
        trainer = build_run(cfg)
        restore_state(trainer, ckpt, ckpt_path)  # in memory: a bad checkpoint changes no file
        if signals.signum is not None:
            o.err(f"marl-tui: stopped by {signal_name(signals.signum).split(' ')[0]} during start-up; "
                  f"nothing was changed; continue with: {_resume_hint(run_dir)}")
            return 128 + signals.signum
        lock = lock_run_dir(run_dir)  # before anything in the folder changes
        try:
            warning = trainer.metrics_writer.restore(ckpt["metrics_writer"], True, trainer.env_steps)
            if warning:
                o.err(f"marl-tui: warning: {warning}")
            write_run_config(trainer, run_dir)  # the budget and device it now trains with
            signals.attach(trainer)
            if not jsonl:
                o.say(f"marl-tui: resuming {cfg.algo} on {cfg.scenario.name} at step {done:,} of "
                      f"{trainer.total_steps:,} ({trainer.env.n_envs} copies, seed {trainer.seed}, "
                      f"{trainer.device}) <- {ckpt_path}")
                o.say(f"reference: {trainer.oracle.summary}")
            return drive(trainer, run_dir, o, jsonl, signals)
        finally:
            lock.close()


def drive(trainer: Run, run_dir: Path, o: Out, jsonl: bool, signals: StopOnSignal) -> int:
    """Run the trainer in a worker thread with progress, then the ending, all under `signals`."""
    started_steps = trainer.env_steps
    started = time.monotonic()
    follow(trainer.start_thread(), trainer, o, jsonl, signals)
    return ending(trainer, run_dir, o, jsonl, signals, time.monotonic() - started, started_steps)


def follow(thread: threading.Thread, trainer: Run, o: Out, jsonl: bool, signals: StopOnSignal) -> None:
    """Show `trainer`'s progress, its doctor's findings and failed saves until `thread` (the
    training) ends."""
    from marl_tui.train.allocator import keep_freed_memory

    keep_freed_memory()  # this process trains: no page faults step after step
    progress = Progress(o, trainer, jsonl)
    notes_seen = None
    findings_seen: tuple[str, ...] = ()
    signals.phase = "training"
    try:
        while thread.is_alive():
            thread.join(timeout=0.1)
            if signals.notice:
                progress.close()
                o.err(signals.notice)
                signals.notice = None
            progress.tick()
            if trainer.findings != findings_seen:
                findings_seen = trainer.findings
                for line in findings_seen:
                    o.err(f"marl-tui: doctor: {line}")
            note = trainer.save_note
            if note != notes_seen:
                notes_seen = note
                if note and note.startswith("checkpoint not saved"):
                    o.err(f"marl-tui: warning: {note}; training goes on (it saves again at the next "
                          "checkpoint)")
    finally:
        progress.close()


def ending(trainer: Run, run_dir: Path, o: Out, jsonl: bool, signals: StopOnSignal, wall: float,
           started_steps: int) -> int:
    """How the training ended, said and written (summary.json); the final evaluation when it
    finished. Returns the exit code."""
    stats = trainer.stats
    summary = run_summary(trainer, stats, wall, stats.env_steps - started_steps)
    if stats.error:
        return _ended_in_error(trainer, run_dir, o, stats, summary)
    if stats.status == "stopped":
        return _ended_by_stop(trainer, run_dir, o, jsonl, stats, summary, signals.signum)
    return _finished(trainer, run_dir, o, jsonl, stats, summary, wall, stats.env_steps - started_steps,
                     signals)


def _resume_hint(run_dir: Path) -> str:
    return f"marl-tui resume {run_dir}"


def _checkpoint_on_disk(trainer: Run) -> int | None:
    """The step of the last checkpoint this run saved, if its file is still there (the run
    directory may have been deleted meanwhile)."""
    path = trainer.last_checkpoint
    return trainer.last_checkpoint_step if path is not None and path.is_file() else None


def _ended_in_error(trainer: Run, run_dir: Path, o: Out, stats: Stats, summary: dict[str, Any]) -> int:
    """A fault stopped the loop: one line saying where, and the last good checkpoint. Exit 1."""
    last = _checkpoint_on_disk(trainer)
    if not run_dir.is_dir():
        keep = "the run directory no longer exists (deleted while training?): nothing to resume"
    elif last is not None:
        keep = f"last good checkpoint at step {last:,} ({_resume_hint(run_dir)})"
    else:
        keep = "no checkpoint was saved"
    summary["error"] = stats.error
    if run_dir.is_dir():
        write_result(run_dir / "summary.json", summary, o)
    o.err(f"marl-tui: training stopped at step {stats.env_steps:,}: {stats.error}; run directory "
          f"{run_dir}, {keep}")
    return 1


def _interrupted(summary: dict[str, Any], signum: int | None, phase: str, hint: str) -> None:
    summary["status"] = "interrupted"
    summary["phase"] = phase
    summary["signal"] = signal_name(signum).split(" ")[0]
    summary["resume"] = hint


def _ended_by_stop(trainer: Run, run_dir: Path, o: Out, jsonl: bool, stats: Stats,
                   summary: dict[str, Any], signum: int | None) -> int:
    """A signal (or a stop) ended the loop: how to continue. Exit 128 + the signal number."""
    name = signal_name(signum).split(" ")[0]
    last = _checkpoint_on_disk(trainer)
    if not run_dir.is_dir():
        o.err(f"marl-tui: stopped by {name} at step {stats.env_steps:,}; the run directory {run_dir} "
              "no longer exists (deleted while training?): nothing to resume; start again with "
              "`marl-tui train`")
        return 128 + signum if signum is not None else 130
    resume_hint = _resume_hint(run_dir)
    _interrupted(summary, signum, "start-up" if stats.env_steps == 0 else "training", resume_hint)
    write_result(run_dir / "summary.json", summary, o)
    if jsonl:
        o.say(json.dumps({"stopped": summary["signal"], "env_steps": stats.env_steps,
                          "checkpoint": summary["checkpoint"], "resume": resume_hint}))
    if last == stats.env_steps:
        saved = f"checkpoint saved at step {last:,}"
    elif last is not None:
        saved = f"checkpoint NOT saved ({trainer.save_note}); the last good one is at step {last:,}"
    else:
        saved = f"checkpoint NOT saved ({trainer.save_note})"
    hint = f"continue with: {resume_hint}" if last is not None else "start again with `marl-tui train`"
    o.err(f"marl-tui: stopped by {name} at step {stats.env_steps:,} of {trainer.total_steps:,}; "
          f"{saved}; {hint}")
    return 128 + signum if signum is not None else 130


def _evaluate(trainer: Run, o: Out, jsonl: bool, signals: StopOnSignal) -> dict[str, float] | None:
    """The final greedy evaluation as a phase: bounded by the training budget, with progress,
    stopped by a signal like training (None then)."""
    from marl_tui.train.evaluation import FINAL_ROUNDS, evaluation_cap, plan_evaluation

    signals.phase = "evaluation"
    copies = trainer.env.n_envs
    plan = plan_evaluation(FINAL_ROUNDS * copies, trainer.scenario.episode_length,
                           evaluation_cap(trainer.total_steps, copies), copies)
    if jsonl:
        o.say(json.dumps({"phase": "evaluation", "episodes": plan.episodes, "steps": plan.steps}))
    else:
        o.say(f"marl-tui: greedy evaluation: {plan.describe()}")
    progress = EvaluationProgress(o, plan.steps, jsonl)
    try:
        return trainer.evaluate(plan.episodes, plan=plan, on_step=progress.tick, stop=signals.stopped)
    finally:
        progress.close()
        if signals.notice:
            o.err(signals.notice)
            signals.notice = None


def _finished(trainer: Run, run_dir: Path, o: Out, jsonl: bool, stats: Stats,
              summary: dict[str, Any], wall: float, steps_here: int, signals: StopOnSignal) -> int:
    """The budget is done: greedy evaluation, chart, KPI table. Exit 0 (128 + the signal number
    when one stopped the evaluation or came while summary.json was written)."""
    last = _checkpoint_on_disk(trainer)
    if last != stats.env_steps:
        o.err(f"marl-tui: warning: the final checkpoint was not saved ({trainer.save_note}); "
              + (f"the last good one is at step {last:,}" if last is not None else "none is on disk"))
    evaluation = _evaluate(trainer, o, jsonl, signals)  # after the final checkpoint: it may draw random numbers
    signals.phase = "summary"
    if evaluation is not None:
        summary["kpis"] = evaluation
    if not run_dir.is_dir():
        o.err(f"marl-tui: the run directory {run_dir} no longer exists (deleted while training?); "
              "summary.json not written")
        return 1
    eval_hint = f"marl-tui eval {run_dir}"
    while True:  # a signal that comes while summary.json is written is answered by writing it again
        signum = signals.signum
        if signum is not None:
            _interrupted(summary, signum, "evaluation" if evaluation is None else "summary", eval_hint)
        write_result(run_dir / "summary.json", summary, o)
        if signals.signum == signum:
            break
    if signum is not None:
        name = signal_name(signum).split(" ")[0]
        if jsonl:
            o.say(json.dumps({"stopped": name, "env_steps": stats.env_steps,
                              "checkpoint": summary["checkpoint"], "resume": eval_hint}))
        what = "the final evaluation" if evaluation is None else "the summary"
        o.err(f"marl-tui: stopped by {name} during {what}; training finished at step "
              f"{stats.env_steps:,} (checkpoint saved at step {last:,}); evaluate with: {eval_hint}"
              if last is not None else
              f"marl-tui: stopped by {name} during {what}; training finished at step "
              f"{stats.env_steps:,}, but no checkpoint is on disk")
        return 128 + signum
    assert evaluation is not None  # no signal: the evaluation ran to its end
    if jsonl:
        o.say(json.dumps({"summary": str(run_dir / "summary.json"), "kpis": json_safe(evaluation)}))
        return 0
    chart = team_return_chart(stats, trainer.oracle.team_return, color=is_tty(o.stream))
    if chart:
        o.say(chart, raw=True)
    o.say(final_table(evaluation, reference_of(trainer), stats, trainer.elapsed_seconds(),
                      resumed_at=stats.env_steps - steps_here, part_seconds=wall))
    o.say(f"run directory: {run_dir}  (evaluate again: marl-tui eval {run_dir}; "
          f"train on: marl-tui resume {run_dir} --steps N)")
    return 0
