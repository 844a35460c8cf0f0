"""The app's training process: it obeys the screen's controls, trains exactly as a run in this
process does, and never leaves the screen hanging or a run unsaved when either side dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from marl_tui.stream.frames import ControlState
from marl_tui.config import load_scenario
from marl_tui.train.remote import RemoteControls, TrainerProcess
from marl_tui.train.run_config import RunConfig
from marl_tui.train.rundir import init_run_dir
from marl_tui.train.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent


def config(algo: str = "mappo", steps: int = 8 * 10**6, **kw) -> RunConfig:
    return RunConfig(scenario=load_scenario("pricing"), algo=algo, seed=0, n_envs=8, steps=steps, **kw)


def wait_for(cond: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def started() -> Callable[..., TrainerProcess]:
    procs: list[TrainerProcess] = []

    def start(cfg: RunConfig, paused: bool = True) -> TrainerProcess:
        proc = TrainerProcess(cfg, RemoteControls(paused=paused))
        procs.append(proc)
        proc.start()
        assert proc.wait_ready(timeout=60) is None
        return proc

    yield start
    for proc in procs:
        proc.stop(timeout=5.0)


def test_the_process_obeys_the_controls_and_answers_explain(started) -> None:
    proc = started(config())
    assert proc.info.n_envs == 8 and proc.info.spec.n_agents == 3
    assert proc.info.oracle.values  # the scenario's reference answer came across
    time.sleep(0.3)
    assert proc.stats.iteration == 0  # paused from the start: not a single step
    proc.controls.step(1)
    wait_for(lambda: proc.stats.iteration == 1, what="one step")
    time.sleep(0.2)
    assert proc.stats.iteration == 1 and proc.stats.status == "paused"
    assert [r.iteration for r in proc.records.drain()] == [1]
    proc.request_explain()
    answers: list[tuple] = []

    def answered() -> bool:
        got = proc.take_explain()
        if got is not None:
            answers.append(got)
        return bool(answers)

    wait_for(answered, what="explain")
    view, numbers, failure = answers[0]
    assert failure is None and view == (False, 1) and {"V", "mean", "std"} <= set(numbers)
    proc.controls.set_greedy(True)
    proc.controls.step(1)
    wait_for(lambda: proc.stats.greedy_steps == 1, what="a greedy step")
    assert proc.stats.iteration == 1  # watching the greedy policy is not training
    assert [(r.greedy, r.iteration) for r in proc.records.drain()] == [(True, 1)]
    proc.controls.set_greedy(False)
    proc.controls.resume()
    wait_for(lambda: proc.stats.updates > 0 and proc.stats.status == "running", what="learning")
    proc.controls.pause()
    wait_for(lambda: proc.stats.status == "paused", what="pause")
    proc.stop(timeout=5.0)
    assert not proc.alive and proc.stats.status == "stopped"


def test_a_run_in_the_process_is_the_same_run_as_here(started, tmp_path: Path) -> None:
    """Same seed, same config, same numbers: metrics.csv byte for byte."""
    here = Trainer(config(steps=8 * 300, out_dir=tmp_path / "here"))
    init_run_dir(here, tmp_path / "here")
    here.run()
    proc = started(config(steps=8 * 300, out_dir=tmp_path / "there"), paused=False)
    wait_for(lambda: proc.stats.status == "finished", timeout=60, what="the run to finish")
    proc.stop(timeout=5.0)
    assert not proc.alive
    a = (tmp_path / "here" / "metrics.csv").read_bytes()
    assert a.count(b"\n") == 13 and (tmp_path / "there" / "metrics.csv").read_bytes() == a


def test_a_killed_training_process_is_an_error_not_a_hang(started) -> None:
    proc = started(config())
    os.kill(proc.pid, signal.SIGKILL)
    wait_for(lambda: proc.stats.status == "error", what="the error")
    assert "ended unexpectedly (exit code -9)" in proc.stats.error


def test_a_run_that_cannot_be_built_says_why_in_one_line() -> None:
    proc = TrainerProcess(config(overrides={"no_such_knob": 1.0}), RemoteControls())
    proc.start()
    error = proc.wait_ready(timeout=60)
    assert error is not None and "no_such_knob" in error and "\n" not in error
    assert proc.join(timeout=5.0)


def test_when_the_app_dies_the_run_stops_and_saves(tmp_path: Path) -> None:
    """SIGKILL the process holding the screen: its training process sees the pipe close, stops
    the run, writes its checkpoint and ends."""
    run_dir = tmp_path / "run"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from marl_tui.config import load_scenario
        from marl_tui.train.remote import RemoteControls, TrainerProcess
        from marl_tui.train.run_config import RunConfig

        if __name__ == "__main__":
            cfg = RunConfig(scenario=load_scenario("pricing"), algo="mappo", seed=0, n_envs=8,
                            steps=10**9, out_dir=Path({str(run_dir)!r}))
            proc = TrainerProcess(cfg, RemoteControls())
            proc.start()
            assert proc.wait_ready(timeout=60) is None
            while proc.stats.iteration < 50:
                time.sleep(0.01)
            print(proc.pid, flush=True)
            time.sleep(600)
    """)
    app = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, text=True)
    try:
        child = int(app.stdout.readline())
        app.kill()
        app.wait(timeout=5)
        wait_for(lambda: not _running(child), timeout=30, what="the training process to end")
    finally:
        app.kill()
        app.stdout.close()
    assert (run_dir / "checkpoints" / "latest.pt").is_file()
    assert (run_dir / "metrics.csv").is_file()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # Reparented and ended but not yet reaped by init: a zombie counts as ended.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and stat.read_text().split(") ")[1].startswith("Z"))


class SlowBuild(Trainer):
    """A run that takes a second to build (a big replay buffer, a slow oracle)."""

    def __init__(self, *args, **kwargs) -> None:
        time.sleep(1.0)
        super().__init__(*args, **kwargs)


def test_a_run_stopped_while_it_builds_writes_nothing(tmp_path: Path) -> None:
    """A quick restart or quit while the run is built: no run folder, no step-0 checkpoint."""
    proc = TrainerProcess(config(out_dir=tmp_path / "run"), RemoteControls(), trainer_factory=SlowBuild)
    proc.start()
    time.sleep(0.3)
    proc.controls.stop()
    assert proc.wait_ready(timeout=30) is not None  # it ended without a run
    assert proc.join(timeout=10)
    assert not (tmp_path / "run").exists()
