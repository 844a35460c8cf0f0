"""One training run as the app sees it: what was asked, the trainer, its thread, its folder.

Building a Trainer takes a moment (torch, the scenario's oracle, the networks), so the app
calls `build()` from a worker thread; everything else here is quick. The app only uses the
trainer's public API: stats, records.drain(), explain(), controls, oracle, env.spec,
scenario and run_config.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marl_tui.config import Scenario
from marl_tui.train.controls import Controls


@dataclass(frozen=True)
class RunRequest:
    """What the picker or `marl-tui run` asks for (a RunConfig without torch or a folder)."""

    scenario: Scenario
    algo: str
    steps: int | None = None
    seed: int | None = None
    n_envs: int | None = None
    device: str = "cpu"
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def resolved_seed(self) -> int:
        return self.scenario.seed if self.seed is None else self.seed

    def headless_command(self) -> str:
        """The same run without the app, for error messages."""
        sc = self.scenario.source if self.scenario.source.endswith(".toml") and not \
            self.scenario.source.startswith("scenarios/") else self.scenario.name
        parts = ["marl-tui", "train", sc, "--algo", self.algo, "--seed", str(self.resolved_seed)]
        if self.steps is not None:
            parts += ["--steps", str(self.steps)]
        if self.n_envs is not None:
            parts += ["--envs", str(self.n_envs)]
        return " ".join(parts)


RunDirFactory = Callable[[RunRequest], "Path | None"]


def unique_run_dir(request: RunRequest) -> Path:
    """runs/NAME-ALGO-sSEED-TIME, with -2, -3... when a run started in the same second."""
    from marl_tui.train.rundir import default_run_dir

    base = default_run_dir(request.scenario.name, request.algo, request.resolved_seed)
    path, k = base, 2
    while path.exists():
        path = base.with_name(f"{base.name}-{k}")
        k += 1
    return path


def no_run_dir(request: RunRequest) -> None:
    return None


class RunSession:
    """Builds, starts and stops one Trainer; the dashboard owns one at a time."""

    def __init__(self, request: RunRequest, run_dir: RunDirFactory = unique_run_dir,
                 paused: bool = False, trainer_factory: Callable[..., Any] | None = None) -> None:
        self.request = request
        self.controls = Controls(paused=paused)
        self._run_dir_factory = run_dir
        self._trainer_factory = trainer_factory
        self.run_dir: Path | None = None
        self.trainer: Any = None
        self.thread: threading.Thread | None = None
        self.build_error: str | None = None
        self.stopped = False

    def build(self) -> None:
        """Slow: make the Trainer and its run directory. Errors land in build_error."""
        from marl_tui.errors import UserError

        try:
            from marl_tui.train.rundir import init_run_dir
            from marl_tui.train.trainer import RunConfig, Trainer

            r = self.request
            run_dir = self._run_dir_factory(r)
            cfg = RunConfig(scenario=r.scenario, algo=r.algo, steps=r.steps, seed=r.seed,
                            n_envs=r.n_envs, device=r.device, overrides=dict(r.overrides),
                            out_dir=run_dir)
            factory = self._trainer_factory or Trainer
            trainer = factory(cfg, controls=self.controls)
            if run_dir is not None:
                init_run_dir(trainer, run_dir)
            self.run_dir = run_dir
            self.trainer = trainer
        except UserError as exc:
            self.build_error = str(exc)
        except Exception as exc:  # noqa: BLE001 - shown in the app, never a crash
            self.build_error = f"{type(exc).__name__}: {exc}"

    def start(self) -> None:
        if self.trainer is not None and self.thread is None and not self.stopped:
            self.thread = self.trainer.start_thread()

    def stop(self, timeout: float = 0.5) -> None:
        """Ask the loop to stop and wait a little; the thread is a daemon either way."""
        self.stopped = True
        self.controls.stop()
        if self.thread is not None:
            self.thread.join(timeout=timeout)

    def wait_stopped(self, timeout: float) -> bool:
        """True once the training thread has ended (or never started)."""
        if self.thread is None:
            return True
        self.thread.join(timeout=timeout)
        return not self.thread.is_alive()

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()
