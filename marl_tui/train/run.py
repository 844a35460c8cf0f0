"""One run: a Loop driven under Controls, its figures, and the callbacks that do the rest.

The Run owns pacing (pause, step n, speed, greedy view, stop: see controls.py) and the run's
figures (counters, last metrics and KPIs, bounded chart histories, a Stats snapshot a few
times a second for progress lines). Everything else is a callback's job (callbacks/): the
metrics CSV, checkpoints, the NaN guard, the app's live tap. The Run imports no callback and
no view; `build_run` (build.py) puts a run and its callbacks together.

Runs on one thread (the caller's, or `start_thread`); views on other threads read only
`stats` (an immutable snapshot) and talk to the run only through its Controls.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from marl_tui.algos.base import Algorithm
from marl_tui.algos.registry import make_algorithm, needs_discrete, resolve_hparams
from marl_tui.envs.base import BatchedEnv, DiscretisedEnv, Oracle, make_env
from marl_tui.errors import UserError
from marl_tui.train.controls import Controls
from marl_tui.train.evaluation import (
    EVALUATION_SEED_OFFSET,
    FINAL_ROUNDS,
    GREEDY_VIEW_SEED_OFFSET,
    EvaluationPlan,
    acting_on,
    evaluate,
    plan_evaluation,
)
from marl_tui.train.loop import EpisodeEnd, Loop, StepOutcome
from marl_tui.train.metrics import MetricsWriter
from marl_tui.train.run_config import RunConfig, resolve_device
from marl_tui.train.stats import BoundedSeries, RunningMeans, Stats


class Callback:
    """The hooks a Run calls (after BenchMARL's experiment callbacks); each callback has one job
    (callbacks/). Callbacks see the Run and what just happened; they never pace or step it. A
    callback that raises stops the run with its error (a TrainingFault names the quantity and
    the advice). Every hook does nothing by default; override the ones a job needs."""

    def on_start(self, run: Run) -> None:
        """The loop is about to take its first step of this session (after any resume)."""

    def on_update(self, run: Run, metrics: dict[str, float]) -> None:
        """One learning step happened; metrics are its declared scalars."""

    def on_step(self, run: Run, outcome: StepOutcome) -> None:
        """One training step, after its episode accounting (EpisodeEnd already announced)."""

    def on_greedy_step(self, run: Run, outcome: StepOutcome) -> None:
        """One step of the greedy view (no learning)."""

    def on_episode_end(self, run: Run, ended: EpisodeEnd) -> None:
        """A training episode finished in every copy."""

    def on_idle(self, run: Run) -> None:
        """The run is paused between steps and its controls changed (or it just paused)."""

    def on_checkpoint(self, run: Run, path: Path) -> None:
        """A checkpoint was written."""

    def on_end(self, run: Run) -> None:
        """The loop has ended: finished, stopped or failed (run.status says which)."""


@dataclass(frozen=True)
class StateBefore:
    """The env's state just before a step taken while paused: what a what-if replays that step
    from (train/whatif.py). Kept for paused steps only, so running at full speed costs nothing."""

    greedy: bool  # a step of the greedy view (else of training)
    step: int  # that loop's step count after it (StepOutcome.step)
    env_state: dict[str, torch.Tensor]  # env.get_state() before it


STATS_SECONDS = 0.1  # how often the Stats snapshot is renewed while running
# Default checkpoint interval, in batched steps (x parallel copies = env steps). Learners do a
# fixed amount of work per batched step, so this is roughly a minute of training for each.
CHECKPOINT_ITERATIONS = 2_000


class Run:
    def __init__(self, run: RunConfig, controls: Controls | None = None,
                 callbacks: Sequence[Callback] = ()) -> None:
        self.run_config = run
        self.scenario = run.scenario
        self.controls = controls or Controls()
        self.callbacks: list[Callback] = list(callbacks)
        self.device = resolve_device(run.device)
        self.seed = run.resolved_seed()
        self.hp = resolve_hparams(run.algo, run.scenario, run.overrides)
        self.total_steps = int(run.steps if run.steps is not None else self.hp.steps)
        self.env = self.make_env(run.n_envs, self.seed)
        buffer_size = getattr(self.hp, "buffer_size", None)
        if buffer_size is not None and buffer_size < self.env.n_envs:
            raise UserError(
                f"train.{run.algo}.buffer_size = {buffer_size} is smaller than one step of "
                f"{self.env.n_envs} copies: raise buffer_size or lower --envs"
            )
        self.oracle: Oracle = self.env.oracle()
        self.algo: Algorithm = make_algorithm(run.algo, self.env, self.hp, self.device)
        self.loop = Loop(self.env, self.algo, self.seed)
        # What acts and learns for this run: its own algo, or the learner several seeds share when
        # they train batched (train/seed_batch.py), whose figures are the current ones.
        self.learner: Algorithm = self.algo
        self.greedy: Loop | None = None  # the greedy view's own loop, made on first use
        self.greedy_means = RunningMeans()  # what the greedy view's finished episodes scored
        every = run.checkpoint_every
        self.checkpoint_every = CHECKPOINT_ITERATIONS * self.env.n_envs if every is None else int(every)
        # The run's figures at the latest step.
        self.metrics: dict[str, float] = {}
        self.kpis: dict[str, float] = {}
        self.team_return: float | None = None
        self.agent_returns: tuple[float, ...] = ()
        n = self.env.spec.n_agents
        self.team_history = BoundedSeries()
        self.agent_history = [BoundedSeries() for _ in range(n)]
        self.loss_history: dict[str, BoundedSeries] = {}
        self.status = "starting"
        self.error: str | None = None
        self.save_note: str | None = None  # one line about the last save, for views
        self.findings: tuple[str, ...] = ()  # what the doctor (learn/doctor.py) finds now, a line each
        self.state_before: StateBefore | None = None  # of the last step, if it was taken while paused
        self.last_checkpoint: Path | None = None
        self.last_checkpoint_step: int | None = None
        self.elapsed = 0.0  # seconds of training before this session (over every resume)
        self._segment_start: float | None = None
        self._rate: tuple[float, int] | None = (time.monotonic(), 0)  # (start, env steps) of the steps/s window
        self._sps = 0.0
        self._stats = Stats(status="starting", total_steps=self.total_steps)
        out = run.out_dir
        self.metrics_writer = MetricsWriter(out / "metrics.csv" if out else None, self.csv_columns())

    def make_env(self, n_envs: int | None, seed: int) -> BatchedEnv:
        """A copy of this run's env (as its algorithm sees it) with its own copies and seed."""
        env = make_env(self.scenario, n_envs=n_envs, seed=seed, device=self.device)
        if env.spec.action_space.kind == "continuous" and needs_discrete(self.run_config.algo):
            env = DiscretisedEnv(env)
        return env

    # ------------------------------------------------------------------ counters
    @property
    def iteration(self) -> int:
        return self.loop.step_count

    @property
    def env_steps(self) -> int:
        return self.loop.env_steps

    @property
    def episodes(self) -> int:
        return self.loop.episodes

    @property
    def updates(self) -> int:
        return self.loop.updates

    @property
    def greedy_steps(self) -> int:
        return 0 if self.greedy is None else self.greedy.step_count

    @property
    def learns(self) -> bool:
        return type(self.algo).update is not Algorithm.update

    def csv_columns(self) -> list[str]:
        names = [f"return_{i + 1}" for i in range(self.env.spec.n_agents)]
        return ["env_steps", "episodes", "updates", "team_return", *names, *self.oracle.kpis]

    # ------------------------------------------------------------------ the run
    def run(self, linger: bool = False) -> Stats:
        """Train until the budget is spent or the controls say stop. A fault ends up in
        `error` (and is raised); callbacks' on_end runs whatever happened.

        linger: once the budget is spent, the greedy view goes on answering (a view watching
        the final policy) until the controls say stop; nothing is learned or saved then."""
        self.begin()
        last_stats = 0.0
        try:
            while self.env_steps < self.total_steps:
                if not self.controls.wait_turn(on_idle=self._idle):
                    self.status = "stopped"
                    break
                self.resume_rate()
                if self.controls.greedy:
                    self._greedy_step()
                else:
                    self.train_step()
                now = time.monotonic()
                if now - last_stats >= STATS_SECONDS:
                    self.publish()
                    last_stats = now
            else:
                self.status = "finished"
        except Exception as exc:
            self.fail(exc)
            raise
        finally:
            self.end()
        if linger and self.status == "finished":
            while self.controls.wait_turn(on_idle=self._idle, greedy_only=True):
                self._greedy_step()
            self.publish()
        return self._stats

    def begin(self) -> None:
        """The loop is about to step (its first step, or its first after a resume)."""
        self.status = "running"
        self._rate = (time.monotonic(), self.env_steps)
        self._segment_start = time.monotonic()
        self._call("on_start")

    def resume_rate(self) -> None:
        if self._rate is None:  # the first step after a pause starts the steps/s window
            self._rate = (time.monotonic(), self.env_steps)

    def fail(self, exc: BaseException) -> None:
        """A fault stopped the loop: `error` names it and where it happened."""
        self.status = "error"
        where = traceback.extract_tb(exc.__traceback__)[-1]
        self.error = f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"

    def end(self) -> None:
        """The loop has ended (status says how): callbacks' on_end, whatever happened."""
        self.elapsed = self.elapsed_seconds()
        self._segment_start = None
        self.publish()
        self._call("on_end")
        self.publish()

    def train_step(self) -> None:
        metrics = self.loop.update_if_ready()
        if metrics is not None:
            self.record_update(metrics)
        before = self._env_state_if_paused(self.env)
        outcome, ended = self.loop.step()
        self._keep_state_before(False, outcome.step, before)
        self.after_step(outcome, ended)

    def record_update(self, metrics: dict[str, float]) -> None:
        """A learning step's metrics: the run's figures, then the callbacks' on_update."""
        self.metrics = metrics
        for k, v in metrics.items():
            self.loss_history.setdefault(k, BoundedSeries()).append(self.env_steps, v)
        self._call("on_update", metrics)

    def after_step(self, outcome: StepOutcome, ended: EpisodeEnd | None) -> None:
        """A training step was taken: its episode's end (if it ended one), then on_step."""
        if ended is not None:
            self._episode_ended(ended)
        self._call("on_step", outcome)
        if ended is not None and self.controls.state.pause_each_episode:
            self.controls.hold()

    def _episode_ended(self, ended: EpisodeEnd) -> None:
        self.team_return, self.agent_returns, self.kpis = ended.team_return, ended.agent_returns, ended.kpis
        self.team_history.append(ended.env_steps, ended.team_return)
        for series, value in zip(self.agent_history, ended.agent_returns, strict=True):
            series.append(ended.env_steps, value)
        self._call("on_episode_end", ended)

    def _greedy_step(self) -> None:
        """The greedy view: the policy without exploration plays a copy of its own; no learning."""
        if self.greedy is None:
            env = self.make_env(self.run_config.n_envs, self.seed + GREEDY_VIEW_SEED_OFFSET)
            self.greedy = Loop(env, self.algo, seed=None, learn=False)
        before = self._env_state_if_paused(self.greedy.env)
        with acting_on(self.algo, self.greedy.env), torch.no_grad():
            outcome, ended = self.greedy.step()
        self._keep_state_before(True, outcome.step, before)
        if ended is not None:
            self.greedy_means.add(ended.team_return, ended.agent_returns, ended.kpis)
        self._call("on_greedy_step", outcome)
        if ended is not None and self.controls.state.pause_each_episode:
            self.controls.hold()

    def _env_state_if_paused(self, env: BatchedEnv) -> dict[str, torch.Tensor] | None:
        return env.get_state() if self.controls.paused else None

    def _keep_state_before(self, greedy: bool, step: int, env_state: dict[str, torch.Tensor] | None) -> None:
        self.state_before = None if env_state is None else StateBefore(greedy, step, env_state)

    def _idle(self) -> None:
        self.publish()
        self._call("on_idle")

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def last_outcome(self, greedy: bool) -> StepOutcome | None:
        """The newest step of the training loop or of the greedy view, if any."""
        loop = self.greedy if greedy else self.loop
        return loop.recent[-1] if loop is not None and loop.recent else None

    # ------------------------------------------------------------------ figures
    def publish(self) -> None:
        """Renew the Stats snapshot (any thread may read `stats`)."""
        now = time.monotonic()
        if self.controls.paused:  # time paused is no training time: the window restarts after
            self._rate = None
        elif self._rate is not None and now - self._rate[0] >= 1.0:
            t0, s0 = self._rate
            self._sps = (self.env_steps - s0) / (now - t0)
            self._rate = (now, self.env_steps)
        status = self.status
        if status == "running" and self.controls.paused:
            status = "paused"
        self._stats = Stats(
            status=status, iteration=self.iteration, greedy_steps=self.greedy_steps,
            env_steps=self.env_steps, total_steps=self.total_steps, episodes=self.episodes,
            updates=self.updates, steps_per_second=self._sps, exploration=self.learner.exploration(),
            metrics=dict(self.metrics), kpis=dict(self.kpis), team_return=self.team_return,
            agent_returns=self.agent_returns, team_history=self.team_history.snapshot(),
            agent_history=tuple(s.snapshot() for s in self.agent_history),
            loss_history={k: s.snapshot() for k, s in self.loss_history.items()},
            error=self.error, save_note=self.save_note,
        )

    @property
    def stats(self) -> Stats:
        return self._stats

    def elapsed_seconds(self) -> float:
        """Wall seconds of training over the whole run (resumes included)."""
        start = self._segment_start
        return self.elapsed + (time.monotonic() - start if start is not None else 0.0)

    def non_finite_parameter(self) -> str | None:
        """The name of the first network parameter holding NaN/inf, or None (one sync)."""
        params = [(f"{attr}.{name}", p) for attr, module in vars(self.algo).items()
                  if isinstance(module, torch.nn.Module)
                  for name, p in module.named_parameters()]
        if not params:
            return None
        ok = torch.stack([torch.isfinite(p).all() for _, p in params])
        if bool(ok.all()):
            return None
        return params[int((~ok).nonzero()[0])][0]

    # ------------------------------------------------------------------ checkpoints
    def loop_state(self) -> dict[str, Any]:
        """The run's own state for a checkpoint: the loop's counters, accumulators and current
        observation, and the figures and histories. Plain data and tensors only."""
        return {
            **self.loop.state_dict(),
            "metrics": dict(self.metrics), "kpis": dict(self.kpis),
            "team_return": self.team_return, "agent_returns": list(self.agent_returns),
            "team_history": self.team_history.state_dict(),
            "agent_history": [s.state_dict() for s in self.agent_history],
            "loss_history": {k: s.state_dict() for k, s in self.loss_history.items()},
            "elapsed": self.elapsed_seconds(),
        }

    def load_loop_state(self, s: dict[str, Any]) -> None:
        self.loop.load_state_dict(s)
        self.metrics = {k: float(v) for k, v in s["metrics"].items()}
        self.kpis = {k: float(v) for k, v in s["kpis"].items()}
        self.team_return = None if s["team_return"] is None else float(s["team_return"])
        self.agent_returns = tuple(float(x) for x in s["agent_returns"])
        self.team_history.load_state_dict(s["team_history"])
        if len(s["agent_history"]) != len(self.agent_history):
            raise ValueError(f"{len(s['agent_history'])} agents saved, {len(self.agent_history)} here")
        for series, saved in zip(self.agent_history, s["agent_history"], strict=True):
            series.load_state_dict(saved)
        self.loss_history = {}
        for k, saved in s["loss_history"].items():
            self.loss_history[k] = BoundedSeries()
            self.loss_history[k].load_state_dict(saved)
        self.elapsed = float(s.get("elapsed", 0.0))
        self.publish()

    def checkpoint_written(self, path: Path) -> None:
        """A checkpoint of this step now exists at `path` (the Checkpointer wrote it)."""
        self.last_checkpoint, self.last_checkpoint_step = path, self.env_steps
        self.save_note = f"saved checkpoint at env step {self.env_steps:,}: {path}"
        self._call("on_checkpoint", path)

    # ------------------------------------------------------------------ threads, evaluation
    def start_thread(self) -> threading.Thread:
        """Run in a daemon thread; errors stay in `error`."""

        def target() -> None:
            with contextlib.suppress(Exception):  # already in error for the view
                self.run()

        thread = threading.Thread(target=target, name="marl-tui-run", daemon=True)
        thread.start()
        return thread

    def evaluate(self, episodes: int | None = None, plan: EvaluationPlan | None = None,
                 on_step: Callable[[int], None] | None = None,
                 stop: Callable[[], bool] | None = None) -> dict[str, float] | None:
        """Greedy play on an env of its own seed: the scenario's KPIs and team return over exactly
        `episodes` episodes (default: FINAL_ROUNDS of every copy), or as `plan` says (see
        evaluation.evaluate for on_step and stop)."""
        copies = self.env.n_envs
        plan = plan or plan_evaluation(episodes or FINAL_ROUNDS * copies, self.scenario.episode_length,
                                       sys.maxsize, copies)
        env = self.make_env(plan.copies, self.seed + EVALUATION_SEED_OFFSET)
        return evaluate(self.algo, env, plan, on_step=on_step, stop=stop)
