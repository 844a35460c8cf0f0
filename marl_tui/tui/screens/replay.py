"""`marl-tui replay RUN_DIR`: move through a recorded run's history.

A timeline of the recorded moments (training frames, dense early and sparser later) with the
checkpoints marked; the panels show the frame at the cursor, exactly as the live dashboard
showed it (one moment: the status line, the scenario panel, the why panel and the charts all
end at that frame's step). On a checkpoint, Enter plays the greedy episode recorded there: the
policy as it was then, step by step, with what it scored over every copy. A run still training
is tailed: new moments appear, and `f` follows the newest.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Static

from marl_tui.config import ALGO_TITLES, Scenario
from marl_tui.stream.frames import ChartPoints, Frame, GreedyEpisode
from marl_tui.stream.sources import ReplaySource
from marl_tui.tui.fmt import num
from marl_tui.tui.frame_view import ChartHistory, run_body, scene_data, why_data
from marl_tui.tui.widgets.charts import LossChart, LossData, ReturnChart, ReturnData
from marl_tui.tui.widgets.scenes import scene_panel_for
from marl_tui.tui.widgets.why import WhyPanel

TAIL_SECONDS = 1.0  # how often a replay looks for new records (a run still training)
PLAY_SECONDS = 0.5  # one step of a greedy episode every this many seconds while playing


@dataclass(frozen=True)
class Cursor:
    """Where the replay stands: a training frame, or a step of a checkpoint's greedy episode."""

    frame: int  # index into the recorded training frames
    episode: int | None = None  # index into the greedy episodes, while one plays
    step: int = 0  # index into that episode's frames


def timeline(frames: list[Frame], episodes: list[GreedyEpisode], cursor: int, width: int) -> Text:
    """One line: the run's env steps left to right, ┃ a checkpoint, ● the cursor."""
    width = max(width, 10)
    last = max([f.scene.env_steps for f in frames[-1:]] + [e.env_steps for e in episodes] + [1])
    cells = ["─"] * width
    styles = ["dim"] * width

    def col(env_steps: int) -> int:
        return min(width - 1, round(env_steps / last * (width - 1)))

    for e in episodes:
        cells[col(e.env_steps)], styles[col(e.env_steps)] = "┃", "bold yellow"
    if frames:
        at = col(frames[cursor].scene.env_steps)
        cells[at], styles[at] = "●", "bold reverse"
    t = Text()
    for ch, st in zip(cells, styles, strict=True):
        t.append(ch, style=st)
    return t


class Timeline(Static):
    DEFAULT_CSS = "Timeline { height: auto; padding: 0 1; background: $panel; }"


class ReplayScreen(Screen[None]):
    BINDINGS = [
        Binding("left,h", "move(-1)", "back", key_display="←/→", tooltip="previous recorded moment"),
        Binding("right,l", "move(1)", "forward", show=False),
        Binding("left_square_bracket", "checkpoint(-1)", "checkpoint", key_display="[/]",
                tooltip="previous / next checkpoint"),
        Binding("right_square_bracket", "checkpoint(1)", "next checkpoint", show=False),
        Binding("pageup", "move(-20)", "back 20", show=False),
        Binding("pagedown", "move(20)", "forward 20", show=False),
        Binding("home", "jump(0)", "start", show=False),
        Binding("end", "jump(-1)", "end", show=False),
        Binding("enter", "play_episode", "greedy episode", tooltip="play the greedy episode recorded here"),
        Binding("space", "toggle_play", "play/pause"),
        Binding("escape", "leave_episode", "timeline", show=False),
        Binding("f", "follow", "follow", tooltip="follow the newest moment (a run still training)"),
        Binding("w", "whatif", "what if", show=False, tooltip="what-if needs a live, paused run"),
        Binding("q", "quit", "quit"),
    ]

    cursor: reactive[Cursor] = reactive(Cursor(0), always_update=True, init=False)

    def __init__(self, source: ReplaySource, scenario: Scenario) -> None:
        super().__init__()
        self.source, self.scenario = source, scenario
        header = source.header
        self.algo, self.ready = header.algo, header.ready
        self.scene = scene_panel_for(header.kind)
        self.following = False
        self.playing = False
        self._play_timer = None

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Timeline(id="timeline")
        yield from run_body(self.scene)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.scene.add_class("text-panel")
        h = self.source.header
        self.scene.border_title = f"{h.scenario if h.kind in h.scenario else f'{h.kind} · {h.scenario}'} (replay)"
        self.set_interval(TAIL_SECONDS, self._tail)
        self.cursor = Cursor(0)
        self.scene.focus()

    # ------------------------------------------------------------------ moving
    def _tail(self) -> None:
        if self.source.refresh() and (self.following or not self.source.frames):
            self.cursor = Cursor(len(self.source.frames) - 1)
        elif self.source.frames:
            self._show_timeline()

    def action_move(self, by: int) -> None:
        c = self.cursor
        if c.episode is not None:
            frames = self.source.episodes[c.episode].frames
            self.cursor = Cursor(c.frame, c.episode, max(0, min(len(frames) - 1, c.step + by)))
            return
        self.following = False
        self.cursor = Cursor(max(0, min(len(self.source.frames) - 1, c.frame + by)))

    def action_jump(self, where: int) -> None:
        self.following = False
        self.cursor = Cursor(where % max(1, len(self.source.frames)))

    def action_checkpoint(self, by: int) -> None:
        """To the frame nearest the previous or next checkpoint."""
        frames, episodes = self.source.frames, self.source.episodes
        if not frames or not episodes:
            self.notify("no checkpoint recorded yet", timeout=2)
            return
        here = frames[self.cursor.frame].scene.env_steps
        marks = [e.env_steps for e in episodes]
        k = bisect.bisect_right(marks, here) if by > 0 else bisect.bisect_left(marks, here) - 1
        k = max(0, min(len(marks) - 1, k))
        steps = [f.scene.env_steps for f in frames]
        self.following = False
        self.cursor = Cursor(min(len(frames) - 1, bisect.bisect_left(steps, marks[k])))

    def episode_here(self) -> int | None:
        """The checkpoint whose greedy episode the cursor stands on (the nearest at or before)."""
        if not self.source.frames:
            return None
        here = self.source.frames[self.cursor.frame].scene.env_steps
        marks = [e.env_steps for e in self.source.episodes]
        k = bisect.bisect_right(marks, here) - 1
        nxt = k + 1
        if nxt < len(marks) and (k < 0 or marks[nxt] - here < here - marks[k]):
            k = nxt  # nearer the next checkpoint
        return k if 0 <= k < len(marks) else None

    def action_play_episode(self) -> None:
        k = self.episode_here()
        if k is None:
            why = ("the random baseline has no greedy policy" if self.algo == "random" else
                   "no checkpoint was written before the recording ends")
            self.notify(f"no greedy episode recorded here: {why}", timeout=3)
            return
        self._set_playing(False)
        self.cursor = Cursor(self.cursor.frame, k, 0)
        self.notify("the greedy episode recorded at this checkpoint: →/← step, space plays, escape "
                    "back to the timeline", timeout=4)

    def action_leave_episode(self) -> None:
        self._set_playing(False)
        self.cursor = Cursor(self.cursor.frame)

    def action_toggle_play(self) -> None:
        self._set_playing(not self.playing)

    def _set_playing(self, on: bool) -> None:
        self.playing = on
        if self._play_timer is not None:
            self._play_timer.stop()
            self._play_timer = None
        if on:
            self._play_timer = self.set_interval(PLAY_SECONDS, self._advance)

    def _advance(self) -> None:
        c = self.cursor
        last = (len(self.source.episodes[c.episode].frames) if c.episode is not None
                else len(self.source.frames)) - 1
        if (c.step if c.episode is not None else c.frame) >= last:
            self._set_playing(False)
            return
        self.action_move(1)

    def action_follow(self) -> None:
        self.following = True
        self.cursor = Cursor(max(0, len(self.source.frames) - 1))
        self.notify("following the newest recorded moment", timeout=2)

    def action_whatif(self) -> None:
        from marl_tui.tui.screens.whatif import NEEDS_LIVE_RUN

        self.notify(NEEDS_LIVE_RUN, timeout=8, severity="warning")

    async def action_quit(self) -> None:
        """Back to the screen it was opened from (a comparison), else leave the app."""
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        else:
            self.app.exit()

    @property
    def run_dir(self) -> object:
        return self.source.run_dir

    # ------------------------------------------------------------------ drawing one moment
    def current(self) -> tuple[Frame, tuple]:
        """The frame at the cursor, and the steps before it to draw as its trail."""
        c = self.cursor
        if c.episode is None:
            return self.source.frames[c.frame], ()
        frames = self.source.episodes[c.episode].frames
        return frames[c.step], tuple(f.scene for f in frames[:c.step])

    def watch_cursor(self, cursor: Cursor) -> None:
        if not self.source.frames:
            self.query_one("#status", Static).update("no moment recorded yet: the run has not taken a step")
            return
        frame, trail = self.current()
        self.scene.show(scene_data(frame, self.ready, self.scenario, self.algo, trail=trail))
        self.query_one(WhyPanel).show(why_data(frame, self.ready, self.algo, self.scenario.kind))
        self._show_charts(self.source.frames[cursor.frame].scene.env_steps)
        self._show_status(frame)
        self._show_timeline()

    def _show_status(self, frame: Frame) -> None:
        c, h = self.cursor, self.source.header
        t = Text()
        t.append(f"{h.scenario} · {ALGO_TITLES.get(h.algo, h.algo)} · ", style="bold")
        t.append("⟲ replay", style="bold magenta")
        s = frame.stats
        oracle_team = self.ready.oracle.team_return
        versus = f"vs oracle {num(oracle_team)}" if math.isfinite(oracle_team) else "(no oracle)"
        if c.episode is None:
            t.append(f" · moment {c.frame + 1:,}/{len(self.source.frames):,} · step {frame.scene.step:,}"
                     f" · env steps {frame.scene.env_steps:,} · episodes done {s.episodes:,} · updates {s.updates:,}")
            t.append(f" · team return {num(s.team_return)} {versus}")
        else:
            e = self.source.episodes[c.episode]
            t.append(" GREEDY EPISODE ", style="reverse bold")
            t.append(f" checkpoint {c.episode + 1} of {len(self.source.episodes)} at env step {e.env_steps:,}"
                     f" · step {c.step + 1}/{len(e.frames)} · its team return {num(e.team_return)} over "
                     f"{e.copies} copies {versus}")
        if self.source.reader.torn:
            t.append(" · the stream ends in an unfinished record (a kill, or a run still writing)", style="dim")
        self.query_one("#status", Static).update(t)

    def _show_timeline(self) -> None:
        widget = self.query_one(Timeline)
        width = max(10, widget.size.width - 2)
        line = timeline(self.source.frames, self.source.episodes, self.cursor.frame, width)
        hint = Text("←/→ moments (pgup/pgdn 20, home/end) · [/] checkpoints ┃ · enter: the greedy "
                    "episode there · space: play", style="dim")
        widget.update(Text("\n").join([line, hint]))

    def _show_charts(self, env_steps: int) -> None:
        """The charts as they stood at the frame: every point up to its env steps."""
        history = ChartHistory(self.ready.spec.n_agents)
        for points in self.source.points:
            history.add(ChartPoints(
                episodes=tuple(p for p in points.episodes if p[0] <= env_steps),
                losses={k: tuple(p for p in v if p[0] <= env_steps) for k, v in points.losses.items()}))
        spec, oracle = self.ready.spec, self.ready.oracle
        self.query_one(ReturnChart).set_data(ReturnData(
            team=history.team.snapshot(), agents=tuple(s.snapshot() for s in history.agents),
            agent_names=tuple(spec.agent_names), oracle_team=oracle.team_return,
            episode_length=spec.episode_length, cooperative=spec.cooperative))
        self.query_one(LossChart).set_data(LossData(
            series={k: s.snapshot() for k, s in history.losses.items()}, algo=self.algo))
