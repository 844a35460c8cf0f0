"""The app as a person uses it: picker, dashboard, keys, errors, layouts (pilot + snapshots).

Runs are small (a few parallel copies, the random baseline where learning does not
matter) and deterministic: snapshots start paused (Controls(ControlState(paused=True))), take a known
number of steps, and show no wall-clock figures while paused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from marl_tui.config import bundled_names, load_scenario
from marl_tui.stream.frames import Frame
from marl_tui.train.build import build_run
from marl_tui.train.run import Callback, Run
from marl_tui.train.run_config import RunConfig
from marl_tui.tui.app import MarlApp
from marl_tui.tui.screens.dashboard import DashboardScreen
from marl_tui.tui.screens.picker import PickerScreen
from marl_tui.tui.session import RunRequest, no_run_dir
from marl_tui.tui.widgets.error import ErrorView
from marl_tui.tui.widgets.fulfillment import FulfillmentPanel
from marl_tui.tui.widgets.pricing import PricingPanel
from marl_tui.tui.widgets.status import StatusLine
from marl_tui.tui.widgets.warehouse import WarehousePanel

ROOT = Path(__file__).resolve().parent.parent


async def until(pilot: Any, cond: Any, timeout: float = 90.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what or cond}")


def dashboard_app(scenario: str = "pricing", algo: str = "random", paused: bool = True,
                  n_envs: int = 4, **kw: Any) -> MarlApp:
    request = RunRequest(scenario=load_scenario(scenario), algo=algo, seed=0, n_envs=n_envs,
                         steps=kw.pop("steps", None), overrides=kw.pop("overrides", {}))
    return MarlApp(request=request, start_paused=paused, run_dir=kw.pop("run_dir", no_run_dir), **kw)


async def started(pilot: Any) -> DashboardScreen:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.charts is not None,
                what="the run to start")
    return app.screen


def shown_step(screen: DashboardScreen) -> int | None:
    return screen.query_one(StatusLine).step


def one_moment(screen: DashboardScreen) -> Frame:
    """Every panel shows the screen's frame: the status line's step, the scenario panel's step
    and explain, the why panel's step and numbers, the charts' last return."""
    frame = screen.frame
    assert frame is not None
    why = screen.query_one("#why").data
    assert shown_step(screen) == frame.scene.step == screen.scene.data.record.step == why.step
    assert screen.scene.data.explain is frame.explain and why.explain is frame.explain
    return frame


# ---------------------------------------------------------------------------- picker


async def test_picker_lists_the_bundled_scenarios_and_starts_a_run(tmp_path: Path,
                                                                   monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)  # runs/ lands here; no ./scenarios to pick up
    app = MarlApp()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PickerScreen))
        picker = app.screen
        assert [e.key for e in picker.entries] == bundled_names()
        options = picker.query_one("#scenarios")
        assert options.option_count == len(bundled_names())
        # pick pricing with the random baseline, then enter
        options.highlighted = [e.key for e in picker.entries].index("pricing")
        picker.select_algo("random")
        await pilot.pause()
        await until(pilot, lambda: picker._form_for == ("pricing", "random"), what="defaults")
        await pilot.press("enter")
        screen = await started(pilot)
        assert isinstance(screen.scene, PricingPanel)
        assert screen.session.request.algo == "random"
        await until(pilot, lambda: screen.frame is not None, what="a first step")
        # an app-started run writes a run directory like a headless one, and shows it
        run_dir = screen.session.run_dir
        assert run_dir is not None and (tmp_path / run_dir / "config.toml").is_file()
        assert str(run_dir) in screen.query_one(StatusLine).plain
        await pilot.press("q")


def test_picker_lists_local_scenarios_and_marks_broken_ones(tmp_path: Path, monkeypatch: Any) -> None:
    from marl_tui.config import bundled_dir
    from marl_tui.tui.screens.picker import load_entries

    local = tmp_path / "scenarios"
    local.mkdir()
    text = (bundled_dir() / "pricing.toml").read_text().replace('name = "pricing"', 'name = "mine"')
    (local / "mine.toml").write_text(text)
    (local / "broken.toml").write_text("name = 3\n")
    monkeypatch.chdir(tmp_path)
    entries = {e.source.rsplit("/", 1)[-1]: e for e in load_entries()}
    assert entries["mine.toml"].scenario is not None and entries["mine.toml"].scenario.name == "mine"
    assert entries["broken.toml"].scenario is None and entries["broken.toml"].error
    assert set(bundled_names()) <= set(entries)


async def test_picker_rejects_a_bad_field_with_one_line() -> None:
    app = MarlApp(run_dir=no_run_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PickerScreen))
        picker = app.screen
        await until(pilot, lambda: picker._form_for is not None and picker._form_for[1] == "mappo",
                    what="defaults")
        picker.query_one("#gamma").value = "1.5"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, PickerScreen)
        assert "γ" in str(picker.query_one("#form-error").content)


async def test_escape_leaves_a_text_field_and_p_comes_back_to_the_run() -> None:
    """A text field swallows q and ?: escape (shown in the footer) goes back to the list. From a
    run started with `marl-tui run`, p opens the picker on that scenario and algorithm."""
    app = dashboard_app("warehouse", "qmix")
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, PickerScreen), what="the picker")
        picker = app.screen
        assert picker._entry_key() == "warehouse" and picker.algo == "qmix"
        picker.query_one("#seed").focus()
        await pilot.pause()
        assert "leave_field" in {b.binding.action for b in picker.active_bindings.values()}
        await pilot.press("escape")
        assert picker.focused is picker.query_one("#scenarios")
        assert "leave_field" not in {b.binding.action for b in picker.active_bindings.values()}
        await pilot.press("q")


async def test_p_keeps_the_options_the_run_was_started_with() -> None:
    """`marl-tui run warehouse --algo mappo --envs 8 --seed 5 --steps 1234` and a learning rate,
    then p: the picker's form holds them, and enter starts that run again, not the defaults."""
    request = RunRequest(scenario=load_scenario("warehouse"), algo="mappo", seed=5, n_envs=8, steps=1234,
                         overrides={"lr": 0.005})
    app = MarlApp(request=request, start_paused=True, run_dir=no_run_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, PickerScreen), what="the picker")
        picker = app.screen
        await until(pilot, lambda: picker._enabled("steps"), what="the learner's defaults")
        await pilot.pause()
        values = {f: picker._value(f) for f in ("seed", "envs", "steps", "lr")}
        assert values == {"seed": "5", "envs": "8", "steps": "1234", "lr": "0.005"}
        again = picker.request()
        assert (again.seed, again.n_envs, again.steps, again.overrides) == (5, 8, 1234, {"lr": 0.005})
        await pilot.press("q")


# ---------------------------------------------------------------------------- dashboard


@pytest.mark.parametrize(("scenario", "panel"), [("pricing", PricingPanel),
                                                 ("warehouse", WarehousePanel),
                                                 ("fulfillment", FulfillmentPanel)])
async def test_each_scenario_kind_gets_its_panel(scenario: str, panel: type) -> None:
    app = dashboard_app(scenario)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await started(pilot)
        await pilot.press("n")
        await until(pilot, lambda: shown_step(screen) == 1, what="the first step")
        assert isinstance(screen.scene, panel)
        assert screen.scene.data is not None and screen.scene.data.record.step == 1
        await pilot.press("q")


def _flat(x: Any) -> list[Any]:
    """A struct's numbers in order (None and strings kept as they are)."""
    if hasattr(x, "__struct_fields__"):
        return [v for f in x.__struct_fields__ for v in _flat(getattr(x, f))]
    if isinstance(x, tuple):
        return [v for item in x for v in _flat(item)]
    return [x]


class ExplainAt(Callback):
    """Records explain() at the moment each step's decision was taken (an in-process twin run)."""

    def __init__(self) -> None:
        self.explains: dict[int, Any] = {}

    def on_step(self, run: Run, outcome: Any) -> None:
        self.explains[outcome.step] = run.algo.explain(outcome.obs, outcome.state)


@pytest.mark.parametrize("algo", ["maddpg", "mappo", "qmix"])
@pytest.mark.parametrize("scenario", ["pricing", "warehouse", "fulfillment"])
async def test_paused_steps_show_one_moment_with_the_real_explain(scenario: str, algo: str) -> None:
    """Paused, `n` three times: every step number on screen is the same, and the why panel's
    numbers are those explain() gave for that step's decision in a twin run of the same seed."""
    overrides = {"learning_starts": 8, "batch_size": 8} if algo != "mappo" else {"rollout_length": 2}
    twin = ExplainAt()
    run = build_run(RunConfig(scenario=load_scenario(scenario), algo=algo, seed=0, n_envs=4,
                              steps=4 * 3, overrides=overrides), extra=(twin,))
    run.run()
    request = RunRequest(scenario=load_scenario(scenario), algo=algo, seed=0, n_envs=4, steps=4 * 1000,
                         overrides=overrides)
    app = MarlApp(request=request, start_paused=True, run_dir=no_run_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await started(pilot)
        for k in (1, 2, 3):
            await pilot.press("n")
            await until(pilot, lambda k=k: shown_step(screen) == k, what=f"step {k}")
            frame = one_moment(screen)
            # The same numbers; float32 sums may differ in the last bits between processes
            # (torch's threads), so compare to 1e-5.
            assert type(frame.explain) is type(twin.explains[k])
            assert _flat(frame.explain) == pytest.approx(_flat(twin.explains[k]), rel=1e-5, abs=1e-6)
            assert screen.progress.env_steps == 4 * k or screen.progress.env_steps == 4 * (k - 1)
        await pilot.press("q")


async def test_space_freezes_the_screen_and_n_steps_exactly_one() -> None:
    app = dashboard_app("pricing", "random", paused=False, n_envs=2)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await started(pilot)
        await until(pilot, lambda: (shown_step(screen) or 0) > 5, what="training to run")
        one_moment(screen)  # at full speed too
        await pilot.press("space")
        await until(pilot, lambda: screen.progress.status == "paused", what="the pause")
        # The frame of the step it stopped on follows the pause.
        await until(pilot, lambda: shown_step(screen) == screen.progress.env_steps // 2,
                    what="the frame of the step it stopped on")
        frozen = one_moment(screen).scene.step
        assert "—" in screen.query_one(StatusLine).plain  # no steps/s while paused
        await pilot.press("n")
        await until(pilot, lambda: shown_step(screen) == frozen + 1, what="one step")
        one_moment(screen)
        assert screen.progress.env_steps // 2 in (frozen, frozen + 1)
        # the footer follows the state: resume + step while paused, pause while running
        keys = {b.binding.action for b in screen.active_bindings.values()}
        assert {"resume", "step"} <= keys and "pause" not in keys
        await pilot.press("space")
        await until(pilot, lambda: (shown_step(screen) or 0) > frozen + 3, what="resume")
        keys = {b.binding.action for b in screen.active_bindings.values()}
        assert "pause" in keys and "step" not in keys
        await pilot.press("q")


@pytest.mark.parametrize("paused", [True, False])
async def test_q_quits_promptly(paused: bool) -> None:
    app = dashboard_app("pricing", "mappo", paused=paused, n_envs=8)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await started(pilot)
        if not paused:
            await until(pilot, lambda: (shown_step(screen) or 0) > 2, what="training to run")
        session = screen.session
        await pilot.press("q")  # it gives its runs half a second to save (MarlApp.action_quit)
        await until(pilot, lambda: not app.is_running, what="the app to exit")
    assert session.wait_stopped(timeout=30.0)  # the training process has ended too


async def test_speed_greedy_save_and_restart_keys(tmp_path: Path) -> None:
    made = iter(range(100))
    app = dashboard_app("pricing", "oracle", paused=True,
                        run_dir=lambda r: tmp_path / f"run-{next(made)}")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await started(pilot)
        controls = screen.session.controls
        await pilot.press("minus", "minus")  # max -> 1000 -> 500 steps/s
        assert controls.speed == 500
        await pilot.press("plus")
        assert controls.speed == 1000
        await pilot.press("n")
        await until(pilot, lambda: shown_step(screen) == 1, what="a training step")
        await pilot.press("e")
        status = screen.query_one(StatusLine)
        assert controls.greedy and "GREEDY EVAL" in status.plain  # at once, though paused
        await pilot.press("n")
        await until(pilot, lambda: screen.frame.greedy and shown_step(screen) == 1, what="a greedy step")
        assert "greedy step 1" in status.plain and screen.scene.data.greedy
        one_moment(screen)
        assert screen.progress.env_steps == 4  # watching the greedy policy is not training
        await pilot.press("e")
        assert not controls.greedy
        await until(pilot, lambda: not screen.frame.greedy, what="the training view's frame")
        await pilot.press("s")  # the run saves (and takes the request) while paused
        run_dir = screen.session.run_dir
        await until(pilot, lambda: (run_dir / "checkpoints" / "latest.pt").is_file()
                    and "saved checkpoint" in (screen.progress.save_note or ""), what="the save")
        old = screen.session
        await pilot.press("r")
        await until(pilot, lambda: screen.session is not old and screen.charts is not None, what="restart")
        assert old.wait_stopped(timeout=2.0) and screen.session.controls.speed == 1000
        assert screen.session.run_dir == tmp_path / "run-1" and screen.state() == "paused"
        await pilot.press("q")


async def test_restarts_leave_no_old_footer_keys_behind() -> None:
    """Each restart composes the footer's keys again; the footer lets go of the old ones (in
    Textual's own Footer they stayed bound to it: ~300 KB a restart)."""
    from textual.widgets._footer import FooterKey

    from marl_tui.tui.widgets.footer import Footer

    app = dashboard_app("pricing", "random")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await started(pilot)
        footer = screen.query_one(Footer)
        for _ in range(3):
            await pilot.press("r")
            await until(pilot, lambda: screen.session.source is not None and screen.progress is not None
                        and screen.progress.status == "paused", what="the run restarted")
        await settled(pilot)
        bound = [node for node, _ in getattr(footer, "__watchers", {}).get("compact", [])]
        assert bound and all(node.is_attached for node in bound)
        assert len(bound) == len(footer.query(FooterKey))
        await pilot.press("q")


async def test_a_slowed_run_shows_every_step() -> None:
    """At full speed a frame comes twice a second; slowed down with `-`, someone is following the
    steps, and each one is drawn."""
    app = dashboard_app("pricing", "random", paused=True)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await started(pilot)
        drawn: list[int] = []
        show = screen.scene.show

        def watch(data: Any) -> None:
            if data.record is not None:
                drawn.append(data.record.step)
            show(data)

        screen.scene.show = watch
        for _ in range(9):  # max -> 2 steps/s, a step every 0.5 s
            await pilot.press("minus")
        assert screen.session.controls.speed == 2
        await pilot.press("space")
        await until(pilot, lambda: len(set(drawn)) >= 7, timeout=30, what="seven steps drawn")
        steps = sorted(set(drawn))
        gaps = [b - a for a, b in zip(steps, steps[1:], strict=False)]
        assert gaps.count(1) >= 0.75 * len(gaps), steps  # twice a second would skip most
        await pilot.press("q")


async def test_quick_restarts_each_get_a_run_directory(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """r pressed twice within a second: two runs named in the same second must not collide."""
    monkeypatch.chdir(tmp_path)
    request = RunRequest(scenario=load_scenario("pricing"), algo="random", seed=0, n_envs=4)
    app = MarlApp(request=request)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await started(pilot)
        await pilot.press("r")
        await pilot.pause(0.1)
        await pilot.press("r")
        await until(pilot, lambda: screen.charts is not None and screen.state() == "running",
                    what="the last restart")
        await pilot.press("q")
    assert all(s.wait_stopped(timeout=5.0) for s in app.all_sessions)
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert app.all_sessions[-1].run_dir.name in runs and len(set(runs)) == len(runs)
    assert all(s.build_error is None or "ended before" in s.build_error for s in app.all_sessions)


async def test_palette_offers_what_the_state_allows() -> None:
    from marl_tui.tui.commands import RunCommands

    app = dashboard_app("pricing", "random", paused=True)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await started(pilot)
        titles = {t for t, _, _ in RunCommands(screen)._commands()}
        assert {"Resume training", "Step once", "Glossary"} <= titles  # Quit: the app's own command
        assert "Pause training" not in titles
        await pilot.press("ctrl+p")
        await until(pilot, lambda: app.screen.has_class("--textual-command-palette"), what="the palette")
        await pilot.press("escape")
        await pilot.press("q")


async def test_tab_moves_between_panels() -> None:
    app = dashboard_app("warehouse", "random")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await started(pilot)
        seen = [screen.focused.id]
        for _ in range(3):
            await pilot.press("tab")
            seen.append(screen.focused.id)
        assert seen == ["scene", "why", "returns", "losses"]
        # folded layout: the focused panel is scrolled into view
        assert screen.query_one("#body").scroll_y > 0
        await pilot.press("q")


async def test_help_screen_opens_and_q_still_quits() -> None:
    app = dashboard_app("pricing", "random")
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, timeout=2.0)


# ---------------------------------------------------------------------------- errors


class ExplodingRun(Run):
    """Fails on the third step, as a broken environment or algorithm would."""

    def train_step(self) -> None:
        if self.iteration >= 2:
            raise RuntimeError("the reward exploded (injected by the test)")
        super().train_step()


async def test_a_training_error_is_shown_not_hung() -> None:
    app = dashboard_app("pricing", "random", paused=False, run_class=ExplodingRun)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await started(pilot)
        await until(pilot, lambda: screen.state() == "error", what="the error")
        await pilot.pause(0.2)
        view = screen.query_one(ErrorView)
        assert view.has_class("-shown")
        text = view.text.plain
        assert "the reward exploded" in text and "marl-tui train pricing" in text
        assert "Training stopped" in text
        await pilot.press("question_mark")  # still responsive
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape", "q")
        await until(pilot, lambda: not app.is_running, timeout=2.0)


async def test_a_training_process_that_dies_is_shown_not_hung() -> None:
    """Killed by the system (out of memory, a crash in native code): the app says so."""
    import signal

    app = dashboard_app("pricing", "random", paused=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await started(pilot)
        os.kill(screen.session.source.pid, signal.SIGKILL)
        await until(pilot, lambda: screen.state() == "error", what="the error")
        await pilot.pause(0.2)
        text = screen.query_one(ErrorView).text.plain
        assert "training process ended unexpectedly (exit code -9)" in text
        await pilot.press("r")  # a restart gets a fresh process
        await until(pilot, lambda: screen.charts is not None and screen.state() == "running", what="restart")
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, timeout=2.0)


async def test_sigterm_quits_like_q_and_saves(tmp_path: Path) -> None:
    """`kill` (or a closed terminal's SIGHUP): every run stops and saves, the app exits 143."""
    import signal

    caught: list[int] = []  # a SIGTERM the app failed to take lands here, not in pytest's lap
    previous = signal.signal(signal.SIGTERM, lambda sig, frame: caught.append(sig))
    try:
        app = dashboard_app("pricing", "random", paused=False, run_dir=lambda r: tmp_path / "run")
        app.quit_on_signals = True
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await started(pilot)
            await until(pilot, lambda: (shown_step(screen) or 0) > 2, what="training to run")
            os.kill(os.getpid(), signal.SIGTERM)
            await until(pilot, lambda: not app.is_running, timeout=2.0, what="the app to exit")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert not caught and app.return_code == 143
    assert app.all_sessions[0].wait_stopped(timeout=5.0)
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").is_file()


async def test_a_run_that_cannot_start_is_shown() -> None:
    request = RunRequest(scenario=load_scenario("pricing"), algo="mappo", n_envs=2,
                         overrides={"no_such_knob": 1.0})
    app = MarlApp(request=request, run_dir=no_run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await until(pilot, lambda: isinstance(screen, DashboardScreen) and screen.state() == "error")
        await pilot.pause(0.2)
        text = screen.query_one(ErrorView).text.plain
        assert "Could not start" in text and "no_such_knob" in text
        await pilot.press("q")


# ---------------------------------------------------------------------------- no terminal


def test_without_a_terminal_the_app_does_not_start() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for args in ([], ["run", "pricing", "--algo", "random"]):
        proc = subprocess.run([sys.executable, "-m", "marl_tui", *args], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "marl-tui train" in lines[0], proc.stderr
        assert proc.stdout == ""


def test_the_terminal_check_comes_before_textual_is_imported() -> None:
    code = ("import sys\nfrom marl_tui.tui.launch import launch_app\nfrom marl_tui.errors import UserError\n"
            "try:\n    launch_app()\nexcept UserError:\n    pass\n"
            "assert 'textual' not in sys.modules, 'textual imported before the TTY check'\n")
    proc = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------- snapshots

SNAP_STEPS = {"pricing": 55, "warehouse": 100, "fulfillment": 45}  # two finished episodes


def snapshot_app(scenario: str, algo: str = "random", overrides: dict[str, Any] | None = None) -> MarlApp:
    return dashboard_app(scenario, algo, paused=True, n_envs=4, overrides=overrides or {},
                         run_dir=lambda r: Path("runs") / f"{r.scenario.name}-{r.algo}-snapshot")


async def step_to(pilot: Any, steps: int) -> None:
    """Paused runs: take `steps` steps, then ask for the frame of the step it stands on."""
    screen = await started(pilot)
    controls, copies = screen.session.controls, screen.session.source.ready.n_envs
    controls.change(steps_granted=controls.state.steps_granted + steps)
    # A hang guard, not a speed bound: a learner's steps take minutes on a loaded 2-core machine.
    await until(pilot, lambda: screen.progress.env_steps == steps * copies, timeout=900.0, what=f"{steps} steps")
    controls.grant_frame()
    await until(pilot, lambda: shown_step(screen) == steps, what=f"the frame of step {steps}")
    await settled(pilot)


async def settled(pilot: Any, timeout: float = 10.0, same: int = 3) -> None:
    """Until `same` captures 0.2 s apart are alike: a scrollbar that appears narrows a panel,
    which then draws again for its new width (a snapshot taken between the two differed).
    Three, not two: once, in CI, two 120x40 dashboards differed from their snapshots only in
    the scene panel's scrollbar thumb; that it was still moving is a guess."""
    before = pilot.app.export_screenshot()
    alike = 1
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause(0.2)
        now = pilot.app.export_screenshot()
        alike = alike + 1 if now == before else 1
        if alike >= same:
            return
        before = now
    raise AssertionError("the screen kept changing")


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)], ids=["80x24", "120x40", "200x60"])
@pytest.mark.parametrize("scenario", ["pricing", "warehouse", "fulfillment"])
def test_dashboard_snapshot(scenario: str, size: tuple[int, int], snap_compare: Any,
                            tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)

    async def run_before(pilot: Any) -> None:
        await step_to(pilot, SNAP_STEPS[scenario])

    assert snap_compare(snapshot_app(scenario), terminal_size=size, run_before=run_before)


async def test_a_tall_screen_fills_the_scene_panel_and_a_smaller_one_takes_it_back(
        tmp_path: Path, monkeypatch: Any) -> None:
    """At 200x60 the warehouse trails grow into the rows the panel has, without a scrollbar;
    made smaller, the panel draws them one line tall again."""
    monkeypatch.chdir(tmp_path)
    app = snapshot_app("warehouse")
    async with app.run_test(size=(200, 60)) as pilot:
        await step_to(pilot, SNAP_STEPS["warehouse"])
        panel = app.screen.query_one(WarehousePanel)
        assert panel.spare_rows > 0
        assert panel.max_scroll_y == 0 and panel.virtual_size.height == panel.scrollable_content_region.height
        await pilot.resize_terminal(120, 40)
        await settled(pilot)
        assert panel.spare_rows == 0 and panel.max_scroll_y > 0  # it has more than fits there


# Each learner on its own kind, paused at a known step after its first updates: its why panel
# filled with its numbers.
LEARNER_SNAPSHOTS = [("pricing", "maddpg", 150), ("warehouse", "mappo", 200), ("fulfillment", "qmix", 150)]
EARLY_UPDATES = {"maddpg": {"learning_starts": 400, "batch_size": 64}, "mappo": {"rollout_length": 32},
                 "qmix": {"learning_starts": 400, "batch_size": 64}}


@pytest.mark.parametrize(("scenario", "algo", "steps"), LEARNER_SNAPSHOTS,
                         ids=[f"{s}-{a}" for s, a, _ in LEARNER_SNAPSHOTS])
def test_learner_dashboard_snapshot(scenario: str, algo: str, steps: int, snap_compare: Any, tmp_path: Path,
                                    monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)

    async def run_before(pilot: Any) -> None:
        await step_to(pilot, steps)

    assert snap_compare(snapshot_app(scenario, algo, EARLY_UPDATES[algo]), terminal_size=(120, 40),
                        run_before=run_before)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_picker_snapshot(size: tuple[int, int], snap_compare: Any, tmp_path: Path,
                         monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)

    async def run_before(pilot: Any) -> None:
        app = pilot.app
        await until(pilot, lambda: isinstance(app.screen, PickerScreen))
        await until(pilot, app.screen.ready.is_set, timeout=60, what="the oracles")
        # The random baseline's few settings: the learners' defaults are still being tuned.
        app.screen.select_algo("random")
        await settled(pilot)

    assert snap_compare(MarlApp(run_dir=no_run_dir), terminal_size=size, run_before=run_before)


def test_plot_lines_match_what_rich_reads_from_plotext() -> None:
    """The charts parse plotext's escape codes themselves (Rich's decoder was the costly part):
    every cell keeps its character, colour and background, and lines are padded to the width."""
    from rich.console import Console
    from rich.style import Style
    from rich.text import Text
    from textual_plotext.plot import Plot

    from marl_tui.tui.widgets.charts import ansi_strips

    plt = Plot()
    plt.plot([0, 1, 2, 3], [1.0, 3.0, 2.0, 4.0], color="cyan", marker="braille")
    plt.plot([0, 3], [2.0, 2.0], color="red", marker="-", yside="right")
    plt.title("team 4 · oracle 2")
    plt.plotsize(40, 12)
    ansi = plt.build()
    pad = Style(bgcolor="black")
    strips = ansi_strips(ansi, 44, pad)
    expected = Text.from_ansi(ansi).split("\n")
    assert len(strips) == len(expected) == 12
    console = Console(width=44)

    def cells(segments: Any) -> list[tuple[str, Any, Any]]:
        return [(ch, seg.style.color, seg.style.bgcolor) for seg in segments for ch in seg.text]

    for strip, line in zip(strips, expected, strict=True):
        assert strip.cell_length == 44
        got = cells(strip)
        assert got[:40] == cells(line.render(console))
        assert got[40:] == [(" ", None, pad.bgcolor)] * 4
    assert any(color is not None and color.number == 6 for _, color, _ in cells(strips[5]) + cells(strips[6]))


async def test_panels_keep_their_height_while_numbers_change_length() -> None:
    """A panel or status line whose text gets shorter at the same width keeps its height (a new
    layout repaints every panel, the app's biggest cost at full speed); a new width starts afresh."""
    from rich.text import Text
    from textual.app import App, ComposeResult

    from marl_tui.tui.widgets.panel import Panel
    from marl_tui.tui.widgets.status import StatusInfo

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield StatusLine(id="status")
            yield Panel(id="panel")

    def info(name: str) -> StatusInfo:
        return StatusInfo(scenario=name, algo="MAPPO", state="running", speed=None,
                          headline="", oracle_kpis={}, oracle_return=None, run_dir=None, greedy=False)

    app = Host()
    async with app.run_test(size=(60, 30)) as pilot:
        panel, status = app.query_one(Panel), app.query_one(StatusLine)
        panel.draw(lambda w: Text("\n".join(f"line {i}" for i in range(12))))
        status.show(info("a scenario name long enough to wrap the status line " * 2))
        await pilot.pause()
        tall, status_tall = panel._body.size.height, status.size.height
        panel.draw(lambda w: Text("two\nlines"))
        status.show(info("short"))
        await pilot.pause()
        assert tall == 12 and panel._body.size.height == tall and "two" in panel._body.render().plain
        assert status.size.height == status_tall
        await pilot.resize_terminal(70, 30)
        await pilot.pause()
        assert panel._body.size.height == 2
        assert status.size.height < status_tall


def test_q_in_a_real_terminal_says_where_the_run_is(tmp_path: Path) -> None:
    """`marl-tui run` under a pseudo-terminal: q gives the shell back with one line naming the
    run directory and what to do with it (here a run that has finished: eval it, watch it)."""
    import pty
    import struct
    import threading

    fcntl = pytest.importorskip("fcntl")
    termios = pytest.importorskip("termios")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "marl_tui", "run", "pricing", "--algo", "random", "--steps", "800",
         "--envs", "8"], stdin=slave, stdout=slave, stderr=slave, cwd=tmp_path,
        env={**os.environ, "TERM": "xterm-256color", "OMP_NUM_THREADS": "1"})
    os.close(slave)
    screen = bytearray()

    def drain() -> None:  # the app draws into the terminal; read it so it never blocks
        try:
            while chunk := os.read(master, 65536):
                screen.extend(chunk)
        except OSError:
            pass

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        done = "✓ finished".encode()  # the status line's mark (charts say "no finished episode")
        while done not in screen and time.monotonic() < deadline:
            time.sleep(0.1)
        assert done in screen, "the app did not show its finished run"
        os.write(master, b"q")
        proc.wait(timeout=30)
        reader.join(timeout=5)  # reading fails once the app has closed the terminal
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert proc.returncode == 0
    # Textual draws on stderr; the line comes after the screen is given back.
    line = screen.decode(errors="replace").rstrip().splitlines()[-1]
    run_dir = next((tmp_path / "runs").iterdir()).relative_to(tmp_path)
    assert f"finished and saved in {run_dir}" in line and f"marl-tui eval {run_dir}" in line
