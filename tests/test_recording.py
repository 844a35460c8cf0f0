"""The flight recorder, watch and replay: every run leaves a stream any view can open — whole
after a kill, bounded in size, identical when replayed, and costing the run none of its numbers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from marl_tui.config import load_scenario
from marl_tui.errors import UserError
from marl_tui.stream.frames import Frame, GreedyEpisode, StreamError, StreamHeader
from marl_tui.stream.sources import ReplaySource
from marl_tui.stream.store import MAX_RECORD, STREAM_FORMAT, RecordWriter, StreamReader, records_path
from marl_tui.train.build import build_run
from marl_tui.train.callbacks.recorder import DENSE_STEPS, Recorder, due
from marl_tui.train.framing import ready
from marl_tui.train.run import Run
from marl_tui.train.run_config import RunConfig
from marl_tui.train.rundir import init_run_dir
from marl_tui.tui.app import MarlApp
from marl_tui.tui.recording import open_recording
from marl_tui.tui.screens.replay import ReplayScreen

ROOT = Path(__file__).resolve().parent.parent


def trained(run_dir: Path, algo: str = "mappo", steps: int = 8 * 300, scenario: str = "pricing",
            checkpoint_every: int | None = 8 * 100, **kw: Any) -> Run:
    run = build_run(RunConfig(scenario=load_scenario(scenario), algo=algo, seed=0, n_envs=8, steps=steps,
                              out_dir=run_dir, checkpoint_every=checkpoint_every, **kw))
    init_run_dir(run, run_dir)
    run.run()
    return run


def test_the_schedule_is_dense_early_and_sparse_later() -> None:
    recorded = [k for k in range(1, 100_001) if due(k)]
    assert recorded[:DENSE_STEPS] == list(range(1, DENSE_STEPS + 1))
    per_decade = [sum(1 for k in recorded if 10**d <= k < 10 ** (d + 1)) for d in (3, 4)]
    assert all(150 <= n <= 200 for n in per_decade), per_decade


def test_record_then_replay_gives_back_the_frames_recorded(tmp_path: Path) -> None:
    """The recorder's frames are the frames a view would have been sent, and the stream returns
    them unchanged: same step stamps, same numbers."""
    sent: list[Frame] = []

    class Keep(Recorder):
        def __init__(self, run_dir: Path) -> None:
            super().__init__(run_dir)

        def on_start(self, run: Run) -> None:
            super().on_start(run)
            append = self.writer.append
            self.writer.append = lambda record: (sent.append(record), append(record))[1]

    run_dir = tmp_path / "run"
    run = build_run(RunConfig(scenario=load_scenario("pricing"), algo="qmix", seed=0, n_envs=8, steps=8 * 300,
                              out_dir=run_dir, checkpoint_every=8 * 100,
                              overrides={"learning_starts": 64, "batch_size": 16}))
    run.callbacks = [c if not isinstance(c, Recorder) else Keep(run_dir) for c in run.callbacks]
    init_run_dir(run, run_dir)
    run.run()
    source = ReplaySource(run_dir)
    assert isinstance(source.header, StreamHeader) and source.header.algo == "qmix"
    now = ready(run)
    assert source.header.format == STREAM_FORMAT and source.header.ready.spec == now.spec
    assert source.header.ready.oracle == now.oracle and source.header.ready.history.episodes == ()
    written_frames = [r for r in sent if isinstance(r, Frame)]
    assert source.frames == written_frames
    assert [f.scene.step for f in source.frames] == [k for k in range(1, 301) if due(k)]
    assert source.episodes == [r for r in sent if isinstance(r, GreedyEpisode)]
    # A checkpoint every 100 steps and at the end: a greedy episode of the policy at each.
    assert [e.env_steps for e in source.episodes] == [800, 1600, 2400]
    e = source.episodes[0]
    assert len(e.frames) == 25 and all(f.greedy for f in e.frames)
    assert e.frames[-1].stats.kpis == e.kpis and e.frames[-1].stats.team_return == e.team_return
    # Every episode's point reached the timeline (12 training episodes).
    assert sum(len(p.episodes) for p in source.points) == 12


def test_recording_changes_none_of_the_runs_numbers(tmp_path: Path) -> None:
    with_it = trained(tmp_path / "with", algo="mappo")
    without = build_run(RunConfig(scenario=load_scenario("pricing"), algo="mappo", seed=0, n_envs=8,
                                  steps=8 * 300, out_dir=tmp_path / "without", checkpoint_every=8 * 100))
    without.callbacks = [c for c in without.callbacks if not isinstance(c, Recorder)]
    init_run_dir(without, tmp_path / "without")
    without.run()
    assert not records_path(tmp_path / "without").exists()
    assert (tmp_path / "with" / "metrics.csv").read_bytes() == (tmp_path / "without" / "metrics.csv").read_bytes()
    assert with_it.team_history.y == without.team_history.y


def test_a_long_run_stays_under_its_bound(tmp_path: Path) -> None:
    """Random baseline, 20,000 batched steps: the logarithmic schedule keeps the stream small."""
    trained(tmp_path / "run", algo="random", steps=8 * 20_000, checkpoint_every=0)
    size = records_path(tmp_path / "run").stat().st_size
    frames = ReplaySource(tmp_path / "run").frames
    # Steps 1-200, then ~180 a decade: 160 in 200-1,000, 180 in 1,000-10,000, 20 in 10,000-20,000.
    assert len(frames) == 560 and size < 4_000_000, (len(frames), size)


def test_resume_cuts_the_stream_back_to_its_checkpoint(tmp_path: Path) -> None:
    from marl_tui.train.checkpoint import find_checkpoint
    from marl_tui.train.resume import trainer_from_checkpoint

    reference = tmp_path / "reference"
    trained(reference, algo="random", steps=8 * 300)
    run_dir = tmp_path / "run"
    run = build_run(RunConfig(scenario=load_scenario("pricing"), algo="random", seed=0, n_envs=8, steps=8 * 300,
                              out_dir=run_dir, checkpoint_every=8 * 100))
    init_run_dir(run, run_dir)
    from marl_tui.train.callbacks.checkpointer import Checkpointer

    checkpointer = next(c for c in run.callbacks if isinstance(c, Checkpointer))
    checkpointer.on_end = lambda r: None  # killed after step 250: no checkpoint on the way out
    run.total_steps = 8 * 250
    run.run()
    resumed, _ = trainer_from_checkpoint(find_checkpoint(run_dir)[0], out_dir=run_dir, steps=8 * 300,
                                         keep_rows=True)
    assert resumed.env_steps == 8 * 200
    resumed.run()
    again = ReplaySource(run_dir)
    assert [f.scene.step for f in again.frames] == [k for k in range(1, 301) if due(k)]
    # The same moments; only the trails of the first frames after the resume are shorter (the
    # steps before the checkpoint are not kept in it).
    strip = [msgspec.structs.replace(f, trail=f.trail[-4:]) for f in ReplaySource(reference).frames]
    assert [msgspec.structs.replace(f, trail=f.trail[-4:]) for f in again.frames] == strip
    assert again.episodes == ReplaySource(reference).episodes


def test_a_torn_last_record_is_skipped_and_damage_before_the_end_is_named(tmp_path: Path) -> None:
    trained(tmp_path / "run", algo="random", steps=8 * 50, checkpoint_every=0)
    path = records_path(tmp_path / "run")
    whole = path.read_bytes()
    count = len(ReplaySource(tmp_path / "run").frames)
    path.write_bytes(whole[:-7])  # a kill in the middle of the last write
    torn = ReplaySource(tmp_path / "run")
    assert len(torn.frames) == count - 1 and torn.reader.torn
    damaged = bytearray(whole)
    damaged[len(whole) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with pytest.raises(UserError, match="damaged at byte"):
        ReplaySource(tmp_path / "run")


@pytest.mark.parametrize(("setup", "message"), [
    (lambda d: None, "not a directory"),
    (lambda d: d.mkdir(), "not a run directory"),
    (lambda d: (d / "checkpoints").mkdir(parents=True), "no recorded stream.*marl-tui watch"),
    (lambda d: _stream(d, b"hello, world, not a stream at all"), "damaged at byte 0"),
    (lambda d: _stream(d, _frame(b"\xc1" * 10)), "malformed message"),
    (lambda d: _stream(d, _frame(msgspec.msgpack.encode({"type": "Frame"}))), "malformed message"),
    (lambda d: _stream(d, (MAX_RECORD + 1).to_bytes(4, "little") + b"\0" * 8), "damaged at byte 0"),
    (lambda d: _stream(d, b""), "empty stream"),
])
def test_bad_recordings_are_one_line_errors(tmp_path: Path, setup: Callable[[Path], Any], message: str) -> None:
    run_dir = tmp_path / "run"
    setup(run_dir)
    with pytest.raises(UserError, match=message):
        ReplaySource(run_dir)


def _stream(run_dir: Path, data: bytes) -> None:
    records_path(run_dir).parent.mkdir(parents=True)
    records_path(run_dir).write_bytes(data)


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "little") + zlib.crc32(payload).to_bytes(4, "little") + payload


def test_a_stream_from_a_newer_marl_tui_is_refused(tmp_path: Path) -> None:
    run = build_run(RunConfig(scenario=load_scenario("pricing"), algo="random", seed=0, n_envs=2, steps=20))
    writer = RecordWriter(records_path(tmp_path))
    writer.append(StreamHeader(format=STREAM_FORMAT + 1, marl_tui="9.9", scenario="pricing", kind="pricing",
                               algo="random", seed=0, ready=ready(run)))
    writer.close()
    with pytest.raises(StreamError, match="upgrade marl-tui"):
        StreamReader(records_path(tmp_path)).read()


def test_a_stream_is_read_while_it_is_written(tmp_path: Path) -> None:
    """A reader tails a growing file: an incomplete record waits for the rest, then arrives."""
    run = build_run(RunConfig(scenario=load_scenario("pricing"), algo="random", seed=0, n_envs=2, steps=20))
    header = StreamHeader(format=STREAM_FORMAT, marl_tui="x", scenario="pricing", kind="pricing", algo="random",
                          seed=0, ready=ready(run))
    path = records_path(tmp_path)
    writer = RecordWriter(path)
    writer.append(header)
    reader = StreamReader(path)
    assert reader.read() == [header]
    whole = path.read_bytes()
    with path.open("ab") as f:
        f.write(whole[:5])  # the first bytes of the next record
    assert reader.read() == [] and reader.torn
    with path.open("ab") as f:
        f.write(whole[5:])
    assert reader.read() == [header] and not reader.torn


def test_kill_9_mid_run_keeps_everything_written(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from marl_tui.config import load_scenario
        from marl_tui.train.build import build_run
        from marl_tui.train.run_config import RunConfig
        from marl_tui.train.rundir import init_run_dir
        from marl_tui.train.run import Callback

        class Tell(Callback):
            def on_step(self, run, outcome):
                if outcome.step == 400:
                    print("at 400", flush=True)

        run = build_run(RunConfig(scenario=load_scenario("pricing"), algo="oracle", seed=0, n_envs=8,
                                  steps=10**9, out_dir=Path({str(run_dir)!r}), checkpoint_every=8 * 100),
                        extra=[Tell()])
        init_run_dir(run, Path({str(run_dir)!r}))
        run.run()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout.readline().strip() == "at 400"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.stdout.close()
    source = ReplaySource(run_dir)
    steps = [f.scene.step for f in source.frames]
    assert steps[:DENSE_STEPS] == list(range(1, DENSE_STEPS + 1)) and steps[-1] >= 400
    assert [e.env_steps for e in source.episodes][:4] == [800, 1600, 2400, 3200]


def cli(*args: Any) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "marl_tui", *map(str, args)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, cwd=ROOT, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_replay_frames_jsonl_prints_every_record(tmp_path: Path) -> None:
    trained(tmp_path / "run", algo="random", steps=8 * 30)
    out = cli("replay", tmp_path / "run", "--frames", "--jsonl")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert lines[0]["type"] == "StreamHeader" and [x["scene"]["step"] for x in lines[1:]] == list(range(1, 31))
    text = cli("replay", tmp_path / "run", "--frames")
    assert text.returncode == 0 and "30 moments" in text.stdout


def test_replay_and_watch_without_a_terminal_say_what_to_use(tmp_path: Path) -> None:
    trained(tmp_path / "run", algo="random", steps=8 * 30)
    for args, hint in ((("replay", tmp_path / "run"), "--frames --jsonl"), (("watch", tmp_path / "run"), "--headless")):
        out = cli(*args)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and hint in out.stderr


def test_watch_headless_scores_the_greedy_policy(tmp_path: Path) -> None:
    trained(tmp_path / "run", algo="oracle", steps=8 * 50)
    out = cli("watch", tmp_path / "run", "--headless", "--episodes", "1")
    assert out.returncode == 0, out.stderr
    assert "mean_price" in out.stdout


async def test_replay_moves_between_checkpoints_and_plays_their_episode(tmp_path: Path) -> None:
    trained(tmp_path / "run", algo="mappo", steps=8 * 300)
    recording = open_recording(tmp_path / "run")
    app = MarlApp(first_screen=ReplayScreen(recording.source, recording.scenario))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        await pilot.pause()
        assert screen.current()[0].scene.step == 1
        await pilot.press("right_square_bracket")
        assert screen.current()[0].scene.env_steps == 800  # the first checkpoint's moment
        assert screen.scene.data.record.step == 100 and screen.query_one("#why").data.step == 100
        await pilot.press("right_square_bracket")
        assert screen.current()[0].scene.env_steps == 1600
        await pilot.press("left_square_bracket")
        assert screen.current()[0].scene.env_steps == 800
        await pilot.press("enter")
        frame, trail = screen.current()
        assert frame.greedy and screen.cursor.episode == 0 and frame.scene.step == 1
        await pilot.press("right", "right")
        frame, trail = screen.current()
        assert frame.scene.step == 3 and [s.step for s in trail] == [1, 2]
        assert screen.scene.data.greedy and screen.scene.data.record.step == 3
        await pilot.press("escape", "end")
        assert screen.current()[0].scene.step == 300
        await pilot.press("q")


async def test_e_on_a_finished_run_plays_the_final_policy_with_greedy_kpis() -> None:
    from marl_tui.tui.screens.dashboard import DashboardScreen
    from marl_tui.tui.session import RunRequest, no_run_dir

    request = RunRequest(scenario=load_scenario("pricing"), algo="oracle", seed=0, n_envs=4, steps=4 * 30)
    app = MarlApp(request=request, run_dir=no_run_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        deadline = time.monotonic() + 60
        while not (isinstance(screen, DashboardScreen) and screen.state() == "finished"):
            assert time.monotonic() < deadline, "the run did not finish"
            await pilot.pause()
        await pilot.press("e")
        assert screen.state() == "watching"
        while not (screen.frame is not None and screen.frame.greedy and screen.frame.stats.episodes >= 1):
            assert time.monotonic() < deadline + 60, "no greedy episode finished"
            screen.session.controls.set_speed(None)  # no need to watch it slowly here
            await pilot.pause()
        kpis = screen.frame.stats.kpis
        assert kpis["mean_price"] == pytest.approx(100 / 3, rel=1e-4)  # the oracle plays Nash
        assert screen.frame.stats.exploration is None and "GREEDY EVAL" in screen.query_one("#status").plain
        await pilot.press("q")
