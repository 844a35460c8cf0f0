"""The live dashboard: status, the scenario panel, "why", and charts for one run.

The run trains in its own process and never calls the UI; what it publishes arrives on a
receiver thread. This screen polls ten times a second (set_interval, started in on_mount):
it drains the record queue, reads the latest Stats snapshot, and updates the panels in one
batch. Charts redraw about once a second and only when their data changed; the algorithm's
numbers (explain) are asked for about once a second while running, and once per step while
paused; they arrive by a later poll, stamped with the step they belong to.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.screen import Screen
from textual.widgets import Footer

from marl_tui.config import HEADLINE_KPI
from marl_tui.train.controls import SPEEDS
from marl_tui.tui.commands import RunCommands
from marl_tui.tui.session import RunSession
from marl_tui.tui.widgets.charts import LossChart, LossData, ReturnChart, ReturnData
from marl_tui.tui.widgets.error import ErrorView
from marl_tui.tui.widgets.scene import SceneData, scene_panel_for
from marl_tui.tui.widgets.status import StatusInfo, StatusLine, speed_label
from marl_tui.tui.widgets.why import WhyData, WhyPanel

POLL_SECONDS = 0.1  # records and stats
STATUS_SECONDS = 0.25  # the status line's counters while running (a change of state, speed or view shows at once)
SCENE_SECONDS = 0.5  # scenario panel redraws at full speed (each poll when paused or slowed)
CHART_SECONDS = 1.0  # chart redraws while running (only when their data changed); plotext is the costly part
EXPLAIN_SECONDS = 1.0  # explain() while running
RECENT = 300  # records kept for the panels' short histories
TITLES = {"maddpg": "MADDPG", "mappo": "MAPPO", "qmix": "QMIX", "random": "random baseline",
          "oracle": "oracle baseline"}


class DashboardScreen(Screen[None]):
    COMMANDS = Screen.COMMANDS | {RunCommands}
    BINDINGS = [
        Binding("space", "pause", "pause", tooltip="pause training"),
        Binding("space", "resume", "resume", tooltip="resume training"),
        Binding("n", "step", "step", tooltip="one batched step while paused"),
        Binding("plus,equals_sign", "faster", "speed", key_display="+/-", tooltip="faster"),
        Binding("minus,underscore", "slower", "slower", show=False),
        Binding("e", "greedy", "greedy", tooltip="greedy evaluation view"),
        Binding("e", "learn", "learn", tooltip="back to training"),
        Binding("r", "restart", "restart", tooltip="restart with the same settings"),
        Binding("s", "save", "save", tooltip="save a checkpoint"),
        Binding("p", "picker", "picker", show=False),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit", tooltip="stop training and quit"),
    ]

    def __init__(self, session: RunSession, *, new_session: Any = None) -> None:
        super().__init__()
        self.session = session
        self._new_session = new_session  # callable(request, paused) -> RunSession (restart)
        self.scene = scene_panel_for(session.request.scenario.kind)
        self._reset_view_state()

    def _reset_view_state(self) -> None:
        self.record: Any = None  # the StepRecord on screen
        self.recent: deque[Any] = deque(maxlen=RECENT)  # records of copy 0, for short histories
        self.stats: Any = None  # the Stats on screen
        self._want: tuple[bool, int] | None = None  # (greedy view?, step) that `n` asked for
        self._fast_until = 0.0
        self._started = False
        self._state = ""
        self._explain_at = 0.0
        # Explains are stamped with their view and step: (greedy view?, steps of that view).
        self._asked_for: tuple[bool, int] | None = None  # when explain was last asked for
        self._explained: tuple[bool, int] | None = None  # of the numbers on screen
        self._exact: dict[int, dict[str, Any]] = {}  # the latest few training explains, by step
        self._explain_after: tuple[bool, int] | None = None
        self._charts_at = 0.0
        self._scene_at = 0.0
        self._status_at = 0.0
        self._status_mode: tuple[Any, ...] = ()  # (state, speed, greedy view) last shown
        self._explain_errors = 0
        self._scene_dirty = False
        self._save_note: str | None = None
        self._save_asked = False
        self.polls = 0

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        yield ErrorView(id="error")
        with Container(id="body"):
            yield self.scene
            yield WhyPanel(id="why", classes="text-panel")
            yield ReturnChart(id="returns")
            yield LossChart(id="losses")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.scene.add_class("text-panel")
        sc = self.session.request.scenario
        self.scene.border_title = sc.name if sc.kind in sc.name else f"{sc.kind} · {sc.name}"
        self._build()
        self.set_interval(POLL_SECONDS, self.poll)
        self.poll()
        self.scene.focus()

    def on_unmount(self) -> None:
        self.session.stop(timeout=0)  # it saves and ends on its own

    # ------------------------------------------------------------------ run lifecycle
    def _build(self) -> None:
        """Start the training process from a plain daemon thread (it waits for the run to be
        built); poll() sees it once it is training."""
        threading.Thread(target=self.session.build, name="marl-tui-build", daemon=True).start()

    def state(self) -> str:
        s = self.session
        if s.build_error:
            return "error"
        if s.trainer is None:
            return "building"
        status = s.trainer.stats.status
        if status in ("error", "finished", "stopped"):
            return status
        return "paused" if s.controls.paused else "running"

    # ------------------------------------------------------------------ polling
    def poll(self) -> None:
        """Ten times a second: drain records, read stats, update the panels that are due."""
        self.polls += 1
        s = self.session
        t = s.trainer
        self._started = t is not None
        state = self.state()
        if t is None:
            self._show_status(state, None)
            if state == "error":
                self._show_error(s.build_error or "", building=True)
            self._state_changed(state)
            return
        records = t.records.drain()
        stats = t.stats
        self.stats = stats
        self.recent.extend(records)
        # Only the view on screen: records of the other one may still come after a switch.
        records = [r for r in records if r.greedy == s.controls.greedy]
        if records:
            record = records[-1]
            if self._want is not None:
                exact = [r for r in records if (r.greedy, r.iteration) == self._want]
                if exact:
                    record = exact[0]
                if record.greedy == self._want[0] and record.iteration >= self._want[1]:
                    self._want = None
            self.record = record
            self._scene_dirty = True
        self._show_status(state, stats)
        now = time.monotonic()
        self._take_why()
        if state == "running":
            if now - self._explain_at >= EXPLAIN_SECONDS:
                self._ask_why(self._view_step())
        elif self._asked_for != self._view_step():  # a finished or failed run still answers
            self._ask_why(self._view_step())
        watched = state != "running" or s.controls.speed is not None  # someone follows steps
        if self._scene_dirty and (watched or now - self._scene_at >= SCENE_SECONDS):
            self._scene_dirty = False
            self._scene_at = now
            self._show_scene()
        if state != "running" or now - self._charts_at >= CHART_SECONDS:
            self._charts_at = now
            self._show_charts(stats)
        if state == "error":
            self._show_error(stats.error or "unknown error")
        note = stats.save_note
        if note and note != self._save_note:
            self._save_note = note
            if self._save_asked:
                self._save_asked = False
                self.notify(note, timeout=4, severity="warning" if "not saved" in note else "information")
        self._state_changed(state)

    def _fast_poll(self) -> None:
        """After `n`: look every 10 ms until the asked-for step and its numbers are on screen."""
        self.poll()
        waiting = self._want is not None or self._explained != self._asked_for
        if waiting and time.monotonic() < self._fast_until:
            self.set_timer(0.01, self._fast_poll)

    def _state_changed(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.refresh_bindings()
            if state == "finished":
                self._say_finished()

    def _say_finished(self) -> None:
        """The budget is spent: learning and the greedy view stop; say what comes next."""
        where = self.session.run_dir
        if where is None:
            self.notify("finished: the budget is spent. r trains again", timeout=8)
            return
        self.notify(f"finished and saved in {where}. Score its greedy policy: marl-tui eval {where}; "
                    f"train on from it: marl-tui run --load {where} (e: greedy view)", timeout=20)

    # ------------------------------------------------------------------ panels
    def _show_status(self, state: str, stats: Any) -> None:
        s, req = self.session, self.session.request
        now, mode = time.monotonic(), (state, s.controls.speed, s.controls.greedy)
        if state == "running" and mode == self._status_mode and now - self._status_at < STATUS_SECONDS:
            return  # counters only: a few times a second is enough to read, and costs less
        self._status_at, self._status_mode = now, mode
        oracle = s.trainer.info.oracle if s.trainer is not None else None
        self.query_one(StatusLine).show(StatusInfo(
            scenario=req.scenario.name, algo=TITLES.get(req.algo, req.algo), state=state,
            stats=stats, speed=s.controls.speed, headline=HEADLINE_KPI.get(req.scenario.kind, ""),
            oracle_kpis=dict(oracle.kpis) if oracle else {},
            oracle_return=oracle.team_return if oracle else None,
            run_dir=str(s.run_dir) if s.run_dir else None, greedy=s.controls.greedy,
        ))

    def _scene_data(self) -> SceneData:
        info = self.session.trainer.info
        r = self.record
        explain = None
        if r is not None and not r.greedy:
            explain = self._exact.get(r.iteration - 1)
        stats = self.stats
        return SceneData(
            record=r, kpis=dict(stats.kpis) if stats else {},
            oracle_kpis=dict(info.oracle.kpis), oracle_values=dict(info.oracle.values),
            model=self.session.request.scenario.model, agent_names=tuple(info.spec.agent_names),
            episode_length=info.spec.episode_length, n_envs=info.n_envs, explain=explain,
            algo=self.session.request.algo, paused=self.state() == "paused",
            recent=tuple(x for x in self.recent
                         if r is None or x.greedy != r.greedy or x.iteration <= r.iteration),
        )

    def _show_scene(self) -> None:
        if self.session.trainer is not None:
            self.scene.show(self._scene_data())

    def _view_step(self) -> tuple[bool, int]:
        """The view on screen (greedy?) and how many steps it has taken."""
        greedy, s = self.session.controls.greedy, self.stats
        if s is None:
            return greedy, 0
        return greedy, s.greedy_steps if greedy else s.iteration

    def _ask_why(self, step: tuple[bool, int]) -> None:
        """Ask the run for the algorithm's numbers; a later poll picks them up."""
        self._explain_at = time.monotonic()
        self._asked_for = step
        self.session.trainer.request_explain()

    def _take_why(self) -> None:
        """Show the numbers that arrived, and keep them for the step they belong to."""
        got = self.session.trainer.take_explain()
        if got is None:
            return
        step, ex, failure = got
        if failure is not None:
            self._explain_errors += 1
            self._explained = self._asked_for
            if self.state() != "running":
                self._show_why(None, note=f"explain() failed: {failure}")
            return
        if not isinstance(ex, dict):
            ex = {"value": ex}
        self._explained = self._explain_after = step
        if step != self._asked_for:
            self._asked_for = None  # asked again while this was on its way: ask once more
        if not step[0]:
            self._exact[step[1]] = ex
            for k in sorted(self._exact)[:-4]:
                del self._exact[k]
        self._scene_dirty = True
        self._show_why(ex)

    def _show_why(self, ex: dict[str, Any] | None, note: str = "") -> None:
        t = self.session.trainer
        req = self.session.request
        spec = t.info.spec if t is not None else None
        after = self._explain_after
        self.query_one(WhyPanel).show(WhyData(
            explain=ex, algo=req.algo, agent_names=tuple(spec.agent_names) if spec else (),
            kind=req.scenario.kind, discrete_levels=tuple(spec.action_levels) if spec else (),
            after_step=after[1] if after else None, greedy=bool(after and after[0]), note=note,
            reward_scale=spec.reward_scale if spec else 1.0,
        ))

    def _show_charts(self, stats: Any) -> None:
        info = self.session.trainer.info
        self.query_one(ReturnChart).set_data(ReturnData(
            team=stats.team_history, agents=tuple(stats.agent_history),
            agent_names=tuple(info.spec.agent_names), oracle_team=info.oracle.team_return,
            episode_length=info.spec.episode_length, cooperative=info.spec.cooperative,
        ))
        self.query_one(LossChart).set_data(LossData(series=dict(stats.loss_history),
                                                    algo=self.session.request.algo))

    def _show_error(self, message: str, building: bool = False) -> None:
        self.query_one(ErrorView).show(
            message, str(self.session.run_dir) if self.session.run_dir else None,
            self.session.request.headless_command(), building=building)

    # ------------------------------------------------------------------ keys
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        state = self.state()
        live = state in ("running", "paused")
        greedy = self.session.controls.greedy
        if action == "pause":
            return state in ("running", "building") and not self.session.controls.paused
        if action == "resume":
            return state == "paused" or (state == "building" and self.session.controls.paused)
        if action == "step":
            return state == "paused"
        if action in ("faster", "slower"):
            return live or state == "building"
        if action == "greedy":
            return live and not greedy
        if action == "learn":
            return live and greedy
        if action == "save":
            return True if live and self.session.run_dir is not None else (None if live else False)
        return True

    def action_pause(self) -> None:
        self.session.controls.pause()
        self.poll()

    def action_resume(self) -> None:
        self._want = None
        self.session.controls.resume()
        self.poll()

    def action_step(self) -> None:
        if self.state() != "paused":
            return
        greedy, current = self._view_step()
        seen = [current]
        if self._want is not None and self._want[0] == greedy:
            seen.append(self._want[1])
        if self.record is not None and self.record.greedy == greedy:
            seen.append(self.record.iteration)
        self._want = (greedy, max(seen) + 1)
        self.session.controls.step(1)
        self._fast_until = time.monotonic() + 3.0
        self.set_timer(0.005, self._fast_poll)

    def action_faster(self) -> None:
        speed = self.session.controls.faster()
        self.notify(speed_label(speed), timeout=1.5)
        self.poll()

    def action_slower(self) -> None:
        speed = self.session.controls.slower()
        self.notify(speed_label(speed), timeout=1.5)
        self.poll()

    def action_greedy(self) -> None:
        self._switch_view(greedy=True)
        self.notify("greedy evaluation view: the policy plays without exploration on its own copy; "
                    "no learning until you press e again", timeout=4)

    def action_learn(self) -> None:
        self._switch_view(greedy=False)
        self.notify("back to training", timeout=1.5)

    def _switch_view(self, greedy: bool) -> None:
        """The panels show the chosen view's latest step at once (none yet: they say so)."""
        self.session.controls.set_greedy(greedy)
        self._want = None
        self.record = next((r for r in reversed(self.recent) if r.greedy == greedy), None)
        self._scene_dirty = True
        self.refresh_bindings()
        self.poll()

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
        if self._new_session is not None:
            new = self._new_session(old.request, old.controls.paused)
        else:
            new = RunSession(old.request, paused=old.controls.paused)
        for _ in range(len(SPEEDS)):  # same speed limit as before
            if new.controls.speed == old.controls.speed:
                break
            new.controls.slower()
        self.session = new
        self._reset_view_state()
        self.query_one(ErrorView).clear()
        self.scene.show(SceneData())
        self.query_one(WhyPanel).message("restarting…")
        self.query_one(ReturnChart).set_data(ReturnData())
        self.query_one(LossChart).set_data(LossData(algo=new.request.algo))
        self._build()
        self.poll()
        self.notify("restarted with the same settings", timeout=2)

    def action_picker(self) -> None:
        self.session.stop(timeout=0)
        self.app.open_picker(self.session.request)  # type: ignore[attr-defined]

    def action_help(self) -> None:
        from marl_tui.tui.screens.help import HelpScreen

        self.app.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        await self.app.action_quit()
