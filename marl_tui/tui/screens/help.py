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
    ("t", "teaching pace: one step a second (+ faster again)"),
    ("o", "hold still at the end of every episode (on/off; space goes on)"),
    ("e", "greedy evaluation view: the policy plays without exploration on its own copy, "
          "no learning; on a finished run it plays the final policy"),
    ("g", "glossary: what the numbers on the focused panel mean"),
    ("w", "while paused: what if one agent had acted differently in this step? ↑/↓ the agent, ←/→ "
          "its action; every agent's reward, the best response and the algorithm's Q / V / π, "
          "replayed by the run on a copy of its env"),
    ("r", "restart the run: same settings, fresh networks, a new run directory"),
    ("s", "save a checkpoint into the run directory"),
    ("x", "write report.md (the KPIs on screen against the oracle, the charts) into the run directory"),
    ("ctrl+s", "save an SVG of the screen into the run directory"),
    ("tab / shift+tab", "move between panels (arrows scroll a focused panel)"),
    ("p", "back to the scenario picker (stops this run)"),
    ("ctrl+p", "command palette: every action by name"),
    ("?", "this help (esc closes it)"),
    ("q", "quit (the trainer stops; the run directory stays)"),
]

PANELS = [
    ("status", "scenario · algorithm · state · the step on screen (one step moves every parallel "
               "copy) · episodes done · updates · exploration · the headline KPI against the "
               "oracle; then, dim, the live counters: env steps (steps × copies), env steps/s, "
               "the speed limit"),
    ("scenario", "what the agents did in the step on screen, for copy 1 of the parallel copies"),
    ("why", "the study guide's equations for the running algorithm, filled with its numbers for "
            "the decision taken in the step on screen"),
    ("episode return", "the team's return for each finished training episode and the oracle's (the "
                       "heavy ━ line, red), on one axis; below the plot a row per agent, all on "
                       "one scale (named in the legend), with its last return and share of the "
                       "team's"),
    ("losses", "the learner's losses after each update, a marker each (the legend above "
               "the plot)"),
]


PICKER_KEYS = [
    ("up / down", "move in the scenario list (it stops at the first and the last entry)"),
    ("enter", "start the highlighted scenario with the chosen (●) algorithm and the fields' "
              "values; a field that is empty or wrong stops it, says why and takes the cursor"),
    ("tab / shift+tab", "scenario list → algorithms → fields → Start, and back"),
    ("up / down, space", "on the algorithms: move the cursor (reversed), choose the algorithm "
                         "under it (● chosen, ○ not)"),
    ("enter", "on the algorithms: choose the one under the cursor; a second enter starts"),
    ("esc", "from a text field back to the scenario list (a field takes q and ?)"),
    ("?", "this help (esc closes it)"),
    ("q", "quit"),
]

PICKER_PARTS = [
    ("scenarios", "every bundled scenario and each file in ./scenarios, with its reference "
                  "answer (→ computing… until it is worked out; keys work meanwhile)"),
    ("run", "the highlighted scenario, the algorithm and its settings: the scenario's seed and "
            "parallel copies, then the algorithm's defaults for env steps, learning rate, "
            "discount and exploration (… until they are known)"),
]


def rows(pairs: list[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for k, v in pairs:
        table.add_row(k, v)
    return table


class HelpScreen(ModalScreen[None]):
    """The dashboard's help: its keys and panels."""

    BINDINGS = [
        Binding("escape,question_mark", "close", "close"),
        Binding("q", "app.quit", "quit"),
    ]
    HEADING = "marl-tui help"
    KEY_ROWS = KEYS
    PART_ROWS = PANELS
    PARTS = "Panels"

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = self.HEADING
            box.border_subtitle = "esc to close"
            yield Static(Text("Keys", style="bold underline"))
            yield Static(rows(self.KEY_ROWS))
            yield Static(Text(f"\n{self.PARTS}", style="bold underline"))
            yield Static(rows(self.PART_ROWS))
            yield Static(Text("\nWithout a terminal use `marl-tui train SCENARIO --algo ALGO`; "
                              "runs started here write the same run directory.", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)


class PickerHelpScreen(HelpScreen):
    """The picker's help: its own keys, not the dashboard's."""

    HEADING = "marl-tui help: the picker"
    KEY_ROWS = PICKER_KEYS
    PART_ROWS = PICKER_PARTS
    PARTS = "Parts"
