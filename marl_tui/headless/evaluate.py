"""`marl-tui eval`: greedy play of a checkpoint's policy, its KPIs against the oracle (eval.json)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TextIO

from marl_tui.errors import UserError
from marl_tui.headless.output import EvaluationProgress, Out, finite
from marl_tui.headless.report import kpi_rows, reference_of, write_result
from marl_tui.headless.signals import StopOnSignal, signal_name


def evaluate_checkpoint(target: Path, episodes: int, as_json: bool = False,
                        stream: TextIO | None = None, device: str = "cpu") -> int:
    """Greedy play of a checkpoint's policy on `device`; writes eval.json beside the run.

    Bounded like a run's final evaluation (train/evaluation.py: evaluation_cap), with progress,
    and stopped by SIGINT/SIGTERM/SIGHUP (exit 128 + the signal; eval.json not written)."""
    o = Out(stream)
    with StopOnSignal(o) as signals:
        from marl_tui.train.build import build_run
        from marl_tui.train.checkpoint import env_steps_of, find_checkpoint, read_checkpoint
        from marl_tui.train.evaluation import evaluation_cap, plan_evaluation
        from marl_tui.train.resume import load_algorithm, run_config_from

        if episodes <= 0:
            raise UserError(f"--episodes {episodes}: give a positive number of episodes")
        ckpt_path, run_dir = find_checkpoint(target)
        ckpt = read_checkpoint(ckpt_path)
        cfg = run_config_from(ckpt, ckpt_path, out_dir=None, device=device)
        trainer = build_run(cfg)
        load_algorithm(trainer, ckpt, ckpt_path)
        copies = trainer.env.n_envs
        plan = plan_evaluation(episodes, cfg.scenario.episode_length,
                               evaluation_cap(trainer.total_steps, copies), copies)
        signals.phase = "evaluation"
        progress = EvaluationProgress(o, plan.steps, jsonl=False)
        started = time.monotonic()
        try:
            evaluation = trainer.evaluate(plan.episodes, plan=plan, on_step=progress.tick, stop=signals.stopped)
        finally:
            progress.close()
        wall = time.monotonic() - started
        if evaluation is None or signals.signum is not None:
            signum = signals.signum or 2
            o.err(f"marl-tui: stopped by {signal_name(signum).split(' ')[0]} during the evaluation; "
                  "eval.json not written")
            return 128 + signum
    oracle = trainer.oracle
    ref = reference_of(trainer)
    result = {
        "checkpoint": str(ckpt_path), "scenario": cfg.scenario.name, "algo": cfg.algo,
        "env_steps": env_steps_of(ckpt), "episodes": plan.episodes, "steps": plan.steps,
        "partial_episode": plan.partial, "copies": plan.copies,
        "kpis": {k: {"learned": finite(v), "oracle": finite(ref.get(k))} for k, v in evaluation.items()},
        "oracle_summary": oracle.summary, "wall_seconds": round(wall, 3),
    }
    where = run_dir if run_dir is not None else ckpt_path.parent
    out_file = where / "eval.json"
    written = write_result(out_file, result, o)
    if as_json:
        o.say(json.dumps(result, indent=2))
        return 0
    o.say(f"marl-tui: greedy evaluation of {cfg.algo} on {cfg.scenario.name} after "
          f"{env_steps_of(ckpt):,} training steps: {plan.describe()}")
    o.say(f"reference: {oracle.summary}")
    o.say("\n".join(kpi_rows(evaluation, ref)))
    if written:
        o.say(f"written: {out_file}")
    return 0
