"""One training loop for every algorithm: act -> env.step -> observe -> update.

Runs on a worker thread: of `marl-tui train` (headless), or of the app's training
process (worker.py). It obeys Controls (pause, step n, speed, greedy view, stop),
publishes StepRecords into a bounded queue and a fresh immutable Stats snapshot a
few dozen times a second (publish_hook sees each one), and imports no view.

With a run directory it also keeps checkpoints there (see checkpoint.py): every
`checkpoint_every` environment steps (counted in env steps, never wall time, so a
resumed run repeats the uninterrupted one exactly), when a view asks
(Controls.request_save(), the app's `s`), and when the loop ends (finished or
stopped). A checkpoint is never written with non-finite parameters: the last good
one stays.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from marl_tui.algos.base import Algorithm, Transition
from marl_tui.algos.registry import make_algorithm, needs_discrete, resolve_hparams
from marl_tui.envs.base import BatchedEnv, DiscretisedEnv, Oracle, make_env
from marl_tui.errors import UserError
from marl_tui.train.allocator import keep_freed_memory
from marl_tui.train.controls import Controls
from marl_tui.train.evaluation import EVALUATION_SEED_OFFSET, GREEDY_VIEW_SEED_OFFSET, acting_on, evaluate
from marl_tui.train.metrics import MetricsWriter
from marl_tui.train.records import BoundedSeries, RecordQueue, Stats, StepRecord

# The trainer's public API includes the run description it is built from.
from marl_tui.train.run_config import RunConfig, resolve_device, seed_everything  # noqa: F401

PUBLISH_SECONDS = 0.1  # how often a fresh Stats snapshot is made for views (the app polls 10 times a second)
# Paused, stepped or speed-limited runs record every step, and so do runs whose records cost
# under RECORD_SHARE of a step. Otherwise (fast steps at full speed, where nobody can follow
# single steps and a record costs up to ~12 % of a step) bursts of consecutive steps, enough for
# the panels' short histories, are recorded: each at most RECORD_BURST steps or
# RECORD_BURST_SECONDS long, RECORD_SECONDS after the last, and no sooner than keeps
# records under RECORD_SHARE of the loop (building them; the app's training process spends
# about as much again sending them). Shares count the loop thread's CPU time: a pause, or
# other programs taking the CPU, is no time in which the loop could have paid for records.
# 100 steps fill a price trail across a 120-column screen; a full-speed scene panel redraws
# twice a second, so bursts every second or so keep it as fresh as a reader can follow.
RECORD_SHARE = 0.005
RECORD_BURST = 100
RECORD_BURST_SECONDS = 0.1
RECORD_SECONDS = 0.25
# Default checkpoint interval, in batched steps (x parallel copies = env steps). Learners do a
# fixed amount of work per batched step, so this is roughly a minute of training for each.
CHECKPOINT_ITERATIONS = 2_000
PARAMETER_CHECK_UPDATES = 50  # look for NaN/inf in the networks every this many updates


class TrainingFault(RuntimeError):
    """Training produced NaN/inf: stop with a message naming the quantity and the guide's advice."""


ADVICE = (
    "the study guide's Part 7: lower the learning rates, use a larger replay buffer or smaller "
    "tau (MADDPG), check the advantages and returns (MAPPO)"
)


def _plain(x: torch.Tensor) -> float | tuple[float, ...]:
    """A tensor as plain Python for views: a float, or a flat tuple of floats. (One tolist and
    float() in Python: a record is made per step, and each torch op costs microseconds.)"""
    x = x.detach().cpu()
    if x.dim() == 0:
        return float(x.item())
    return tuple(float(v) for v in (x if x.dim() == 1 else x.reshape(-1)).tolist())


class Trainer:
    def __init__(self, run: RunConfig, controls: Controls | None = None) -> None:
        keep_freed_memory()  # the process that trains: no page faults step after step
        self.run_config = run
        self.scenario = run.scenario
        self.controls = controls or Controls()
        self.device = resolve_device(run.device)
        self.seed = run.resolved_seed()
        self.hp = resolve_hparams(run.algo, run.scenario, run.overrides)
        self.total_steps = int(run.steps if run.steps is not None else self.hp.steps)
        seed_everything(self.seed)
        self.env = self._make_env(run.n_envs, self.seed)
        buffer_size = getattr(self.hp, "buffer_size", None)
        if buffer_size is not None and buffer_size < self.env.n_envs:
            raise UserError(
                f"train.{run.algo}.buffer_size = {buffer_size} is smaller than one step of "
                f"{self.env.n_envs} copies: raise buffer_size or lower --envs"
            )
        self.oracle: Oracle = self.env.oracle()
        self.algo: Algorithm = make_algorithm(run.algo, self.env, self.hp, self.device)
        # Held while the loop acts/learns and while a view asks explain(): never torn weights.
        self._algo_lock = threading.Lock()
        self.records = RecordQueue()
        # A caller nobody watches step by step (headless, benchmarks) turns records off.
        self.record_steps = True
        self._burst_left = 0
        self._burst_until = -math.inf  # when the current (or last) burst ends
        self._burst_start = -math.inf  # loop CPU time (time.thread_time) when the last burst began
        self._step_cpu_at: float | None = None  # loop CPU time at the last full-speed step
        self._step_seconds = 0.0  # running means: a loop step (CPU), and building one record
        self._record_seconds = 0.0
        self._recording = 0.0  # seconds spent building records, all told
        self._recording_at_burst = 0.0
        # The last training step when it was not recorded (its tensors, t, episode): a pause
        # records it, so a paused screen shows the step it stopped on.
        self._unrecorded: tuple[Any, ...] | None = None
        # Called with every fresh Stats, on the training thread (the app's training process
        # sends it to the screen from here). Keep it quick: it runs up to 1/PUBLISH_SECONDS a second.
        self.publish_hook: Callable[[Stats], None] | None = None
        self.iteration = 0  # training batched steps
        self.greedy_steps = 0  # steps of the greedy view: watched, never learned from or saved
        self.greedy_episodes = 0  # episodes the greedy view has finished
        self.env_steps = 0
        self.episodes = 0
        self.updates = 0
        self.metrics: dict[str, float] = {}
        self.kpis: dict[str, float] = {}
        self.team_return: float | None = None
        self.agent_returns: tuple[float, ...] = ()
        n = self.env.spec.n_agents
        self.team_history = BoundedSeries()
        self.agent_history = [BoundedSeries() for _ in range(n)]
        self.loss_history: dict[str, BoundedSeries] = {}
        self.error: str | None = None
        self.status = "starting"
        self._stats = Stats(status="starting", total_steps=self.total_steps)
        self._obs, self._state = self.env.reset(self.seed)
        self._ep_return = torch.zeros(self.env.n_envs, n, device=self.device)
        self._kpi_sums: dict[str, float] = {}
        self._kpi_count = 0
        self._eval_env: BatchedEnv | None = None
        self._eval_obs: tuple[torch.Tensor, torch.Tensor] | None = None
        self._rate = (time.monotonic(), 0)
        self._sps = 0.0
        self.elapsed = 0.0  # seconds spent in run() before the current call, over every resume
        self._segment_start: float | None = None
        every = run.checkpoint_every
        self.checkpoint_every = CHECKPOINT_ITERATIONS * self.env.n_envs if every is None else int(every)
        self._next_checkpoint = self._checkpoint_after(0)
        self.last_checkpoint: Path | None = None  # the newest checkpoint this trainer wrote
        self.last_checkpoint_step: int | None = None
        self.save_note: str | None = None  # one line about the last save, for views
        self._saved_at: tuple[int, int] | None = None  # (iteration, env_steps) of that save
        self.metrics_writer = MetricsWriter(
            run.out_dir / "metrics.csv" if run.out_dir else None, self.csv_columns(),
            tensorboard_dir=run.out_dir / "tensorboard" if run.out_dir else None,
            kpi_names=tuple(self.oracle.kpis),
        )

    # ------------------------------------------------------------------ building
    def _make_env(self, n_envs: int | None, seed: int) -> BatchedEnv:
        env = make_env(self.scenario, n_envs=n_envs, seed=seed, device=self.device)
        if env.spec.action_space.kind == "continuous" and needs_discrete(self.run_config.algo):
            env = DiscretisedEnv(env)
        return env

    def csv_columns(self) -> list[str]:
        names = [f"return_{i + 1}" for i in range(self.env.spec.n_agents)]
        return ["env_steps", "episodes", "updates", "team_return", *names, *self.oracle.kpis]

    # ------------------------------------------------------------------ the loop
    def run(self) -> Stats:
        """Train until the budget is spent or stop() is called. Errors end up in stats.error.

        With a run directory, the end of the loop (finished or stopped) saves a checkpoint.
        """
        self.status = "running"
        self._rate = (time.monotonic(), self.env_steps)
        self._segment_start = time.monotonic()
        self._step_cpu_at = time.thread_time()  # this thread's: the loop's
        last_publish = 0.0
        try:
            while self.env_steps < self.total_steps:
                if not self._wait_turn():
                    self.status = "stopped"
                    break
                if self.controls.greedy:
                    self._greedy_step()
                else:
                    self.train_step()
                    if self.checkpoint_every and self.env_steps >= self._next_checkpoint:
                        self._next_checkpoint = self._checkpoint_after(self.env_steps)
                        self._save_if_possible(periodic=True)
                if self.controls.save_requested:
                    self._take_save_request()
                now = time.monotonic()
                if now - last_publish >= PUBLISH_SECONDS or self.controls.paused:
                    self.publish()
                    last_publish = now
            else:
                self.status = "finished"
            if self.run_config.out_dir is not None:
                self._save_if_possible(periodic=False)
        except Exception as exc:  # noqa: BLE001 - shown to the person, never swallowed
            self.status = "error"
            where = traceback.extract_tb(exc.__traceback__)[-1]
            self.error = (
                f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"
            )
            self.publish()
            raise
        finally:
            self.elapsed = self.elapsed_seconds()
            self._segment_start = None
            # A stopped run keeps rows that wait for the header in its checkpoint: writing
            # them now with a guessed header would make a resumed metrics.csv differ.
            self.metrics_writer.flush(final=self.status != "stopped")
            if self.status == "stopped":
                self.metrics_writer.close()
        self.publish()
        return self._stats

    def _wait_turn(self) -> bool:
        return self.controls.wait_turn(on_save=self._save_while_paused, on_pause=self.publish)

    def _save_while_paused(self) -> None:
        self._take_save_request()
        self.publish()

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint_after(self, env_steps: int) -> int:
        every = self.checkpoint_every
        return (env_steps // every + 1) * every if every else 0

    def _take_save_request(self) -> None:
        self.controls.save_requested = False
        if self.run_config.out_dir is None:
            self.save_note = "not saved: this run has no run directory"
            return
        self._save_if_possible(periodic=False, force=True)

    def _save_if_possible(self, periodic: bool, force: bool = False) -> None:
        """Save a checkpoint. Non-finite parameters raise TrainingFault (the last good checkpoint
        stays); a full disk or a missing folder becomes a note, and training goes on."""
        if not force and self._saved_at == (self.iteration, self.env_steps):
            return
        try:
            self.save_checkpoint()
        except TrainingFault:
            raise
        except (OSError, UserError) as exc:
            self.save_note = f"checkpoint not saved at env step {self.env_steps:,}: {exc}"

    def save_checkpoint(self, run_dir: Path | None = None) -> Path:
        """Write checkpoints/latest.pt (and a step-numbered copy) now; returns latest.pt.

        Call from the training thread, or from any thread while the loop is not running.
        Raises TrainingFault when a parameter is NaN/inf (nothing is written then).
        """
        from marl_tui.train.checkpoint import save_checkpoint

        path = save_checkpoint(self, run_dir)
        self.last_checkpoint, self.last_checkpoint_step = path, self.env_steps
        self._saved_at = (self.iteration, self.env_steps)
        self.save_note = f"saved checkpoint at env step {self.env_steps:,}: {path}"
        return path

    def loop_state(self) -> dict[str, Any]:
        """The loop's own state for a checkpoint: counters, accumulators, histories, the
        current observation. Plain data and tensors only (weights_only-loadable)."""
        return {
            "iteration": self.iteration, "env_steps": self.env_steps, "episodes": self.episodes,
            "updates": self.updates, "metrics": dict(self.metrics), "kpis": dict(self.kpis),
            "team_return": self.team_return, "agent_returns": list(self.agent_returns),
            "team_history": self.team_history.state_dict(),
            "agent_history": [s.state_dict() for s in self.agent_history],
            "loss_history": {k: s.state_dict() for k, s in self.loss_history.items()},
            "obs": self._obs, "state": self._state, "ep_return": self._ep_return,
            "kpi_sums": dict(self._kpi_sums), "kpi_count": self._kpi_count,
            "elapsed": self.elapsed_seconds(),
        }

    def load_loop_state(self, s: dict[str, Any]) -> None:
        self.iteration, self.env_steps = int(s["iteration"]), int(s["env_steps"])
        self.episodes, self.updates = int(s["episodes"]), int(s["updates"])
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
        shapes = (self._obs.shape, self._state.shape, self._ep_return.shape)
        saved_shapes = (s["obs"].shape, s["state"].shape, s["ep_return"].shape)
        if shapes != saved_shapes:
            raise ValueError(f"saved observations have shapes {saved_shapes}, this env {shapes}")
        self._obs = s["obs"].to(self.device)
        self._state = s["state"].to(self.device)
        self._ep_return = s["ep_return"].to(self.device)
        self._kpi_sums = {k: float(v) for k, v in s["kpi_sums"].items()}
        self._kpi_count = int(s["kpi_count"])
        self.elapsed = float(s.get("elapsed", 0.0))
        self._next_checkpoint = self._checkpoint_after(self.env_steps)
        self._saved_at = (self.iteration, self.env_steps)
        self.publish()

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

    def train_step(self) -> None:
        """One batched step of every copy, learning included."""
        with self._algo_lock:
            self._train_step()

    def _train_step(self) -> None:
        obs, state = self._obs, self._state
        out = self.algo.act(obs, state, explore=True)
        res = self.env.step(out.actions)
        if not torch.isfinite(res.reward).all():
            raise TrainingFault(f"the environment returned a non-finite reward; {ADVICE}")
        done = res.done
        self.algo.observe(
            Transition(
                obs=obs, state=state, actions=out.actions,
                reward=res.reward * self.env.spec.reward_scale,
                next_obs=res.obs, next_state=res.state,
                terminated=torch.zeros_like(done), truncated=done, extras=out.extras,
            )
        )
        self.iteration += 1
        self.env_steps += self.env.n_envs
        self._ep_return += res.reward
        for k, v in self.env.kpis(res.info).items():
            self._kpi_sums[k] = self._kpi_sums.get(k, 0.0) + v
        self._kpi_count += 1
        record = None
        self._unrecorded = None
        if self.record_steps:
            step = (out.actions, res.reward, res.info, self.env.t, self.episodes)
            if self._record_due():
                started = time.perf_counter()
                record = self._record(*step, greedy=False)
                spent = time.perf_counter() - started
                self._recording += spent
                self._record_seconds += 0.05 * (spent - self._record_seconds)
            else:
                self._unrecorded = step  # references only: a record is built if the loop pauses here
        if self.algo.ready():
            if record is not None and self.controls.paused:
                # Stepping with `n`: show the step at once; the update's numbers follow.
                self.records.put(record)
                record = None
                self.publish()
            metrics = self.algo.update()
            self.updates += 1
            self._check_finite(metrics)
            if self.updates % PARAMETER_CHECK_UPDATES == 0:
                bad = self.non_finite_parameter()
                if bad is not None:
                    raise TrainingFault(
                        f"parameter {bad} became NaN/inf at env step {self.env_steps}; {ADVICE}"
                    )
            self.metrics = metrics
            for k, v in metrics.items():
                self.loss_history.setdefault(k, BoundedSeries()).append(self.env_steps, v)
        if record is not None:
            self.records.put(record)
        if bool(done.all()):
            self._end_episode()
            self._obs, self._state = self.env.reset()
        else:
            self._obs, self._state = res.obs, res.state

    def _record_due(self) -> bool:
        """Every step while someone can follow steps; at full speed, bursts (see RECORD_BURST)."""
        if self.controls.paused or self.controls.speed is not None:
            return True
        cpu = time.thread_time()
        if self._step_cpu_at is not None:
            self._step_seconds += 0.05 * (cpu - self._step_cpu_at - self._step_seconds)
        self._step_cpu_at = cpu
        if self._record_seconds <= RECORD_SHARE * self._step_seconds:
            return True
        now = time.monotonic()  # only bursts keep to the wall clock
        if self._burst_left > 0 and now <= self._burst_until:
            self._burst_left -= 1
        elif (now - self._burst_until >= RECORD_SECONDS
              # and the last burst is under RECORD_SHARE of the loop's time since it began (very
              # fast steps, where a record costs a large part of one, rest longer)
              and cpu - self._burst_start >= (self._recording - self._recording_at_burst) / RECORD_SHARE):
            self._burst_left, self._burst_until = RECORD_BURST - 1, now + RECORD_BURST_SECONDS
            self._burst_start, self._recording_at_burst = cpu, self._recording
        else:
            self._burst_left = 0
            return False
        return True

    def _check_finite(self, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            if not math.isfinite(v):
                raise TrainingFault(f"{k} became {v} at env step {self.env_steps}; {ADVICE}")

    def _end_episode(self) -> None:
        self.episodes += 1
        team = float(self._ep_return.sum(-1).mean())
        agents = tuple(float(x) for x in self._ep_return.mean(0))
        self.team_return, self.agent_returns = team, agents
        self.team_history.append(self.env_steps, team)
        for series, value in zip(self.agent_history, agents, strict=True):
            series.append(self.env_steps, value)
        self.kpis = {k: v / self._kpi_count for k, v in self._kpi_sums.items()}
        self._kpi_sums, self._kpi_count = {}, 0
        self._ep_return.zero_()
        # The loop's own columns come last so no algorithm metric can overwrite them.
        row = {**self.metrics, **self.kpis, "env_steps": self.env_steps, "episodes": self.episodes,
               "updates": self.updates, "team_return": team}
        row.update({f"return_{i + 1}": a for i, a in enumerate(agents)})
        if self.updates:
            keys: list[str] | None = list(self.metrics)
        else:  # a baseline never updates: its columns are known now
            keys = None if _learns(self.algo) else []
        self.metrics_writer.add(row, keys)

    def _greedy_step(self) -> None:
        """The evaluation view: the greedy policy plays a separate copy of the env; no learning."""
        with self._algo_lock:
            obs, state = self._greedy_view_obs()
            with acting_on(self.algo, self._eval_env):
                out = self.algo.act(obs, state, explore=False)
            res = self._eval_env.step(out.actions)
            self.greedy_steps += 1
            self.records.put(self._record(out.actions, res.reward, res.info, self._eval_env.t,
                                          self.greedy_episodes, greedy=True))
            if bool(res.done.all()):
                self._eval_obs = self._eval_env.reset()
                self.greedy_episodes += 1
            else:
                self._eval_obs = (res.obs, res.state)

    def _greedy_view_obs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The greedy view's current observation; its env is made on first use (under the lock)."""
        if self._eval_env is None:
            self._eval_env = self._make_env(self.run_config.n_envs, self.seed + GREEDY_VIEW_SEED_OFFSET)
            self._eval_obs = self._eval_env.reset()
        return self._eval_obs

    def _record(self, actions: torch.Tensor, reward: torch.Tensor, info: dict[str, torch.Tensor],
                t: int, episode: int, greedy: bool) -> StepRecord:
        """Copy 0 of one step as plain data; t and episode as they were when it was taken."""
        env = self._eval_env if greedy else self.env
        return StepRecord(
            iteration=self.greedy_steps if greedy else self.iteration, env_steps=self.env_steps,
            episode=episode, t=t,
            actions=tuple(_plain(env.to_native(actions[:1])[0])), reward=tuple(_plain(reward[0])),
            info={k: _plain(v[0]) for k, v in info.items()}, greedy=greedy,
        )

    # ------------------------------------------------------------------ views
    def publish(self) -> None:
        now = time.monotonic()
        t0, s0 = self._rate
        if now - t0 >= 1.0:
            self._sps = (self.env_steps - s0) / (now - t0)
            self._rate = (now, self.env_steps)
        status = self.status
        if status == "running" and self.controls.paused:
            status = "paused"
        if status != "running" and self._unrecorded is not None:
            # Paused or ended: at full speed its last step may not have been recorded; it goes
            # out with this Stats, so the panels show the step the status line counts.
            self.records.put(self._record(*self._unrecorded, greedy=False))
            self._unrecorded = None
        self._stats = Stats(
            status=status, iteration=self.iteration, greedy_steps=self.greedy_steps,
            env_steps=self.env_steps,
            total_steps=self.total_steps, episodes=self.episodes, updates=self.updates,
            steps_per_second=self._sps, exploration=self.algo.exploration(),
            metrics=dict(self.metrics), kpis=dict(self.kpis), team_return=self.team_return,
            agent_returns=self.agent_returns, team_history=self.team_history.snapshot(),
            agent_history=tuple(s.snapshot() for s in self.agent_history),
            loss_history={k: s.snapshot() for k, s in self.loss_history.items()},
            error=self.error, save_note=self.save_note,
        )
        if self.publish_hook is not None:
            self.publish_hook(self._stats)

    @property
    def stats(self) -> Stats:
        return self._stats

    def explain(self) -> dict[str, Any]:
        """The algorithm's numbers for the observation the panels show (any thread): the
        training env's, or the greedy view's while that is on. Waits for the step in progress."""
        return self.explain_step()[1]

    def explain_step(self) -> tuple[tuple[bool, int], dict[str, Any]]:
        """explain() and the view and step it belongs to, read together: ((greedy view?, steps
        of that view), numbers); the numbers are for the observation the next step acts on."""
        with self._algo_lock:
            if self.controls.greedy:
                obs, state = self._greedy_view_obs()
                with acting_on(self.algo, self._eval_env):
                    return (True, self.greedy_steps), self.algo.explain(obs, state)
            return (False, self.iteration), self.algo.explain(self._obs, self._state)

    def start_thread(self) -> threading.Thread:
        """Run in a daemon thread; errors stay in stats.error."""

        def target() -> None:
            with contextlib.suppress(Exception):  # already in stats.error for the view
                self.run()

        thread = threading.Thread(target=target, name="marl-tui-trainer", daemon=True)
        thread.start()
        return thread

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, episodes: int = 4) -> dict[str, float]:
        """Greedy play on a fresh env (its own seed): the scenario's KPIs and team return."""
        env = self._make_env(self.run_config.n_envs, self.seed + EVALUATION_SEED_OFFSET)
        with self._algo_lock:
            return evaluate(self.algo, env, episodes)


def _learns(algo: Algorithm) -> bool:
    return type(algo).update is not Algorithm.update
