"""The picker does what the keys a person pressed say, whatever is still being computed: the
list has focus, stays on screen and does not wrap, a wrong field stops Start, and the choice of
algorithm reads apart from the cursor."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from textual.screen import Screen
from textual.widgets import Input, RadioSet
from textual.worker import get_current_worker

import marl_tui.catalogue
from marl_tui.config import bundled_names
from marl_tui.tui.app import MarlApp
from marl_tui.tui.screens.help import PickerHelpScreen
from marl_tui.tui.screens.picker import AlgoButton, PickerScreen, ScenarioList
from marl_tui.tui.session import RunRequest, no_run_dir

SIZE = (120, 40)


@pytest.fixture(autouse=True)
def no_local_scenarios(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the bundled scenarios: a ./scenarios folder would add entries."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def held_answers(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Reference answers that are not ready until the test sets the event (then as usual):
    keys are pressed while they compute, every time."""
    release = threading.Event()
    real = marl_tui.catalogue.cached_scenario_info

    def held(scenario: Any) -> dict[str, Any]:
        while not release.wait(0.05):
            if get_current_worker().is_cancelled:  # the app is closing
                raise RuntimeError("cancelled")
        return real(scenario)

    monkeypatch.setattr(marl_tui.catalogue, "cached_scenario_info", held)
    return release


def picker_app() -> tuple[MarlApp, list[RunRequest]]:
    """The app with its hand-off to a run recorded instead of training."""
    app = MarlApp(run_dir=no_run_dir)
    started: list[RunRequest] = []
    app.start_run = started.append  # type: ignore[method-assign]
    return app, started


async def until(pilot: Any, cond: Any, what: str, pauses: int = 500) -> None:
    for _ in range(pauses):
        if cond():
            return
        await pilot.pause()
    raise AssertionError(f"never happened: {what}")


async def opened(pilot: Any) -> PickerScreen:
    await until(pilot, lambda: isinstance(pilot.app.screen, PickerScreen), "the picker")
    return pilot.app.screen


def visible_text(scenarios: ScenarioList) -> list[str]:
    return ["".join(s.text for s in scenarios.render_line(y)) for y in range(scenarios.size.height)]


def shows_entry(picker: PickerScreen, index: int) -> bool:
    """The entry's first line (its name and kind) is among the list's visible lines."""
    entry = picker.entries[index]
    head = f"{entry.key}  {entry.scenario.kind if entry.scenario else ''}".rstrip()
    return any(line.strip().startswith(head) for line in visible_text(picker.query_one(ScenarioList)))


async def test_keys_pressed_while_answers_compute_go_to_the_entries_shown(
        held_answers: threading.Event) -> None:
    app, started = picker_app()
    async with app.run_test(size=SIZE) as pilot:
        picker = await opened(pilot)
        await pilot.press("down", "down", "enter")
        await until(pilot, lambda: started, "a run requested")
        assert not picker.ready.is_set()
        assert [r.scenario.name for r in started] == [bundled_names()[2]]
        assert started[0].algo == "mappo"
        # each entry says its answer is coming, then shows it
        assert all("computing…" in str(o.prompt.renderables[1].renderable)
                   for o in picker.query_one(ScenarioList).options)
        held_answers.set()
        await until(pilot, picker.ready.is_set, "every answer", pauses=5000)
        assert all(e.info is not None for e in picker.entries)


async def test_the_list_has_focus_on_open_and_back_from_a_run(held_answers: threading.Event) -> None:
    app, started = picker_app()
    async with app.run_test(size=SIZE) as pilot:
        picker = await opened(pilot)
        scenarios = picker.query_one(ScenarioList)
        assert picker.focused is scenarios
        # focus left elsewhere, a run started and p pressed there: the list again
        picker.query_one("#seed", Input).focus()
        await pilot.pause()
        await app.push_screen(Screen())  # what start_run shows: the run's dashboard
        app.open_picker()
        await until(pilot, lambda: app.screen is picker and picker.focused is scenarios,
                    "back on the picker, the list focused")
        # the radio set too: its cursor no longer decides what up does
        picker.query_one(RadioSet).focus()
        await app.push_screen(Screen())
        app.open_picker()
        await until(pilot, lambda: app.screen is picker and picker.focused is scenarios,
                    "back on the picker, the list focused")


async def test_up_on_the_first_entry_stays_there_in_sight() -> None:
    app, _ = picker_app()
    async with app.run_test(size=(80, 24)) as pilot:
        picker = await opened(pilot)
        scenarios = picker.query_one(ScenarioList)
        await pilot.press("up")
        assert scenarios.highlighted == 0 and shows_entry(picker, 0)
        last = scenarios.option_count - 1
        await pilot.press(*["down"] * (last + 2))  # past the end: stays on the last
        await pilot.pause()
        assert scenarios.highlighted == last and shows_entry(picker, last)
        await until(pilot, picker.ready.is_set, "every answer", pauses=5000)
        # answers made the entries taller: the highlighted one is still in sight
        await pilot.pause()
        assert shows_entry(picker, last)
        await pilot.press(*["up"] * (last + 2))
        await pilot.pause()
        assert scenarios.highlighted == 0 and shows_entry(picker, 0)


@pytest.mark.parametrize(("field", "value", "says"), [
    ("steps", "", "env steps is empty"),
    ("seed", "", "seed is empty"),
    ("lr", "", "learning rate is empty"),
    ("gamma", "1.5", "discount γ 1.5"),
])
async def test_a_wrong_field_stops_start_says_why_and_takes_focus(field: str, value: str,
                                                                  says: str) -> None:
    app, started = picker_app()
    async with app.run_test(size=SIZE) as pilot:
        picker = await opened(pilot)
        await until(pilot, lambda: picker._form_for == (picker.entries[0].key, "mappo"), "defaults")
        picker.query_one(f"#{field}", Input).value = value
        await pilot.press("enter")
        await pilot.pause()
        assert started == []
        assert says in str(picker.query_one("#form-error").content)
        assert picker.focused is picker.query_one(f"#{field}", Input)


async def test_choice_and_cursor_differ_and_enter_on_another_algorithm_only_chooses_it(
        held_answers: threading.Event) -> None:
    app, started = picker_app()
    async with app.run_test(size=SIZE) as pilot:
        picker = await opened(pilot)
        await pilot.press("tab", "down")  # the cursor from MAPPO (chosen) to QMIX
        await pilot.pause()
        marks = {b.id: str(b.render())[0] for b in picker.query(AlgoButton)}
        assert marks["algo-mappo"] == "●" and marks["algo-qmix"] == "○"
        reversed_names = {b.id for b in picker.query(AlgoButton)
                          if any(seg.style and seg.style.reverse for seg in b.render_line(0))}
        assert reversed_names == {"algo-qmix"}  # the cursor, drawn without colour
        await pilot.press("enter")
        await pilot.pause()
        assert started == [] and picker.algo == "qmix"
        assert "QMIX chosen" in str(picker.query_one("#form-error").content)
        assert str(picker.query_one("#algo-qmix", AlgoButton).render())[0] == "●"
        await pilot.press("enter")
        await until(pilot, lambda: started, "a run requested")
        assert started[0].algo == "qmix" and started[0].scenario.name == bundled_names()[0]


async def test_question_mark_explains_the_pickers_own_keys(held_answers: threading.Event) -> None:
    app, _ = picker_app()
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, PickerHelpScreen), "the picker's help")
        assert app.screen.KEY_ROWS is not None and any("scenario list" in v for _, v in app.screen.KEY_ROWS)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, PickerScreen), "the picker again")
