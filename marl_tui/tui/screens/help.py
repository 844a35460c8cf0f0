"""`?`: every key, what each panel shows, and where the numbers come from."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = [
    ("space", "pause / resume training"),
    ("n", "while paused: exactly one more batched step; the panels show that step"),
    ("+ / -", "faster / slower (a limit on batched steps per second; max = no limit)"),
    ("e", "greedy evaluation view: the policy plays without exploration on its own copy, "
          "no learning"),
    ("r", "restart the run: same settings, fresh networks, a new run directory"),
    ("s", "save a checkpoint into the run directory"),
    ("tab / shift+tab", "move between panels (arrows scroll a focused panel)"),
    ("p", "back to the scenario picker (stops this run)"),
    ("ctrl+p", "command palette: every action by name"),
    ("?", "this help (esc closes it)"),
    ("q", "quit (the trainer stops; the run directory stays)"),
]

PANELS = [
    ("status", "scenario · algorithm · state · step (one step moves every parallel copy) and env "
               "steps (steps × copies) · episodes done · updates · env steps/s · the speed limit "
               "in steps/s · exploration · the headline KPI against the oracle"),
    ("scenario", "what the agents did in the last step shown, for copy 1 of the parallel copies"),
    ("why", "the study guide's equations for the running algorithm, filled with its numbers for "
            "the current observation and last update (refreshed at most twice a second)"),
    ("episode return", "the team's return for each finished episode (dots) and the oracle's (the "
                       "heavy ━ line, red), on one axis; below the plot a row per agent, all on "
                       "one scale (named in the legend), with its last return and share of the "
                       "team's"),
    ("losses", "the learner's losses after each update, a marker each (the legend above "
               "the plot)"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,question_mark", "close", "close"),
        Binding("q", "app.quit", "quit"),
    ]

    def compose(self) -> ComposeResult:
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold", no_wrap=True)
        keys.add_column()
        for k, v in KEYS:
            keys.add_row(k, v)
        panels = Table.grid(padding=(0, 2))
        panels.add_column(style="bold", no_wrap=True)
        panels.add_column()
        for k, v in PANELS:
            panels.add_row(k, v)
        with VerticalScroll(id="help-box") as box:
            box.border_title = "marl-tui help"
            box.border_subtitle = "esc to close"
            yield Static(Text("Keys", style="bold underline"))
            yield Static(keys)
            yield Static(Text("\nPanels", style="bold underline"))
            yield Static(panels)
            yield Static(Text("\nWithout a terminal use `marl-tui train SCENARIO --algo ALGO`; "
                              "runs started here write the same run directory.", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)
