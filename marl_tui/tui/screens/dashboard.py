"""The live dashboard: status, the scenario panel, "why", and charts for one run — one moment.

The run trains in its own process and pushes typed frames (stream/frames.py). Its source wakes
this screen with a coalescing message; the screen takes the newest frame and sets its reactive
`frame`, and every panel renders that one frame: the status line's step, the scenario panel,
the why panel's numbers (for the decision taken in that step) and the charts' last points all
belong to the same step. Counters that tick faster (env steps, steps/s) come as Progress and
are shown apart.

The screen sets the pace: it asks the run for the next frame (Controls.grant_frame) once it has
drawn one — at full speed after FRAME_SECONDS, at a slow speed at once (each step shows), and
while paused only with `n`, a pause or a switch of view.
"""

from __future__ import annotations

import threading
import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static

from marl_tui.config import ALGO_TITLES, HEADLINE_KPI
from marl_tui.stream.frames import Frame, Progress
from marl_tui.stream.sources import LiveSource
from marl_tui.train.controls import SPEEDS
from marl_tui.tui.commands import RunCommands
from marl_tui.tui.frame_view import ChartHistory, run_body, scene_data, why_data
from marl_tui.tui.session import WATCH_SPEED, RunSession
from marl_tui.tui.widgets.charts import LossChart, LossData, ReturnChart, ReturnData
from marl_tui.tui.widgets.error import ErrorView
from marl_tui.tui.widgets.footer import Footer
from marl_tui.tui.widgets.scene import SceneData
from marl_tui.tui.widgets.scenes import scene_panel_for
from marl_tui.tui.widgets.status import StatusInfo, StatusLine, speed_label
from marl_tui.tui.widgets.why import WhyPanel

FRAME_SECONDS = 1.0  # at full speed, a new frame (every panel redrawn) at most this often (charts cost)
EVERY_STEP_SPEED = 10  # at this speed limit or slower, every step is a frame
STATUS_SECONDS = 0.25  # progress counters on the status line while running

class RunNews(Message):
    """The run's source has something new (a frame, progress, its end). Only the newest
    matters: the source keeps the newest frame and merges the chart points of any skipped."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunNews)


class RunBuilt(Message):
    """The session's build finished (the run is training, or build_error says why not)."""


class DashboardScreen(Screen[None]):
    COMMANDS = Screen.COMMANDS | {RunCommands}
    BINDINGS = [
        Binding("space", "pause", "pause", tooltip="pause training"),
        Binding("space", "resume", "resume", tooltip="resume training"),
        Binding("n", "step", "step", tooltip="one batched step while paused"),
        Binding("plus,equals_sign", "faster", "speed", key_display="+/-", tooltip="faster"),
        Binding("minus,underscore", "slower", "slower", show=False),
        Binding("t", "teach", "teach", show=False, tooltip="teaching pace: one step a second (again: full speed)"),
        Binding("o", "episode_pause", "pause each episode", show=False,
                tooltip="hold still at the end of every episode (on/off)"),
        Binding("x", "report", "report", show=False,
                tooltip="write report.md (KPIs against the oracle, the charts) into the run directory"),
        Binding("e", "greedy", "greedy", tooltip="greedy evaluation view"),
        Binding("e", "learn", "learn", tooltip="back to training"),
        Binding("r", "restart", "restart", tooltip="restart with the same settings"),
        Binding("s", "save", "save", tooltip="save a checkpoint"),
        Binding("p", "picker", "picker", show=False),
        Binding("g", "glossary", "glossary", show=False, tooltip="what the numbers on the focused panel mean"),
        Binding("w", "whatif", "what if", show=False,
                tooltip="while paused: what if one agent had acted differently in this step?"),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit", tooltip="stop training and quit"),
    ]

    frame: reactive[Frame | None] = reactive(None, always_update=True, init=False)
    progress: reactive[Progress | None] = reactive(None, always_update=True, init=False)

    def __init__(self, session: RunSession, *, new_session: object = None) -> None:
        super().__init__()
        self.session = session
        self._new_session = new_session  # callable(request, controls) -> RunSession (restart)
        self.scene = scene_panel_for(session.request.scenario.kind)
        self._reset_view_state()

    def _reset_view_state(self) -> None:
        self.charts: ChartHistory | None = None
        self._grant_timer: Timer | None = None
        self._frame_at = 0.0
        self._status_at = 0.0
        self._state = ""
        self._save_note: str | None = None
        self._findings: tuple[str, ...] = ()
        self._save_asked = False
        self.frames_shown = 0

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        yield ErrorView(id="error")
        yield Static(id="doctor")
        yield from run_body(self.scene)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.scene.add_class("text-panel")
        sc = self.session.request.scenario
        self.scene.border_title = sc.name if sc.kind in sc.name else f"{sc.kind} · {sc.name}"
        self._build()
        self._show_status()
        self.scene.focus()
        load = self.session.request.load
        if load is not None and not self.session.request.watch:
            self.notify(f"training on from {load} (a new run directory); to only watch its policy: "
                        f"marl-tui watch {load}", timeout=6)

    def on_unmount(self) -> None:
        self.session.stop(timeout=0)  # it saves and ends on its own

    # ------------------------------------------------------------------ run lifecycle
    def _build(self) -> None:
        """Start the training process from a plain thread (it waits for the run to be built)."""
        session = self.session

        def build() -> None:
            session.build()
            if session is self.session:  # not restarted meanwhile
                self.post_message(RunBuilt())

        threading.Thread(target=build, name="marl-tui-build", daemon=True).start()

    def on_run_built(self, message: RunBuilt) -> None:
        s = self.session
        if s.source is None:
            self._show_error(s.build_error or "", building=True)
            self._state_changed()
            return
        ready = s.source.ready
        self.charts = ChartHistory(ready.spec.n_agents)
        self.charts.add(ready.history)
        source = s.source
        source.on_news = lambda: self.post_message(RunNews()) if source is self.session.source else None
        s.controls.grant_frame()
        self.on_run_news(RunNews())

    def state(self) -> str:
        """building, running, paused, finished, watching (a finished run's greedy view playing),
        stopped or error."""
        s = self.session
        if s.build_error:
            return "error"
        if s.source is None:
            return "building"
        status = s.source.status
        if status in ("error", "stopped") or (status == "finished" and not s.controls.greedy):
            return status
        if s.controls.paused:
            return "paused"
        return "watching" if status == "finished" else "running"

    @property
    def training_over(self) -> bool:
        """The budget is spent (or this is `marl-tui watch`): only the greedy view can play."""
        s = self.session
        return s.request.watch or (s.source is not None and s.source.status == "finished")

    @property
    def has_greedy_policy(self) -> bool:
        return self.session.request.algo != "random"

    # ------------------------------------------------------------------ what the run pushed
    def on_run_news(self, message: RunNews) -> None:
        source = self.session.source
        if source is None:
            return
        self.progress = source.progress
        taken = source.take_frame()
        if taken is not None:
            frame, points = taken
            for p in points:
                self.charts.add(p)
            self.frame = frame
        self._tell_what_if(source, None if taken is None else taken[0])

    def _tell_what_if(self, source: LiveSource, frame: Frame | None) -> None:
        """An open what-if follows the run: a new paused step is asked about, an answer shown."""
        from marl_tui.tui.screens.whatif import WhatIfScreen

        screen = self.app.screen
        if isinstance(screen, WhatIfScreen):
            if frame is not None:
                screen.follow(frame)
            screen.show_answer(source.what_if)

    def watch_progress(self, progress: Progress | None) -> None:
        now = time.monotonic()
        if self.state() != "running" or now - self._status_at >= STATUS_SECONDS:
            self._show_status()
        note = progress.save_note if progress else None
        if note and note != self._save_note:
            self._save_note = note
            if self._save_asked:
                self._save_asked = False
                self.notify(note, timeout=4, severity="warning" if "not saved" in note else "information")
        if progress is not None and progress.status == "error":
            self._show_error(progress.error or "unknown error")
        self._show_findings(progress.findings if progress is not None else ())
        controls = self.session.controls
        if progress is not None and progress.held and not controls.paused:
            # The run held still at an episode's end (o): the screen's controls follow it, and
            # the step it stopped on is asked for.
            controls.change(paused=True, frames_granted=controls.state.frames_granted + 1)
        self._state_changed()

    def watch_frame(self, frame: Frame | None) -> None:
        if frame is not None:
            self.show_frame(frame)

    def show_frame(self, frame: Frame) -> None:
        """Every panel renders this one frame."""
        self.frames_shown += 1
        self._frame_at = time.monotonic()
        self._show_status()
        self._show_scene(frame)
        self._show_why(frame)
        self._show_charts(frame)
        self._next_grant()

    def _next_grant(self) -> None:
        """Ask for the next frame: at once when every step is watched, after FRAME_SECONDS at
        full speed, never while paused (n, space and e ask for theirs)."""
        if self._grant_timer is not None:
            self._grant_timer.stop()
            self._grant_timer = None
        if self.state() not in ("running", "watching"):
            return
        speed = self.session.controls.speed
        if speed is not None and speed <= EVERY_STEP_SPEED:
            self.session.controls.grant_frame()
        else:
            self._grant_timer = self.set_timer(FRAME_SECONDS, self.session.controls.grant_frame)

    def _state_changed(self) -> None:
        state = self.state()
        if state != self._state:
            self._state = state
            self.refresh_bindings()
            if state == "finished":
                self._say_finished()

    def _say_finished(self) -> None:
        """The budget is spent: learning stops; say what comes next (only what applies)."""
        where = self.session.run_dir
        watch = "e plays the final policy greedily · " if self.has_greedy_policy else ""
        if where is None:
            self.notify(f"finished: the budget is spent. {watch}r trains again", timeout=8)
            return
        self.notify(f"finished and saved in {where}. {watch}r trains again. Later: marl-tui replay "
                    f"{where} · marl-tui watch {where}", timeout=10)

    # ------------------------------------------------------------------ panels
    def _show_status(self) -> None:
        s, req = self.session, self.session.request
        self._status_at = time.monotonic()
        ready = s.source.ready if s.source is not None else None
        self.query_one(StatusLine).show(StatusInfo(
            scenario=req.scenario.name, algo=ALGO_TITLES.get(req.algo, req.algo), state=self.state(),
            frame=self.frame, progress=self.progress if s.source is not None else None,
            speed=s.controls.speed, headline=HEADLINE_KPI.get(req.scenario.kind, ""),
            oracle_kpis=dict(ready.oracle.kpis) if ready else {},
            oracle_return=ready.oracle.team_return if ready else None,
            run_dir=str(s.run_dir) if s.run_dir else None, greedy=s.controls.greedy,
            episode_hold=s.controls.state.pause_each_episode,
        ))

    def _show_scene(self, frame: Frame) -> None:
        req = self.session.request
        self.scene.show(scene_data(frame, self.session.source.ready, req.scenario, req.algo,
                                   paused=self.state() == "paused"))

    def _show_why(self, frame: Frame) -> None:
        req = self.session.request
        self.query_one(WhyPanel).show(why_data(frame, self.session.source.ready, req.algo, req.scenario.kind))

    def _show_charts(self, frame: Frame) -> None:
        ready, charts = self.session.source.ready, self.charts
        self.query_one(ReturnChart).set_data(ReturnData(
            team=charts.team.snapshot(), agents=tuple(s.snapshot() for s in charts.agents),
            agent_names=tuple(ready.spec.agent_names), oracle_team=ready.oracle.team_return,
            episode_length=ready.spec.episode_length, cooperative=ready.spec.cooperative,
            # The status line's figure (a long history keeps every other point, maybe not the last);
            # the greedy view's own mean is not this chart's.
            title_return=None if frame.greedy else frame.stats.team_return,
        ))
        self.query_one(LossChart).set_data(LossData(
            series={k: s.snapshot() for k, s in charts.losses.items()}, algo=self.session.request.algo))

    def _show_findings(self, findings: tuple[str, ...]) -> None:
        """The doctor's banner: the study guide's Part 7 symptoms it sees now, with the advice."""
        banner = self.query_one("#doctor", Static)
        if findings == self._findings:
            return
        self._findings = findings
        banner.set_class(bool(findings), "-shown")
        text = Text()
        for line in findings:
            text.append("doctor: ", style="bold yellow")
            text.append(line + "\n")
        text.append("g explains the terms; `marl-tui doctor RUN_DIR` checks a finished run", style="dim")
        banner.update(text)

    def _show_error(self, message: str, building: bool = False) -> None:
        self.query_one(ErrorView).show(
            message, str(self.session.run_dir) if self.session.run_dir else None,
            self.session.request.headless_command(), building=building)

    # ------------------------------------------------------------------ keys
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        state = self.state()
        live = state in ("running", "paused", "watching")
        controls = self.session.controls
        if action == "pause":
            return state in ("running", "watching", "building") and not controls.paused
        if action == "resume":
            return state == "paused" or (state == "building" and controls.paused)
        if action == "step":
            return state == "paused"
        if action in ("faster", "slower", "teach", "episode_pause"):
            return live or state == "building"
        if action == "whatif":
            return state == "paused" and self.frame is not None
        if action == "report":
            return self.session.run_dir is not None and self.frame is not None
        if action == "greedy":
            return (live or state == "finished") and not controls.greedy and self.has_greedy_policy
        if action == "learn":
            return live and controls.greedy and not self.training_over
        if action == "restart":
            return not self.session.request.watch  # `marl-tui watch` plays a policy; it trains nothing
        if action == "save":
            learning = live and not self.training_over
            return True if learning and self.session.run_dir is not None else (None if learning else False)
        return True

    def _keyed(self) -> None:
        self.refresh_bindings()
        self._show_status()

    def action_pause(self) -> None:
        # The frame of the step it stops on comes once it has stopped.
        self.session.controls.change(paused=True, frames_granted=self.session.controls.state.frames_granted + 1)
        self._keyed()

    def action_resume(self) -> None:
        self.session.controls.change(paused=False, frames_granted=self.session.controls.state.frames_granted + 1)
        self._keyed()

    def action_step(self) -> None:
        if self.state() != "paused":
            return
        c = self.session.controls.state
        self.session.controls.change(steps_granted=c.steps_granted + 1, frames_granted=c.frames_granted + 1)

    def action_faster(self) -> None:
        self.notify(speed_label(self.session.controls.faster()), timeout=1.5)
        self._keyed()
        self._next_grant()

    def action_slower(self) -> None:
        self.notify(speed_label(self.session.controls.slower()), timeout=1.5)
        self._keyed()

    def action_teach(self) -> None:
        """Teaching pace, or back to full speed when already there."""
        teaching = self.session.controls.speed == SPEEDS[0]
        self.session.controls.set_speed(None if teaching else SPEEDS[0])
        self.notify(speed_label(None) if teaching else
                    f"teaching pace: {speed_label(SPEEDS[0])} (+ faster, t again: full speed, o: hold at "
                    "each episode's end)", timeout=3)
        self._keyed()
        self._next_grant()

    def action_episode_pause(self) -> None:
        on = not self.session.controls.state.pause_each_episode
        self.session.controls.change(pause_each_episode=on)
        self._show_status()
        self.notify("holds still at the end of every episode (space goes on)" if on else
                    "no longer holds at episode ends", timeout=3)

    def action_report(self) -> None:
        from marl_tui.tui.report import write_report

        s = self.session
        try:
            path = write_report(self.app, s.run_dir, s.request, self.frame, s.source.ready,
                                self.charts.team.snapshot())
        except OSError as exc:
            self.notify(f"report not written: {exc.strerror or exc}", severity="error")
            return
        self.notify(f"wrote {path}", timeout=6)

    @property
    def run_dir(self) -> object:
        return self.session.run_dir

    def action_greedy(self) -> None:
        self._switch_view(greedy=True)
        self.notify("greedy evaluation view: the policy plays without exploration on its own copy; "
                    "no learning until you press e again", timeout=4)

    def action_learn(self) -> None:
        self._switch_view(greedy=False)
        self.notify("back to training", timeout=1.5)

    def _switch_view(self, greedy: bool) -> None:
        """The panels show the chosen view's newest step once the run sends it (a paused run
        with no greedy step yet waits for `n`)."""
        c = self.session.controls.state
        speed = WATCH_SPEED if greedy and self.training_over else c.speed  # as `marl-tui watch` plays
        self.session.controls.change(greedy=greedy, speed=speed, frames_granted=c.frames_granted + 1)
        self._keyed()

    def action_save(self) -> None:
        s = self.session
        if s.run_dir is None:
            self.notify("this run has no run directory: nothing to save into", severity="warning")
            return
        s.controls.request_save()
        self._save_asked = True
        self.notify(f"saving a checkpoint into {s.run_dir / 'checkpoints'}…", timeout=2)

    def action_restart(self) -> None:
        old = self.session
        old.stop(timeout=0)  # it saves and ends on its own while the new one builds
        keep = old.controls.state
        from marl_tui.stream.frames import ControlState

        start = ControlState(paused=keep.paused, speed=keep.speed)
        new = self._new_session(old.request, start) if self._new_session is not None \
            else RunSession(old.request, controls=start)
        self.session = new
        self._reset_view_state()
        self.frame = None
        self.progress = None
        self.query_one(ErrorView).clear()
        self.scene.show(SceneData())
        self.query_one(WhyPanel).message("restarting…")
        self.query_one(ReturnChart).set_data(ReturnData())
        self.query_one(LossChart).set_data(LossData(algo=new.request.algo))
        self._build()
        self._show_status()
        self.notify("restarted with the same settings", timeout=2)

    def action_picker(self) -> None:
        self.session.stop(timeout=0)
        self.app.open_picker(self.session.request)  # type: ignore[attr-defined]

    def action_glossary(self) -> None:
        from marl_tui.learn.glossary import run_notes
        from marl_tui.tui.screens.glossary import GlossaryScreen

        req = self.session.request
        panel = self.focused.id if self.focused is not None else None
        self.app.push_screen(GlossaryScreen(panel=panel, notes=run_notes(req.scenario.kind, req.algo)))

    def action_whatif(self) -> None:
        from marl_tui.tui.screens.whatif import WhatIfScreen

        if self.state() != "paused" or self.frame is None:
            self.notify("what-if asks about the step a paused run stands on: press space, then w", timeout=4)
            return
        controls = self.session.controls

        def ask(greedy: bool, step: int, agent: int, action: float) -> int:
            return controls.ask_what_if(greedy, step, agent, action).id

        values = self.session.source.ready.oracle.values

        def marks(agent: int) -> dict[str, float]:
            """The oracle's reference actions for this agent (pricing: the Nash and collusive prices)."""
            named = {"Nash": values.get(f"nash_price_{agent + 1}", values.get("nash_price")),
                     "collusive": values.get(f"collusive_price_{agent + 1}", values.get("collusive_price"))}
            return {name: v for name, v in named.items() if v is not None}

        self.app.push_screen(WhatIfScreen(self.frame, self.session.source.ready.spec, ask, step=self.action_step,
                                          marks=marks))

    def action_help(self) -> None:
        from marl_tui.tui.screens.help import HelpScreen

        self.app.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        await self.app.action_quit()
