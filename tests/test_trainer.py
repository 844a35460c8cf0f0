"""The training loop's promises: controls obey, records are bounded, runs repeat exactly."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from marl_tui.stream.frames import ControlState
from marl_tui.config import load_scenario
from marl_tui.errors import UserError
from marl_tui.train.controls import Controls
from marl_tui.train.records import BoundedSeries, RecordQueue, StepRecord
from marl_tui.train.trainer import RunConfig, Trainer


def make(algo: str = "random", steps: int = 2_000, controls: Controls | None = None, **kw) -> Trainer:
    return Trainer(RunConfig(scenario=load_scenario("pricing"), algo=algo, steps=steps, n_envs=8, **kw),
                   controls=controls)


def test_budget_is_env_steps_over_all_copies() -> None:
    t = make(steps=800)
    stats = t.run()
    assert stats.status == "finished"
    assert stats.env_steps == 800 and stats.iteration == 100
    assert stats.episodes == 4  # 25-step episodes


def test_same_seed_same_numbers() -> None:
    a, b = make(steps=1_000, seed=3), make(steps=1_000, seed=3)
    a.run(), b.run()
    assert a.team_history.y == b.team_history.y
    c = make(steps=1_000, seed=4)
    c.run()
    assert c.team_history.y != a.team_history.y


def test_pause_blocks_and_step_runs_exactly_one() -> None:
    controls = Controls(ControlState(paused=True))
    t = Trainer(RunConfig(scenario=load_scenario("pricing"), algo="random", steps=10**9, n_envs=4),
                controls=controls)
    thread = t.start_thread()
    try:
        time.sleep(0.3)
        assert t.stats.iteration == 0
        controls.step(1)
        deadline = time.monotonic() + 5
        while t.stats.iteration < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        assert t.stats.iteration == 1
        assert [r.iteration for r in t.records.drain()] == [1]
    finally:
        controls.stop()
        thread.join(timeout=2)
    assert not thread.is_alive()


def test_stop_while_paused_returns_promptly() -> None:
    controls = Controls(ControlState(paused=True))
    t = Trainer(RunConfig(scenario=load_scenario("pricing"), algo="random", steps=10**9, n_envs=4),
                controls=controls)
    thread = t.start_thread()
    time.sleep(0.1)
    started = time.monotonic()
    controls.stop()
    thread.join(timeout=2)
    assert not thread.is_alive() and time.monotonic() - started < 1.0
    assert t.stats.status == "stopped"


def test_speed_limit_slows_the_loop() -> None:
    controls = Controls()
    while controls.slower() != 10:
        pass
    t = Trainer(RunConfig(scenario=load_scenario("pricing"), algo="random", steps=10**9, n_envs=4),
                controls=controls)
    thread = t.start_thread()
    time.sleep(0.55)
    controls.stop()
    thread.join(timeout=2)
    assert 3 <= t.iteration <= 8


def test_greedy_view_does_not_learn_or_count_env_steps() -> None:
    controls = Controls()
    controls.set_greedy(True)
    t = Trainer(RunConfig(scenario=load_scenario("pricing"), algo="random", steps=10**9, n_envs=4),
                controls=controls)
    runner = threading.Thread(target=t.run, daemon=True)
    runner.start()
    time.sleep(0.2)
    controls.stop()
    runner.join(timeout=2)
    records = t.records.drain()
    assert records and all(r.greedy for r in records)
    assert t.env_steps == 0


def test_training_error_is_reported_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    t = make()

    def boom(*a, **k):
        raise RuntimeError("env exploded")

    monkeypatch.setattr(t.env, "step", boom)
    thread = t.start_thread()
    thread.join(timeout=5)
    assert t.stats.status == "error"
    assert "env exploded" in t.stats.error and "trainer.py" in t.stats.error


def test_bad_device_and_steps_are_user_errors() -> None:
    with pytest.raises(UserError, match="--device"):
        make(device="tpu")
    with pytest.raises(UserError, match="steps"):
        make(steps=0)


def test_bounded_series_keeps_whole_run_in_fixed_memory() -> None:
    s = BoundedSeries(capacity=100)
    for i in range(100_000):
        s.append(i, i)
    assert len(s.x) < 100
    assert s.x[0] == 0 and s.x[-1] > 90_000


def test_record_queue_drops_oldest() -> None:
    q = RecordQueue(maxlen=3)
    for i in range(5):
        q.put(StepRecord(i, i, 0, 0, (), (), {}, False))
    assert [r.iteration for r in q.drain()] == [2, 3, 4]
    assert q.drain() == []


def test_oracle_baseline_plays_nash() -> None:
    t = make("oracle", steps=400)
    t.run()
    assert t.kpis["mean_price"] == pytest.approx(100 / 3, rel=1e-5)
    ev = t.evaluate(episodes=1)
    assert ev["exploitability"] == pytest.approx(0, abs=1e-3)


def recorded(monkeypatch: pytest.MonkeyPatch, **constants: float) -> list[int]:
    """The steps a 100-step full-speed run records, with these trainer constants (and no second
    burst: RECORD_SECONDS is endless)."""
    from marl_tui.train import trainer as trainer_module

    for name, value in {"RECORD_SECONDS": 1e9, **constants}.items():
        monkeypatch.setattr(trainer_module, name, value)
    t = make(steps=8 * 100)
    t.records = RecordQueue(maxlen=1000)
    t.run()
    return [r.iteration for r in t.records.drain()]


def test_full_speed_records_bursts_of_consecutive_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nobody follows single steps at full speed: a burst of RECORD_BURST consecutive steps is
    recorded, then nothing until RECORD_SECONDS have passed (here: never). RECORD_SHARE < 0:
    records never count as cheap next to a step."""
    got = recorded(monkeypatch, RECORD_SHARE=-1.0, RECORD_BURST_SECONDS=1e9, RECORD_BURST=30)
    assert got == [*range(1, 31), 100]  # and the last step, which the finished run stops on


def test_a_watched_run_records_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Paused and stepped, or under a speed limit, every step has its record."""
    from marl_tui.train import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "RECORD_SECONDS", 1e9)
    monkeypatch.setattr(trainer_module, "RECORD_BURST", 1)
    controls = Controls(ControlState(paused=True))
    t = make(steps=8 * 50, controls=controls)
    t.records = RecordQueue(maxlen=1000)
    controls.step(20)
    thread = t.start_thread()
    deadline = time.monotonic() + 10
    while t.stats.iteration < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    controls.set_speed(1000)
    controls.resume()
    thread.join(timeout=10)
    assert t.stats.status == "finished"
    assert [r.iteration for r in t.records.drain()] == list(range(1, 51))


def pause_after(t: Trainer, controls: Controls, steps: int) -> None:
    """Let a started run take `steps` steps at full speed, then pause it and wait until it says so."""
    deadline = time.monotonic() + 10
    while t.stats.iteration < steps and time.monotonic() < deadline:
        time.sleep(0.005)
    controls.pause()
    deadline = time.monotonic() + 5
    while t.stats.status != "paused" and time.monotonic() < deadline:
        time.sleep(0.005)


@contextlib.contextmanager
def full_speed(monkeypatch: pytest.MonkeyPatch, **constants: float) -> Iterator[tuple[Trainer, Controls]]:
    """An endless run at full speed on its thread, with these trainer constants; stopped after."""
    from marl_tui.train import trainer as trainer_module

    for name, value in constants.items():
        monkeypatch.setattr(trainer_module, name, value)
    controls = Controls()
    t = make(steps=10**9, controls=controls)
    t.records = RecordQueue(maxlen=1000)
    thread = t.start_thread()
    try:
        yield t, controls
    finally:
        controls.stop()
        thread.join(timeout=2)


def test_a_pause_is_published_as_the_loop_settles() -> None:
    """Views in another process only see what is published: a run paused between steps must
    say "paused" without waiting for a step that will not come."""
    controls = Controls()
    t = make(steps=10**9, controls=controls)
    seen: list[str] = []
    t.publish_hook = lambda stats: seen.append(stats.status)
    thread = t.start_thread()
    try:
        pause_after(t, controls, 5)
        assert t.stats.status == "paused" and seen[-1] == "paused"
    finally:
        controls.stop()
        thread.join(timeout=2)


def test_bursts_rest_until_records_are_a_small_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """Very fast steps: a burst waits not only RECORD_SECONDS (here none) but until the records
    made are under RECORD_SHARE of the time since the last burst began (here: never again)."""
    quick = {"RECORD_SECONDS": 0.0, "RECORD_BURST_SECONDS": 0.0}  # a one-step burst, every step
    assert recorded(monkeypatch, RECORD_SHARE=-1.0, **quick) == list(range(1, 101))
    # Records may take a billionth of the loop: after one burst, none (the first step, before
    # any record was timed, counts as cheap).
    assert recorded(monkeypatch, RECORD_SHARE=1e-9, **quick) in ([1, 100], [1, 2, 100])


def test_a_burst_of_records_is_cut_short_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slow steps: a burst ends after RECORD_BURST_SECONDS, so records stay a small share."""
    assert recorded(monkeypatch, RECORD_SHARE=-1.0, RECORD_BURST_SECONDS=0.0) == [1, 100]


def test_records_cheap_next_to_a_step_are_all_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow learner at full speed: a record costs well under RECORD_SHARE of its step, so every
    step is recorded (long trails cost nothing)."""
    assert recorded(monkeypatch, RECORD_SHARE=1e9) == list(range(1, 101))


def test_a_pause_at_full_speed_records_the_step_it_stopped_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """At full speed most steps go unrecorded; once paused, the screen must still show the step
    the status line counts, with that step's own numbers."""
    with full_speed(monkeypatch, RECORD_SECONDS=1e9, RECORD_SHARE=-1.0, RECORD_BURST=1) as (t, controls):
        pause_after(t, controls, 40)
        records = t.records.drain()
        assert [r.iteration for r in records][0] == 1  # the one-step burst
        last = records[-1]
        assert last.iteration == t.stats.iteration > 40 and not last.greedy
        assert last.t == (last.iteration - 1) % 25 + 1  # t and episode as they were at that step
        assert last.episode == (last.iteration - 1) // 25
        assert last.actions == last.info["price"]  # the step's own tensors, not a later step's


def test_a_pause_is_not_time_the_loop_could_spend_on_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """Record shares count the loop's CPU time: after a pause, full speed records no more than
    before it (as wall-clock time, the pause made steps look slow and every step's record cheap)."""
    # One burst of 100 steps times a record; a record costs far more than RECORD_SHARE of a
    # step, unless a second's pause were a step.
    constants = {"RECORD_SECONDS": 1e9, "RECORD_BURST_SECONDS": 1e9, "RECORD_BURST": 100,
                 "RECORD_SHARE": 0.005}
    with full_speed(monkeypatch, **constants) as (t, controls):
        pause_after(t, controls, 150)
        time.sleep(1.0)
        t.records.drain()
        resumed_at = t.stats.iteration
        controls.resume()
        pause_after(t, controls, resumed_at + 40)
        # Only the step it paused on again (recorded as the pause is published).
        assert [r.iteration for r in t.records.drain()] == [t.stats.iteration]


def test_greedy_view_records_count_its_own_episodes() -> None:
    """The greedy view plays its own copy: its records say its own step within its own episode
    (the last step of an episode is step T, not 0)."""
    controls = Controls(ControlState(paused=True))
    t = make(steps=10**9, controls=controls)
    t.records = RecordQueue(maxlen=1000)
    controls.set_greedy(True)
    controls.step(30)
    thread = t.start_thread()
    try:
        deadline = time.monotonic() + 10
        while t.stats.greedy_steps < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        records = [r for r in t.records.drain() if r.greedy]
        assert [(r.t, r.episode) for r in records[23:27]] == [(24, 0), (25, 0), (1, 1), (2, 1)]
        assert t.stats.episodes == 0  # training finished none
    finally:
        controls.stop()
        thread.join(timeout=2)
