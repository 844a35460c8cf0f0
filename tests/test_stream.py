"""The run stream between the app and its training process: typed messages in one codec, frames
that show one moment, controls as state, and neither side left hanging when the other dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from marl_tui.config import load_scenario
from marl_tui.stream.frames import (
    ChartPoints,
    ControlState,
    Frame,
    FrameStats,
    Progress,
    StepScene,
    StreamError,
    decode_to_app,
    decode_to_run,
    encode,
)
from marl_tui.stream.sources import APP_LOG, LiveSource
from marl_tui.train.build import build_run
from marl_tui.train.framing import build_frame
from marl_tui.train.run import Run
from marl_tui.train.run_config import RunConfig
from marl_tui.train.rundir import init_run_dir

ROOT = Path(__file__).resolve().parent.parent


def config(algo: str = "mappo", steps: int = 8 * 10**6, scenario: str = "pricing", **kw) -> RunConfig:
    return RunConfig(scenario=load_scenario(scenario), algo=algo, seed=0, n_envs=8, steps=steps, **kw)


def wait_for(cond: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


class Watcher:
    """A view in miniature: keeps every frame its source hands over."""

    def __init__(self, source: LiveSource) -> None:
        self.source, self.frames = source, []
        self._lock = threading.Lock()
        source.on_news = self.take

    def take(self) -> None:
        with self._lock:
            got = self.source.take_frame()
            if got is not None:
                self.frames.append(got[0])

    def frame_at(self, step: int, greedy: bool = False) -> Frame:
        wait_for(lambda: any(f.scene.step == step and f.greedy == greedy for f in self.frames),
                 what=f"the frame of step {step}")
        return next(f for f in self.frames if f.scene.step == step and f.greedy == greedy)


@pytest.fixture
def started() -> Iterator[Callable[..., LiveSource]]:
    sources: list[LiveSource] = []

    def start(cfg: RunConfig, paused: bool = True) -> LiveSource:
        source = LiveSource(cfg, ControlState(paused=paused))
        sources.append(source)
        source.start()
        assert source.wait_ready(timeout=60) is None
        return source

    yield start
    for source in sources:
        source.stop(timeout=5.0)


def step_once(source: LiveSource) -> None:
    c = source.controls.state
    source.controls.change(steps_granted=c.steps_granted + 1, frames_granted=c.frames_granted + 1)


# ---------------------------------------------------------------------------------- the codec


def a_frame() -> Frame:
    scene = StepScene(step=3, env_steps=24, episode=0, t=3, actions=(33.0, 34.5, 50.0),
                      reward=(2000.0, 2100.0, 1500.0), info={"price": (33.0, 34.5, 50.0), "period": 2.0})
    return Frame(greedy=False, scene=scene, trail=(scene,), explain=None,
                 stats=FrameStats(episodes=0, updates=1, team_return=None, agent_returns=(),
                                  kpis={}, metrics={"loss": 0.5}, exploration=("entropy", 1.2)),
                 chart=ChartPoints(episodes=((8.0, 1.0, (0.5, 0.5)),), losses={"loss": ((8.0, 0.5),)}))


def test_every_message_round_trips_through_the_one_codec() -> None:
    for msg in (a_frame(), Progress(status="paused", env_steps=8, total_steps=80, greedy_steps=0,
                                     steps_per_second=1.5, save_note="saved")):
        assert decode_to_app(encode(msg)) == msg
    state = ControlState(paused=True, speed=5, steps_granted=3, frames_granted=4)
    assert decode_to_run(encode(state)) == state


@pytest.mark.parametrize("algo", ["maddpg", "mappo", "qmix", "random", "oracle"])
@pytest.mark.parametrize("scenario", ["pricing", "warehouse", "fulfillment"])
def test_real_frames_round_trip_with_their_explain(algo: str, scenario: str) -> None:
    run = build_run(config(algo, steps=8 * 40, scenario=scenario))
    for _ in range(3):
        run.train_step()
    frame = build_frame(run, greedy=False, chart=ChartPoints())
    assert frame is not None and frame.explain_error is None
    assert type(frame.explain) is run.algo.explain_type
    assert decode_to_app(encode(frame)) == frame


@pytest.mark.parametrize("data", [b"", b"\x00\x01", encode(ControlState()),
                                  msgspec.msgpack.encode({"type": "Frame", "greedy": "no"}),
                                  msgspec.msgpack.encode({"type": "Exec", "code": "import os"})])
def test_a_malformed_message_is_a_stream_error_naming_it(data: bytes) -> None:
    with pytest.raises(StreamError, match="malformed message"):
        decode_to_app(data)


def test_a_malformed_message_is_logged_and_the_view_stays_up(started, tmp_path: Path) -> None:
    source = started(config(out_dir=tmp_path / "run"))
    watcher = Watcher(source)
    # Bytes that are not one of ours, as if from a newer or broken process, on the app's side.
    source._handle_bytes(b"\x93garbage")  # noqa: SLF001 - the receiver's own entry point
    step_once(source)
    watcher.frame_at(1)
    assert source.malformed == 1
    assert "malformed message" in (tmp_path / "run" / APP_LOG).read_text()


# ---------------------------------------------------------------------------------- the process


def test_the_process_obeys_the_controls_and_frames_show_one_moment(started) -> None:
    source = started(config())
    watcher = Watcher(source)
    ready = source.ready
    assert ready.n_envs == 8 and ready.spec.n_agents == 3 and ready.oracle.values["nash_price"] > 0
    wait_for(lambda: source.progress.status == "paused", what="the pause")
    assert source.progress.env_steps == 0  # paused from the start: not a single step
    for k in (1, 2, 3):
        step_once(source)
        frame = watcher.frame_at(k)
        # The frame's step, its trail and its stats belong together.
        assert frame.scene.env_steps == 8 * k and [s.step for s in frame.trail] == list(range(1, k))
        assert type(frame.explain).__name__ == "MAPPOExplain"
    wait_for(lambda: source.progress.env_steps == 24, what="the counters")
    source.controls.change(greedy=True)
    step_once(source)
    greedy = watcher.frame_at(1, greedy=True)
    assert greedy.scene.env_steps == 24 and source.progress.env_steps == 24  # watching is not training
    source.controls.change(greedy=False, paused=False)
    wait_for(lambda: source.progress.status == "running" and source.progress.env_steps > 8 * 100,
             what="training at full speed")
    source.controls.change(paused=True, frames_granted=source.controls.state.frames_granted + 1)
    wait_for(lambda: source.progress.status == "paused", what="the pause")
    # The frame sent as it paused is the step it stopped on.
    wait_for(lambda: watcher.frames[-1].scene.env_steps == source.progress.env_steps,
             what="the pause's frame")
    source.stop(timeout=5.0)
    assert not source.alive and source.status == "stopped"


def test_a_state_sent_twice_steps_once(started) -> None:
    """Controls travel as state: a repeated state (counters unchanged) takes no second step."""
    source = started(config())
    watcher = Watcher(source)
    step_once(source)
    watcher.frame_at(1)
    source._send_state(source.controls.state)  # noqa: SLF001 - the same state again, as a late duplicate
    source.controls.change(frames_granted=source.controls.state.frames_granted + 1)  # a frame, no step
    wait_for(lambda: len(watcher.frames) >= 2, what="the second frame")
    assert watcher.frames[-1].scene.step == 1 and source.progress.env_steps == 8


def test_a_run_in_the_process_is_the_same_run_as_here(started, tmp_path: Path) -> None:
    """Same seed, same config, same numbers: metrics.csv byte for byte."""
    here = build_run(config(steps=8 * 300, out_dir=tmp_path / "here"))
    init_run_dir(here, tmp_path / "here")
    here.run()
    source = started(config(steps=8 * 300, out_dir=tmp_path / "there"), paused=False)
    wait_for(lambda: source.status == "finished", what="the run to finish")
    source.stop(timeout=5.0)
    assert not source.alive
    a = (tmp_path / "here" / "metrics.csv").read_bytes()
    assert a.count(b"\n") == 13 and (tmp_path / "there" / "metrics.csv").read_bytes() == a


def test_a_killed_training_process_is_an_error_not_a_hang(started) -> None:
    source = started(config())
    os.kill(source.pid, signal.SIGKILL)
    wait_for(lambda: source.status == "error", what="the error")
    assert "ended unexpectedly (exit code -9)" in source.progress.error


def test_a_run_that_cannot_be_built_says_why_in_one_line() -> None:
    source = LiveSource(config(overrides={"no_such_knob": 1.0}))
    source.start()
    error = source.wait_ready(timeout=60)
    assert error is not None and "no_such_knob" in error and "\n" not in error
    assert source.join(timeout=5.0)


def test_the_training_process_writes_its_stderr_into_the_run_directory(started, tmp_path: Path) -> None:
    source = started(config(out_dir=tmp_path / "run"))
    source._conn.send_bytes(b"not a control state")  # noqa: SLF001 - a malformed message to the run
    step_once(source)
    Watcher(source).frame_at(1)
    wait_for(lambda: "malformed message" in (tmp_path / "run" / "train.log").read_text(),
             what="the log line")


def test_when_the_app_dies_the_run_stops_and_saves(tmp_path: Path) -> None:
    """SIGKILL the process holding the screen: its training process sees the pipe close, stops
    the run, writes its checkpoint and ends."""
    run_dir = tmp_path / "run"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from marl_tui.config import load_scenario
        from marl_tui.stream.sources import LiveSource
        from marl_tui.train.run_config import RunConfig

        if __name__ == "__main__":
            cfg = RunConfig(scenario=load_scenario("pricing"), algo="mappo", seed=0, n_envs=8,
                            steps=10**9, out_dir=Path({str(run_dir)!r}))
            source = LiveSource(cfg)
            source.start()
            assert source.wait_ready(timeout=60) is None
            while source.progress.env_steps < 400:
                time.sleep(0.01)
            print(source.pid, flush=True)
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


class SlowBuild(Run):
    """A run that is built only once the test has sent its stop (a slow oracle, a big buffer):
    it waits for a file beside its run directory."""

    def __init__(self, config: RunConfig, *args, **kwargs) -> None:
        go = config.out_dir.parent / "go"
        wait_for(go.exists, timeout=30, what="the go file")
        super().__init__(config, *args, **kwargs)


def test_a_run_stopped_while_it_builds_writes_nothing(tmp_path: Path) -> None:
    """A quick restart or quit while the run is built: no run folder, no step-0 checkpoint."""
    source = LiveSource(config(out_dir=tmp_path / "run"), run_class=SlowBuild)
    source.start()
    source.controls.stop()
    (tmp_path / "go").touch()  # the build goes on only after the stop was sent
    assert source.wait_ready(timeout=30) is not None  # it ended without a run
    assert source.join(timeout=10)
    assert not (tmp_path / "run").exists()
