"""The marl-tui Textual app: the picker, then a dashboard per run.

    MarlApp()                      # picker first (`marl-tui`)
    MarlApp(request=RunRequest())  # straight to the dashboard (`marl-tui run`)

Options used by tests, screenshots and benchmarks: start_paused (runs start paused), run_dir
(where runs are written; `no_run_dir` writes nothing) and run_class (a Run subclass, e.g. one
that fails on purpose).

The first screen comes at once: this module and the picker import no torch. Torch and the
dashboard's modules load in a thread (`preload`) once that screen is drawn, and the training
processes' fork server imports them in a process of its own.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import events, work
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from marl_tui.stream.forkserver import warm_up
from marl_tui.tui.session import WATCH_SPEED, RunDirFactory, RunRequest, RunSession, no_run_dir, unique_run_dir
from marl_tui.tui.terminal import MIN_COLUMNS, MIN_ROWS

if TYPE_CHECKING:
    from marl_tui.stream.frames import ControlState
    from marl_tui.train.run import Run

# What a run's screen needs (torch among it), imported in the background after the first paint.
HEAVY_MODULES = ("marl_tui.tui.screens.dashboard",)


def freeze_imports() -> None:
    """Once per process: this one holds torch and Textual, ~200k long-lived objects, and each
    full garbage collection walked them all (150-200 ms in which no key was answered). Frozen
    after one last collection, they are left out; what is made later is collected as usual."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


class MarlApp(App[None]):
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses elsewhere find it too
    TITLE = "marl-tui"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]
    BINDINGS = [Binding("ctrl+q", "quit", "quit", show=False, priority=True),
                Binding("ctrl+s", "screenshot", "screenshot", show=False,
                        tooltip="save an SVG of the screen into the run directory")]

    def __init__(self, request: RunRequest | None = None, *, device: str = "cpu",
                 start_paused: bool = False, run_dir: RunDirFactory = unique_run_dir,
                 run_class: type[Run] | None = None, first_screen: Screen | None = None,
                 quit_on_signals: bool = False) -> None:
        super().__init__()
        self.quit_on_signals = quit_on_signals  # SIGTERM/SIGHUP quit like q (launch_app sets it)
        self.request = request
        self.device = device
        self.start_paused = start_paused
        self.run_dir_factory = run_dir
        self.run_class = run_class
        self.first_screen = first_screen  # a replay or a lesson, instead of the picker
        self.all_sessions: list[RunSession] = []  # every session started, for a clean exit
        self.preloaded = threading.Event()  # set once HEAVY_MODULES are imported
        warm_up()  # runs train in their own process; its fork server imports torch meanwhile

    def on_mount(self) -> None:
        if self.quit_on_signals:
            # `kill`, a closed terminal: stop and save every run, give the terminal back, and
            # exit 128 + the signal's number, as the shell expects.
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
                if sig is not None:
                    loop.add_signal_handler(sig, self._quit_on_signal, sig)
        if self.first_screen is not None:
            self.push_screen(self.first_screen)
        elif self.request is not None:
            self.start_run(self.request)
        else:
            self.push_screen(self._picker())
        self.call_after_refresh(self.preload)

    @work(thread=True, group="preload", exit_on_error=False)
    def preload(self) -> None:
        """Import what a run's screen needs while the first screen is up, so Enter in the
        picker answers at once; then set the long-lived objects aside (freeze_imports)."""
        self.import_heavy()
        self.preloaded.set()
        self.call_from_thread(freeze_imports)

    def import_heavy(self) -> None:
        for name in HEAVY_MODULES:
            importlib.import_module(name)

    def _picker(self, select: RunRequest | None = None) -> Any:
        from marl_tui.tui.screens.picker import PickerScreen

        return PickerScreen(device=self.device, select=select)

    def new_session(self, request: RunRequest, controls: ControlState | None = None) -> RunSession:
        """A session for `request`, starting in `controls` (default: paused if start_paused)."""
        from marl_tui.stream.frames import ControlState

        if request.watch:  # the trained policy, greedy, at a speed a person can follow
            controls = controls or ControlState(paused=self.start_paused, greedy=True, speed=WATCH_SPEED)
        session = RunSession(request, run_dir=no_run_dir if request.watch else self.run_dir_factory,
                             controls=controls or ControlState(paused=self.start_paused),
                             run_class=self.run_class)
        # Forget sessions whose process has ended (each holds its last frame and chart points;
        # kept, every restart grew the app): the clean exit waits only for live ones, and the
        # exit line names the newest.
        ended = [s for s in self.all_sessions if s.wait_stopped(0)]
        for old in ended:
            old.discard_unused_dir()
        self.all_sessions = [s for s in self.all_sessions if s not in ended] + [session]
        return session

    def start_run(self, request: RunRequest) -> None:
        from marl_tui.tui.screens.dashboard import DashboardScreen

        self.push_screen(DashboardScreen(self.new_session(request), new_session=self.new_session))

    def open_picker(self, select: RunRequest | None = None) -> None:
        """Back to the picker (the one the run was started from, or one showing `select`)."""
        from marl_tui.tui.screens.picker import PickerScreen

        below = self.screen_stack[-2] if len(self.screen_stack) >= 2 else None
        if isinstance(below, PickerScreen):
            self.pop_screen()
        else:
            self.switch_screen(self._picker(select))

    def screenshot_dir(self) -> Path:
        """Where screenshots go: the run directory of the screen shown, else the current one
        (Textual's default, ~/Downloads, is often missing on a server)."""
        run_dir = getattr(self.screen, "run_dir", None)
        return Path(run_dir) if run_dir is not None else Path.cwd()

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        folder = Path(path) if path else self.screenshot_dir()
        try:
            saved = self.save_screenshot(filename, str(folder), time_format)
        except OSError as exc:
            self.notify(f"screenshot not saved in {folder}: {exc.strerror or exc}", title="Screenshot",
                        severity="error")
            return None
        self.notify(f"saved {saved}", title="Screenshot", timeout=6)
        return saved

    def on_resize(self, event: events.Resize) -> None:
        """Below the size any panel needs, say so instead of a cropped screen (and lift the
        notice once the window is large enough again)."""
        from marl_tui.tui.screens.too_small import TooSmallScreen

        small = event.size.width < MIN_COLUMNS or event.size.height < MIN_ROWS
        if small and not isinstance(self.screen, TooSmallScreen):
            self.push_screen(TooSmallScreen())
        elif isinstance(self.screen, TooSmallScreen):
            if small:
                self.screen.show(event.size.width, event.size.height)
            else:
                self.pop_screen()

    def _quit_on_signal(self, sig: int) -> None:
        for session in self.all_sessions:
            session.controls.stop()
        self.exit(return_code=128 + sig)

    async def action_quit(self) -> None:
        """Quit from any state in well under a second: tell every run to stop, give them
        0.5 s in all to save and end, leave. A run still saving finishes after the screen
        is back (launch_app waits for it and says so)."""
        for session in self.all_sessions:
            session.controls.stop()  # every run gets the word at once
        deadline = time.monotonic() + 0.5
        for session in self.all_sessions:
            session.stop(timeout=max(0.0, deadline - time.monotonic()))
        self.exit()
