"""What a newcomer asked of the app: a notice when the window is too small, screenshots and a
report in the run directory, a teaching pace, a hold at each episode's end, one Quit in the
palette, and the app in a browser."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from marl_tui.config import load_scenario
from marl_tui.train.controls import SPEEDS
from marl_tui.tui.app import MarlApp
from marl_tui.tui.screens.dashboard import DashboardScreen
from marl_tui.tui.screens.too_small import TooSmallScreen
from marl_tui.tui.session import RunRequest, no_run_dir
from marl_tui.tui.terminal import MIN_COLUMNS, MIN_ROWS

ROOT = Path(__file__).resolve().parent.parent


async def until(pilot: Any, cond: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause()


def app_on(scenario: str = "pricing", algo: str = "oracle", paused: bool = True, **kw: Any) -> MarlApp:
    request = RunRequest(scenario=load_scenario(scenario), algo=algo, seed=0, n_envs=4, steps=kw.pop("steps", None))
    return MarlApp(request=request, start_paused=paused, run_dir=kw.pop("run_dir", no_run_dir), **kw)


async def started(pilot: Any) -> DashboardScreen:
    await until(pilot, lambda: isinstance(pilot.app.screen, DashboardScreen) and pilot.app.screen.charts is not None,
                "the run to start")
    return pilot.app.screen


async def test_a_too_small_terminal_says_so_and_the_run_comes_back() -> None:
    app = app_on()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await started(pilot)
        await pilot.resize_terminal(MIN_COLUMNS - 10, MIN_ROWS - 2)
        await until(pilot, lambda: isinstance(app.screen, TooSmallScreen), "the notice")
        text = str(app.screen.query_one("#too-small").render())
        assert f"needs {MIN_COLUMNS}×{MIN_ROWS}, have {MIN_COLUMNS - 10}×{MIN_ROWS - 2}" in text
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: app.screen is screen, "the dashboard again")
        await pilot.press("q")


async def test_ctrl_s_saves_the_screen_into_the_run_directory(tmp_path: Path) -> None:
    app = app_on(run_dir=lambda r: tmp_path / "run")
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await until(pilot, lambda: (tmp_path / "run" / "config.toml").is_file(), "the run directory")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: list((tmp_path / "run").glob("*.svg")), "the screenshot")
        svg = next((tmp_path / "run").glob("*.svg")).read_text()
        assert svg.startswith("<svg") and "pricing" in svg
        await pilot.press("q")


async def test_a_screenshot_without_a_run_directory_goes_to_the_current_one(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = app_on()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        assert app.deliver_screenshot("shot.svg") == str(tmp_path / "shot.svg")
        assert app.deliver_screenshot("shot.svg", str(tmp_path / "missing" / "folder")) is None  # said, not raised
        await pilot.press("q")


async def test_x_writes_a_report_of_the_moment_on_screen(tmp_path: Path) -> None:
    app = app_on(run_dir=lambda r: tmp_path / "run")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await started(pilot)
        controls = screen.session.controls
        controls.change(steps_granted=controls.state.steps_granted + 60)
        await until(pilot, lambda: screen.progress is not None and screen.progress.env_steps == 4 * 60, "60 steps")
        controls.grant_frame()  # the paused run sends the step it stands on
        await until(pilot, lambda: screen.frame is not None and screen.frame.scene.step == 60, "its frame")
        await pilot.press("x")
        report = tmp_path / "run" / "report.md"
        await until(pilot, report.is_file, "the report")
        text = report.read_text()
        assert "step 60" in text and "mean_price" in text and "33.33" in text  # the oracle's Nash price
        assert (tmp_path / "run" / "report-step-60.svg").is_file() and "report-step-60.svg" in text
        await pilot.press("q")


async def test_t_is_the_teaching_pace_and_o_holds_at_each_episode_end() -> None:
    app = app_on(paused=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await started(pilot)
        await pilot.press("t")
        assert screen.session.controls.speed == SPEEDS[0] == 1
        assert "speed limit 1 step/s" in screen.query_one("#status").plain
        await pilot.press("t")  # again: full speed
        assert screen.session.controls.speed is None
        await pilot.press("o")
        assert "holds at episode ends" in screen.query_one("#status").plain
        # Pricing episodes are 25 steps: it holds on the last step of an episode.
        await until(pilot, lambda: screen.state() == "paused", "the hold at the episode's end")
        await until(pilot, lambda: screen.frame is not None and screen.frame.scene.t == 25, "its frame")
        held = screen.frame.scene.step
        assert held % 25 == 0 and screen.progress.env_steps == 4 * held
        await pilot.press("space")
        await until(pilot, lambda: screen.frame.scene.step == held + 25 and screen.state() == "paused",
                    "the next hold")
        await pilot.press("q")


async def test_the_palette_offers_quit_once() -> None:
    from marl_tui.tui.commands import RunCommands

    app = app_on()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await started(pilot)
        titles = [t for t, _, _ in RunCommands(screen)._commands()]
        system = [c.title for c in app.get_system_commands(screen)]
        assert (titles + system).count("Quit") == 1
        await pilot.press("q")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_on_localhost_and_a_browser_tab_gets_the_app() -> None:
    """The page is served, and a tab's websocket gets the app itself drawing the picker (the
    app has no terminal there: textual-serve's driver draws through pipes)."""
    pytest.importorskip("textual_serve")
    port = _free_port()
    served = f"{sys.executable} -m marl_tui"  # not whatever `marl-tui` is first on PATH
    proc = subprocess.Popen([sys.executable, "-m", "marl_tui", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--command", served],
                            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        page = None
        for _ in range(300):  # the server starts within a few seconds; poll, never sleep blindly
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    page = response.read().decode()
                    break
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError(proc.stderr.read().decode()) from None
                time.sleep(0.1)
        assert page is not None and "marl-tui" in page
        assert asyncio.run(_tab_shows(f"http://127.0.0.1:{port}/ws?width=120&height=40", "pick a scenario"))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stderr.close()


async def _tab_shows(url: str, text: str) -> bool:
    """What a browser tab does: open the websocket and read what the app draws, until `text`
    is among it (True), or the session ends or goes quiet for a minute (False: an app that
    exits at once leaves the socket open and silent)."""
    import aiohttp

    drawn = b""
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        while True:
            try:
                message = await ws.receive(timeout=60)
            except TimeoutError:
                return False
            if message.type == aiohttp.WSMsgType.BINARY:
                drawn += message.data
                if text.encode() in drawn:
                    return True
            elif message.type != aiohttp.WSMsgType.TEXT:
                return False
