"""The loop and the run's promises: controls obey, callbacks see every step, a frame is the
moment it names (its explain is the decision that step took), runs repeat exactly."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import pytest
import torch

from marl_tui.config import load_scenario
from marl_tui.errors import UserError
from marl_tui.stream.frames import ChartPoints, ControlState, decode_to_app, encode
from marl_tui.train.build import build_run
from marl_tui.train.callbacks.live_tap import LiveTap
from marl_tui.train.controls import SPEEDS, Controls
from marl_tui.train.framing import build_frame
from marl_tui.train.loop import EpisodeEnd, StepOutcome
from marl_tui.train.run import Callback, Run
from marl_tui.train.run_config import RunConfig
from marl_tui.train.stats import BoundedSeries


def make(algo: str = "random", steps: int = 2_000, controls: Controls | None = None,
         scenario: str = "pricing", callbacks: tuple[Callback, ...] = (), **kw) -> Run:
    return build_run(RunConfig(scenario=load_scenario(scenario), algo=algo, steps=steps, n_envs=8, **kw),
                     controls=controls, extra=callbacks)


class Seen(Callback):
    """Remembers what the run announced, in order, and can act on it."""

    def __init__(self, on_step: Callable[[Run, StepOutcome], None] | None = None) -> None:
        self.events: list[tuple[str, int]] = []
        self.ends: list[EpisodeEnd] = []
        self._on_step = on_step

    def on_update(self, run: Run, metrics: dict[str, float]) -> None:
        self.events.append(("update", run.iteration))

    def on_step(self, run: Run, outcome: StepOutcome) -> None:
        self.events.append(("step", outcome.step))
        if self._on_step is not None:
            self._on_step(run, outcome)

    def on_greedy_step(self, run: Run, outcome: StepOutcome) -> None:
        self.events.append(("greedy", outcome.step))

    def on_episode_end(self, run: Run, ended: EpisodeEnd) -> None:
        self.events.append(("episode", ended.episodes))
        self.ends.append(ended)

    def on_end(self, run: Run) -> None:
        self.events.append(("end", run.iteration))


def wait_until(cond: Callable[[], bool], what: str) -> None:
    done = threading.Event()
    for _ in range(20_000):
        if cond():
            return
        done.wait(0.001)
    raise AssertionError(f"timed out waiting for {what}")


def test_budget_is_env_steps_over_all_copies() -> None:
    seen = Seen()
    t = make(steps=800, callbacks=(seen,))
    stats = t.run()
    assert stats.status == "finished"
    assert stats.env_steps == 800 and stats.iteration == 100
    assert stats.episodes == 4  # 25-step episodes
    assert [e for e in seen.events if e[0] == "episode"] == [("episode", k) for k in (1, 2, 3, 4)]
    assert seen.events[-1] == ("end", 100)


def test_same_seed_same_numbers() -> None:
    a, b = make(steps=1_000, seed=3), make(steps=1_000, seed=3)
    a.run(), b.run()
    assert a.team_history.y == b.team_history.y
    c = make(steps=1_000, seed=4)
    c.run()
    assert c.team_history.y != a.team_history.y


def test_each_step_begins_with_the_update_its_predecessors_made_ready() -> None:
    """update → act → step: after a step, the weights that acted are still in place."""
    seen = Seen()
    t = make("mappo", steps=8 * 40, overrides={"rollout_length": 8}, callbacks=(seen,))
    t.run()
    updates = [k for kind, k in seen.events if kind == "update"]
    # A rollout of 8 steps is full after steps 8, 16, ...; its update opens steps 9, 17, ...
    assert updates == [8, 16, 24, 32]
    assert seen.events.index(("update", 8)) == seen.events.index(("step", 8)) + 1


@pytest.mark.parametrize("algo", ["maddpg", "mappo", "qmix"])
def test_a_frame_explains_the_decision_its_step_took(algo: str) -> None:
    """Built after the step (as a paused view asks for it), the frame's explain equals explain()
    on the observation that step acted on with the weights that acted — and its actions are the
    greedy part of that decision."""
    captured: list[object] = []

    def at_step(run: Run, outcome: StepOutcome) -> None:
        if outcome.step == 30:  # what explain() said at the moment of the decision
            captured.append(run.algo.explain(outcome.obs, outcome.state))

    t = make(algo, steps=8 * 30, scenario="fulfillment", callbacks=(Seen(at_step),),
             overrides={"learning_starts": 64, "batch_size": 16} if algo != "mappo" else {"rollout_length": 8})
    t.run()  # the last step is step 30; no update came after it
    frame = build_frame(t, greedy=False, chart=ChartPoints())
    assert frame.scene.step == 30 and frame.explain == captured[0]
    assert decode_to_app(encode(frame)) == frame


def test_kpis_summed_on_the_device_equal_the_per_step_average() -> None:
    seen = Seen()
    length = load_scenario("warehouse").episode_length
    t = make("random", steps=8 * length, scenario="warehouse", callbacks=(seen,))
    per_step: list[dict[str, float]] = []

    class PerStep(Callback):
        def on_step(self, run: Run, outcome: StepOutcome) -> None:
            per_step.append({k: float(v) for k, v in run.env.kpis(outcome.info).items()})

    t.callbacks.append(PerStep())
    t.run()
    (ended,) = seen.ends
    steps = per_step
    assert len(steps) == length
    for k, v in ended.kpis.items():
        expect = sum(s[k] for s in steps) / len(steps)
        assert v == pytest.approx(expect, rel=1e-5, abs=1e-9) or (math.isnan(v) and math.isnan(expect))


def test_pause_blocks_and_a_granted_step_runs_exactly_one() -> None:
    controls = Controls(ControlState(paused=True))
    seen = Seen()
    t = make(steps=10**9, controls=controls, callbacks=(seen,))
    idle = threading.Event()

    class Idle(Callback):
        def on_idle(self, run: Run) -> None:
            idle.set()

    t.callbacks.append(Idle())
    thread = t.start_thread()
    try:
        wait_until(idle.is_set, "the pause")
        assert t.iteration == 0
        idle.clear()
        controls.step(1)
        wait_until(idle.is_set, "the pause after one step")
        assert t.iteration == 1 and [e for e in seen.events if e[0] == "step"] == [("step", 1)]
        idle.clear()
        controls.apply(controls.state)  # the same state again changes nothing
        controls.change(frames_granted=1)  # a change without a step wakes the pause once
        wait_until(idle.is_set, "the pause to see the change")
        assert t.iteration == 1
    finally:
        controls.stop()
        thread.join(timeout=5)
    assert not thread.is_alive() and t.stats.status == "stopped"


def test_a_grant_left_over_when_resuming_is_forfeited() -> None:
    controls = Controls(ControlState(paused=True))
    controls.step(3)
    controls.resume()
    controls.pause()
    # Paused again with the old grants used up: the loop must wait, so stop it from a thread.
    threading.Timer(0.05, controls.stop).start()
    assert controls.wait_turn() is False


def test_speeds_step_through_the_declared_list() -> None:
    controls = Controls()
    assert controls.speed is None
    assert controls.slower() == SPEEDS[-2]
    while controls.slower() != SPEEDS[0]:
        pass
    assert controls.slower() == SPEEDS[0]
    with pytest.raises(ValueError):
        controls.set_speed(3)


def test_speed_limit_paces_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """At 10 steps/s each step waits until 0.1 s after the last one (a fake clock)."""
    from marl_tui.train import controls as controls_module

    clock = [100.0]
    monkeypatch.setattr(controls_module.time, "monotonic", lambda: clock[0])
    controls = Controls(ControlState(speed=10))
    waits: list[float] = []

    def fake_wait(timeout: float | None = None) -> bool:
        waits.append(timeout)
        clock[0] += timeout
        return False

    monkeypatch.setattr(controls._cond, "wait", fake_wait)
    assert controls.wait_turn() and waits == []  # the first step goes at once
    assert controls.wait_turn() and sum(waits) == pytest.approx(0.1)


def test_greedy_view_does_not_learn_or_count_env_steps() -> None:
    seen = Seen()
    controls = Controls(ControlState(greedy=True, paused=True))
    t = make(steps=10**9, controls=controls, callbacks=(seen,))
    thread = t.start_thread()
    controls.step(30)
    wait_until(lambda: t.greedy_steps == 30, "30 greedy steps")
    controls.stop()
    thread.join(timeout=5)
    assert t.env_steps == 0 and t.iteration == 0
    assert [e for e in seen.events if e[0] != "end"] == [("greedy", k) for k in range(1, 31)]
    assert t.greedy.episodes == 1  # the greedy view counts its own episodes


def test_training_error_is_reported_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    t = make()

    def boom(*a, **k):
        raise RuntimeError("env exploded")

    monkeypatch.setattr(t.env, "step", boom)
    thread = t.start_thread()
    thread.join(timeout=5)
    assert t.stats.status == "error"
    assert "env exploded" in t.stats.error and "test_run.py" in t.stats.error


def test_a_non_finite_reward_stops_the_run_at_the_episode_end(monkeypatch: pytest.MonkeyPatch) -> None:
    from marl_tui.train.faults import TrainingFault

    t = make(steps=8 * 100)
    step = t.env.step

    def poisoned(actions: torch.Tensor):
        res = step(actions)
        if t.iteration == 30:
            res.reward[0, 0] = float("nan")
        return res

    monkeypatch.setattr(t.env, "step", poisoned)
    with pytest.raises(TrainingFault, match="non-finite reward.*Part 7"):
        t.run()
    assert t.iteration == 50 and t.status == "error"


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


def test_oracle_baseline_plays_nash() -> None:
    t = make("oracle", steps=400)
    t.run()
    assert t.kpis["mean_price"] == pytest.approx(100 / 3, rel=1e-5)
    ev = t.evaluate(episodes=1)
    assert ev["exploitability"] == pytest.approx(0, abs=1e-3)


def test_the_live_tap_sends_frames_when_granted_or_settled_and_carries_every_chart_point() -> None:
    """Running, a frame goes out only when the view asked for one; once the run settles into a
    pause, the view gets the step it stands on (n pressed quickly used its grants up earlier)."""
    sent: list[bytes] = []
    controls = Controls(ControlState(paused=True))
    t = make("mappo", steps=8 * 200, controls=controls, callbacks=(LiveTap(sent.append),),
             overrides={"rollout_length": 16})

    def frames() -> list:
        return [m for m in map(decode_to_app, sent) if type(m).__name__ == "Frame"]

    thread = t.start_thread()
    controls.change(paused=False)
    wait_until(lambda: t.iteration >= 60, "60 steps at full speed")
    assert frames() == []  # nothing asked for
    controls.change(paused=True)
    wait_until(lambda: t.stats.status == "paused" and len(frames()) == 1, "the settled frame")
    (frame,) = frames()
    assert frame.scene.step == t.iteration
    # Every episode and update since the start rides with it.
    assert [p[0] for p in frame.chart.episodes] == [200.0 * k for k in range(1, t.episodes + 1)]
    assert frame.stats.team_return == frame.chart.episodes[-1][1]
    assert len(frame.chart.losses["policy_loss"]) == t.updates
    controls.step(3)  # quick presses: one grant for three steps
    controls.grant_frame()
    wait_until(lambda: frames()[-1].scene.step == frame.scene.step + 3, "the frame of the step it stands on")
    assert t.iteration == frame.scene.step + 3
    controls.stop()
    thread.join(timeout=5)


def test_steps_per_second_leaves_out_the_time_spent_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a fake clock: paused from 100 s (the figures renewed at 101.2 s meanwhile), resumed at
    101.8 s, the run takes its 800 steps at once; a second later steps/s is 800, not 800 over
    the part of the pause since the last renewal too."""
    from marl_tui.train import run as run_module

    clock = [100.0]
    monkeypatch.setattr(run_module.time, "monotonic", lambda: clock[0])
    controls = Controls(ControlState(paused=True))
    t = make(steps=800, controls=controls)
    thread = t.start_thread()
    wait_until(lambda: t.stats.status == "paused", "the run to settle into its pause")
    clock[0] = 101.2
    t.publish()  # as a paused run does now and then
    clock[0] = 101.8
    controls.resume()
    thread.join(timeout=30)
    assert not thread.is_alive() and t.env_steps == 800
    clock[0] = 102.8
    t.publish()
    assert t.stats.steps_per_second == pytest.approx(800.0)
