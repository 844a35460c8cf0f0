"""What-if on a paused step: the counterfactual is the env's own answer, the algorithm's values
agree with its explain numbers, bad questions get one line, and asking changes nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from marl_tui.config import load_scenario
from marl_tui.envs.base import DiscretisedEnv, make_env
from marl_tui.stream.frames import ControlState, Frame, WhatIfAnswer, WhatIfRefused, decode_to_app
from marl_tui.train.build import build_run
from marl_tui.train.callbacks.live_tap import LiveTap
from marl_tui.train.controls import Controls
from marl_tui.train.run_config import RunConfig
from tests.test_tui import started, step_to, until

FAST = {"maddpg": {"learning_starts": 0, "batch_size": 8, "updates_per_step": 1},
        "mappo": {"rollout_length": 4}, "qmix": {"learning_starts": 0, "batch_size": 8, "updates_per_step": 1}}
N_ENVS = 4


def wait_for(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 120
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


class Driven:
    """A run on a thread of its own, paused, with the app's live tap writing into a list."""

    def __init__(self, algo: str, scenario: str, steps: int) -> None:
        self.messages: list[Any] = []
        self.controls = Controls(ControlState(paused=True))
        config = RunConfig(scenario=load_scenario(scenario), algo=algo, seed=3, n_envs=N_ENVS, steps=steps,
                           overrides=FAST.get(algo, {}), checkpoint_every=0)
        self.run = build_run(config, self.controls, extra=[LiveTap(lambda b: self.messages.append(decode_to_app(b)))])
        self.thread = threading.Thread(target=self.run.run, daemon=True)
        self.thread.start()

    def step(self, k: int = 1) -> None:
        target = self.run.iteration + k
        self.controls.step(k)
        wait_for(lambda: self.run.iteration >= target and self.run.state_before is not None
                 and self.run.state_before.step == target, f"step {target}")

    def ask(self, agent: int, action: float, step: int | None = None,
            greedy: bool = False) -> WhatIfAnswer | WhatIfRefused:
        if step is None:
            step = self.run.greedy_steps if greedy else self.run.iteration
        query = self.controls.ask_what_if(greedy, step, agent, action)
        wait_for(lambda: any(isinstance(m, WhatIfAnswer | WhatIfRefused) and m.id == query.id
                             for m in list(self.messages)), f"the answer to what-if {query.id}")
        return next(m for m in self.messages if isinstance(m, WhatIfAnswer | WhatIfRefused) and m.id == query.id)

    def frame(self, step: int) -> Frame:
        wait_for(lambda: any(isinstance(m, Frame) and m.scene.step == step for m in list(self.messages)),
                 f"the frame of step {step}")
        return [m for m in self.messages if isinstance(m, Frame) and m.scene.step == step][-1]

    def finish(self) -> None:
        self.controls.resume()
        self.thread.join()
        assert self.run.status == "finished", self.run.error


@pytest.fixture
def driven() -> Iterator[Callable[..., Driven]]:
    made: list[Driven] = []

    def make(algo: str, scenario: str, steps: int = 10**6) -> Driven:
        made.append(Driven(algo, scenario, steps))
        return made[-1]

    yield make
    for d in made:
        d.controls.stop()
        d.thread.join()


@pytest.mark.parametrize(("algo", "scenario", "agent", "action"),
                         [("maddpg", "pricing", 0, 50.0), ("qmix", "fulfillment", 1, 1.0),
                          ("mappo", "warehouse", 2, 0.0), ("qmix", "pricing", 0, None)])
def test_the_counterfactual_reward_is_the_envs_own(driven, algo: str, scenario: str, agent: int,
                                                    action: float | None) -> None:
    d = driven(algo, scenario)
    d.step(6)
    before = d.run.env.get_state()  # the run is paused: the test reads the state the next step starts from
    d.step()
    taken = d.run.last_outcome(False).actions.clone()
    if action is None:  # QMIX on pricing acts on levels: ask for a level it did not take
        action = next(v for v in d.run.env.spec.action_levels
                      if v != d.run.last_outcome(False).native_actions[0, agent])
    got = d.ask(agent, action)
    assert isinstance(got, WhatIfAnswer), got
    copy = make_env(load_scenario(scenario), n_envs=N_ENVS, seed=3)
    if isinstance(d.run.env, DiscretisedEnv):
        copy = DiscretisedEnv(copy)
        taken[0, agent] = d.run.env.spec.action_levels.index(action)
    else:
        taken[0, agent] = action
    copy.set_state(before)
    expected = copy.step(taken).reward[0].double().tolist()
    assert got.replaced == pytest.approx(expected, rel=1e-6)
    assert got.action == pytest.approx(action)
    assert got.reward == pytest.approx(d.frame(d.run.iteration).scene.reward, rel=1e-6)
    # The best response is at least as good as the action taken and the one asked about.
    score = (lambda r: sum(r)) if copy.spec.cooperative else (lambda r: r[agent])
    assert score(got.best_reward) >= max(score(got.reward), score(got.replaced)) - 1e-6
    assert got.values is not None


@pytest.mark.parametrize(("algo", "scenario"), [("maddpg", "pricing"), ("mappo", "pricing"),
                                                ("qmix", "fulfillment"), ("maddpg", "fulfillment")])
def test_the_action_as_taken_changes_nothing_and_matches_explain(driven, algo: str, scenario: str) -> None:
    d = driven(algo, scenario)
    d.step(12)  # past a few updates
    frame = d.frame(d.run.iteration)
    i = 1
    got = d.ask(i, frame.scene.actions[i])
    assert isinstance(got, WhatIfAnswer), got
    assert got.replaced == got.reward and got.actions[i] == got.action
    v, e = got.values, frame.explain
    if algo == "maddpg":
        assert v.Q_replaced == v.Q_taken
        assert v.Q_greedy == pytest.approx(e.Q_i, rel=1e-5, abs=1e-6)
        assert (v.A_taken is None) == (scenario == "pricing") and v.A_taken == v.A_replaced
    elif algo == "mappo":
        assert v.ratio == 1.0 and v.A_taken == v.A_replaced
        assert pytest.approx(e.V[i], rel=1e-5, abs=1e-6) == v.V
    else:
        a_i = int(frame.scene.actions[i])
        assert v.Q_i_taken == v.Q_i_replaced == pytest.approx(e.Q_i[i][a_i], rel=1e-5, abs=1e-6)
        assert v.Q_total_greedy == pytest.approx(e.Q_total, rel=1e-5, abs=1e-6)
        assert v.greedy == e.greedy and v.dQtot_dQi >= 0 and v.A_taken == v.A_replaced


def test_the_greedy_view_acts_with_mu_so_the_critics_agree_with_explain(driven) -> None:
    d = driven("maddpg", "pricing")
    d.step(10)  # training, with updates
    d.controls.set_greedy(True)
    d.controls.step(1)
    wait_for(lambda: d.run.greedy_steps == 1 and d.run.state_before is not None and d.run.state_before.greedy,
             "a greedy step")
    wait_for(lambda: any(isinstance(m, Frame) and m.greedy for m in list(d.messages)), "the greedy frame")
    frame = next(m for m in d.messages if isinstance(m, Frame) and m.greedy)
    got = d.ask(0, 40.0, greedy=True)
    assert isinstance(got, WhatIfAnswer) and got.greedy, got
    # Played greedily, the actions taken are mu(o): the critics' values of them are explain's.
    assert got.values.Q_taken == pytest.approx(frame.explain.Q_i, rel=1e-5, abs=1e-6)
    assert got.values.Q_greedy == pytest.approx(frame.explain.Q_i, rel=1e-5, abs=1e-6)
    # Training's step stands, but the state kept is the greedy step's: one line says what to do.
    assert "press n" in d.ask(0, 40.0, step=d.run.iteration, greedy=False).reason


def test_bad_questions_get_one_line_and_the_run_goes_on(driven) -> None:
    d = driven("random", "pricing", steps=N_ENVS * 40)
    assert "no step yet" in d.ask(0, 30.0, step=1).reason
    d.step()
    assert d.ask(0, 30.0).values is None  # a baseline has no networks to ask
    assert "out of range" in d.ask(3, 30.0).reason and "1..3" in d.ask(7, 30.0).reason
    assert "out of bounds" in d.ask(0, 1e4).reason and "[1, 60]" in d.ask(0, -1.0).reason
    assert "not a number" in d.ask(0, float("nan")).reason
    assert "is gone" in d.ask(0, 30.0, step=0).reason
    d.controls.resume()
    assert "paused" in d.ask(0, 30.0).reason
    d.finish()


def _state_bytes(run: Any) -> list[bytes]:
    """Everything a run holds that a what-if could disturb, as bytes."""
    out: list[bytes] = []

    def walk(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            out.append(x.detach().cpu().contiguous().numpy().tobytes())
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                out.append(str(k).encode())
                walk(x[k])
        elif isinstance(x, list | tuple):
            for v in x:
                walk(v)
        else:
            out.append(repr(x).encode())

    walk([run.algo.state_dict(), run.env.get_state(), run.loop.state_dict(), torch.get_rng_state(),
          run.team_history.state_dict()])
    return out


@pytest.mark.parametrize(("algo", "scenario"), [("maddpg", "pricing"), ("qmix", "fulfillment"),
                                                ("mappo", "warehouse")])
def test_asking_changes_nothing_in_the_run(driven, algo: str, scenario: str) -> None:
    steps = N_ENVS * 120
    runs = []
    for ask in (False, True):
        d = driven(algo, scenario, steps)
        for k in range(8):
            d.step()
            d.frame(d.run.iteration)  # its frame sent before the next step is granted
            if ask:
                assert isinstance(d.ask(k % 3, float(d.run.env.spec.action_levels[k % 2]) if scenario == "pricing"
                                        else float(k % 2)), WhatIfAnswer)
        d.finish()
        runs.append(d)
    plain, asked = runs
    assert _state_bytes(plain.run) == _state_bytes(asked.run)
    # The frames of the steps taken while paused (after finish() the run goes on at full speed,
    # and which of those steps get a frame depends on the clock).
    scenes = [{m.scene.step: m.scene for m in d.messages if isinstance(m, Frame) and m.scene.step <= 8}
              for d in runs]
    assert sorted(scenes[0]) == list(range(1, 9)) and scenes[0] == scenes[1]


# ---------------------------------------------------------------------------- the view

async def _open_what_if(pilot: Any, steps: int) -> Any:
    from marl_tui.tui.screens.whatif import WhatIfScreen

    screen = await started(pilot)
    await step_to(pilot, steps)
    await pilot.press("w")
    await until(pilot, lambda: isinstance(pilot.app.screen, WhatIfScreen), what="the what-if view")
    view = pilot.app.screen
    await _answered(pilot, view)
    return screen, view


async def _answered(pilot: Any, view: Any) -> None:
    await until(pilot, lambda: view.answer is not None and view.answer.id == view.asked, what="the run's answer")


async def test_the_view_moves_the_action_and_shows_the_runs_answer() -> None:
    from test_tui import dashboard_app

    from marl_tui.tui.fmt import num
    from marl_tui.tui.screens.dashboard import DashboardScreen

    app = dashboard_app("pricing", "maddpg", n_envs=N_ENVS, overrides=FAST["maddpg"])
    async with app.run_test(size=(120, 40)) as pilot:
        dashboard, view = await _open_what_if(pilot, 3)
        taken = dashboard.frame.scene.actions
        assert view.answer.replaced == view.answer.reward  # a'_1 starts as taken
        await pilot.press("right")
        await _answered(pilot, view)
        a = view.answer
        assert a.agent == 0 and a.action == pytest.approx(taken[0] + 59 / 100, rel=1e-6)
        body = str(view.query_one("#whatif-body").render())
        assert num(a.replaced[0]) in body and "Q_1" in body and "best response" in body
        await pilot.press("m", "m")  # Nash, then the collusive price: 50 on the bundled pricing
        await _answered(pilot, view)
        assert view.answer.action == 50.0 and view.answer.replaced[0] != view.answer.reward[0]
        await pilot.press("up")  # round to the last store, its action as taken
        await _answered(pilot, view)
        assert view.answer.agent == 2 and view.answer.action == pytest.approx(taken[2])
        await pilot.press("n")  # the run steps; the view asks again about the new step
        await until(pilot, lambda: view.frame.scene.step == 4, what="the next step")
        await _answered(pilot, view)
        assert view.answer.step == 4
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)
        await pilot.press("space")  # running: w says to pause first, and opens nothing
        await until(pilot, lambda: dashboard.state() == "running", what="the run to resume")
        await pilot.press("w")
        assert isinstance(app.screen, DashboardScreen) and dashboard.check_action("whatif", ()) is False
        await pilot.press("q")


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_what_if_snapshot(size: tuple[int, int], snap_compare: Any, tmp_path: Path, monkeypatch: Any) -> None:
    """Pricing, MADDPG after its first updates: store 1 set to the collusive price."""
    from test_tui import settled, snapshot_app

    monkeypatch.chdir(tmp_path)

    async def run_before(pilot: Any) -> None:
        _, view = await _open_what_if(pilot, 80)
        await pilot.press("m", "m")
        await until(pilot, lambda: view.answer.id == view.asked and view.answer.action == 50.0, what="the answer")
        await settled(pilot)

    app = snapshot_app("pricing", "maddpg", {"learning_starts": 160, "batch_size": 32})
    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_the_views_terms_have_glossary_entries() -> None:
    from marl_tui.learn.glossary import entries_for_panel, lookup

    for term in ("D_i", "difference reward", "best response", "COMA", "a'_i", "π(a')/π(a)"):
        assert lookup(term) is not None and "whatif" in lookup(term).panels, term
    assert len(entries_for_panel("whatif")) == 5


async def test_a_replay_says_what_if_needs_a_live_run(tmp_path: Path) -> None:
    from marl_tui.tui.app import MarlApp
    from marl_tui.tui.recording import open_recording
    from marl_tui.tui.screens.replay import ReplayScreen
    from marl_tui.tui.screens.whatif import NEEDS_LIVE_RUN

    run = build_run(RunConfig(scenario=load_scenario("pricing"), algo="random", seed=0, n_envs=N_ENVS,
                              steps=N_ENVS * 30, out_dir=tmp_path / "run", checkpoint_every=0))
    from marl_tui.train.rundir import init_run_dir

    init_run_dir(run, tmp_path / "run")
    run.run()
    recording = open_recording(tmp_path / "run")
    app = MarlApp(first_screen=ReplayScreen(recording.source, recording.scenario))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("w")
        await pilot.pause()
        assert [n.message for n in app._notifications] == [NEEDS_LIVE_RUN]
        assert isinstance(app.screen, ReplayScreen)
        await pilot.press("q")


def test_a_question_does_not_release_a_run_holding_at_an_episodes_end() -> None:
    controls = Controls(ControlState())
    controls.hold()
    controls.ask_what_if(False, 25, 0, 30.0)
    assert controls.paused and controls.held
    controls.step()  # any other change is the view's say: the hold ends
    assert not controls.held


def test_an_env_whose_state_is_not_in_tensors_is_refused_in_one_line(driven) -> None:
    from marl_tui.train.run import StateBefore

    d = driven("random", "pricing", steps=N_ENVS * 40)
    d.step()
    kept = d.run.state_before
    # As an external env's get_state() is: nothing per copy (the run is paused; the test stands in).
    d.run.state_before = StateBefore(kept.greedy, kept.step, {"t": torch.tensor(1)})
    assert "not available here" in d.ask(0, 30.0).reason
