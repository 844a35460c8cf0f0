"""One training run as the app sees it: what was asked, its training process, its folder.

The run trains in its own process (stream/sources.LiveSource): the screen and the loop then
each have a core instead of sharing one interpreter. Starting it takes a moment (the first time
the fork server imports torch; then the scenario's oracle and the networks), so the app calls
`build()` from a worker thread; everything else here is quick. The app reads the run only
through its source: frames, progress, ready (oracle, spec, copies) and controls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marl_tui.config import Scenario

if TYPE_CHECKING:  # torch comes with these: the picker shows before they are imported
    from marl_tui.stream.frames import ControlState
    from marl_tui.stream.sources import LiveSource
    from marl_tui.train.controls import Controls
    from marl_tui.train.run import Run

WATCH_SPEED = 2  # steps per second a trained policy is watched at (`marl-tui watch`, e when finished)


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
    load: Path | None = None  # continue from this checkpoint (`marl-tui run --load`; also on restart)
    watch: bool = False  # play the loaded policy greedily, learn nothing, write nothing (`marl-tui watch`)

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
    """runs/NAME-ALGO-sSEED-TIME, with -2, -3... when that name is taken. Made here, empty, so
    two runs started in the same second (a quick double restart, two apps) never share one."""
    from marl_tui.errors import UserError
    from marl_tui.train.rundir import default_run_dir

    base = default_run_dir(request.scenario.name, request.algo, request.resolved_seed)
    path, k = base, 2
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            path = base.with_name(f"{base.name}-{k}")
            k += 1
        except OSError as exc:
            raise UserError(f"cannot create the run directory {path} ({exc.strerror or exc}); "
                            "start marl-tui in a folder you can write to") from None


def no_run_dir(request: RunRequest) -> None:
    return None


class RunSession:
    """Builds, starts and stops one training process; the dashboard owns one at a time."""

    def __init__(self, request: RunRequest, run_dir: RunDirFactory = unique_run_dir,
                 controls: ControlState | None = None, run_class: type[Run] | None = None) -> None:
        from marl_tui.stream.sources import LiveSource
        from marl_tui.train.run import Run

        self.request = request
        self._run_dir_factory = run_dir
        run_class = run_class or Run  # a Run subclass in tests (importable: it is pickled)
        self.run_dir: Path | None = None  # once the run is built in it
        self.reserved_dir: Path | None = None  # made (empty) for the run before it is built
        self.source: LiveSource | None = None  # set once the run is built and training
        self.process = LiveSource(self._config(None), controls, load=request.load, run_class=run_class,
                                  watch=request.watch)
        self.build_error: str | None = None

    @property
    def controls(self) -> Controls:
        return self.process.controls

    def _config(self, run_dir: Path | None) -> Any:
        from marl_tui.train.run_config import RunConfig

        r = self.request
        return RunConfig(scenario=r.scenario, algo=r.algo, steps=r.steps, seed=r.seed, n_envs=r.n_envs,
                         device=r.device, overrides=dict(r.overrides), out_dir=run_dir)

    def build(self) -> None:
        """Slow: start the training process and wait until it has built the run. Errors land
        in build_error."""
        from marl_tui.errors import UserError

        try:
            run_dir = self.reserved_dir = self._run_dir_factory(self.request)
            self.process.run_config = self._config(run_dir)
            self.process.start()
            error = self.process.wait_ready()
            if error is not None:
                self.build_error = error
                self.discard_unused_dir()
                return
            self.run_dir = run_dir
            self.source = self.process
        except UserError as exc:
            self.build_error = str(exc)
        except Exception as exc:  # noqa: BLE001 - shown in the app, never a crash
            self.build_error = f"{type(exc).__name__}: {exc}"

    def discard_unused_dir(self) -> None:
        """Remove the reserved run directory of a run that was never built (only if empty)."""
        if self.source is None and self.reserved_dir is not None:
            with contextlib.suppress(OSError):
                self.reserved_dir.rmdir()

    def stop(self, timeout: float = 0.5) -> None:
        """Ask the run to stop (it saves a checkpoint) and wait a little for its process."""
        self.controls.stop()
        self.wait_stopped(timeout)

    def wait_stopped(self, timeout: float) -> bool:
        """True once the training process has ended (or never started)."""
        return self.process.join(timeout)
