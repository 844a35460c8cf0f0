"""`marl-tui` draws its first screen at once: the app and the picker import no torch, and what a
run's screen needs loads in the background while the picker is already up and answering."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from marl_tui.tui.app import HEAVY_MODULES, MarlApp
from marl_tui.tui.screens.picker import PickerScreen, ScenarioList
from marl_tui.tui.session import no_run_dir
from tests.test_picker import until

ROOT = Path(__file__).resolve().parent.parent


def test_the_app_and_the_picker_import_no_torch() -> None:
    """In a fresh interpreter (this one has torch already): everything up to the picker's first
    paint comes without torch, and torch does come with the run's screen."""
    code = ("import sys, marl_tui.cli, marl_tui.tui.launch, marl_tui.tui.app, marl_tui.tui.screens.picker; "
            "print('torch' in sys.modules); import importlib, marl_tui.tui.app as a; "
            "[importlib.import_module(m) for m in a.HEAVY_MODULES]; print('torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False", "True"]


class HeldPreload(MarlApp):
    """The background import waits until the test lets it go."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__(run_dir=no_run_dir)
        self.release = release

    def import_heavy(self) -> None:
        # On the UI thread the wait below would hold the first screen back: fail instead.
        assert threading.current_thread() is not threading.main_thread(), "imported on the UI thread"
        while not self.release.wait(0.05):
            if self.is_running is False:  # the app closed first
                return
        super().import_heavy()


@pytest.mark.usefixtures("workdir")
async def test_the_picker_is_up_and_answers_keys_before_the_heavy_import_ends() -> None:
    release = threading.Event()
    app = HeldPreload(release)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PickerScreen), "the picker")
        scenarios = app.screen.query_one(ScenarioList)
        await until(pilot, lambda: scenarios.size.height > 0 and scenarios.highlighted == 0, "the list drawn")
        await pilot.press("down")
        await until(pilot, lambda: scenarios.highlighted == 1, "down moves the highlight")
        assert not app.preloaded.is_set()  # all of this happened while the import was held
        release.set()
        await until(pilot, app.preloaded.is_set, "the heavy import done")
        assert all(name in sys.modules for name in HEAVY_MODULES)
