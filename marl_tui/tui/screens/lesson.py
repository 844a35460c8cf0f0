"""A lesson in the app: the guide's worked example one step at a time, then its live run.

    LessonScreen(lesson)    # right/n next, left/p back, home/end, enter on the last step: watch
    launch_lesson(lesson)   # tui/launch.py, `marl-tui learn NAME`: the app opened on a lesson

Each step shows its equation and the same equation with the numbers marl-tui's code computed
(learn/lesson.py). Enter on the last step starts the lesson's run (MarlApp.start_run): the
dashboard opens over the lesson, and its why panel shows the same equations live.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Static

from marl_tui.learn.lesson import Lesson, Step
from marl_tui.tui.app import MarlApp


def step_renderable(step: Step, number: int, total: int, last: bool, watch: str) -> Text:
    t = Text()
    t.append(f"Step {number}/{total}  ", style="dim")
    t.append(step.title, style="bold underline")
    t.append("\n\n  ")
    t.append(step.equation, style="italic cyan")
    for line in step.numbers:
        t.append("\n  " + line)
    if step.note:
        t.append("\n\n" + step.note, style="")
    if last:
        t.append("\n\n")
        t.append(" enter ", style="bold reverse green")
        t.append(f" now watch it learn: {watch}", style="bold")
    return t


class LessonScreen(Screen[None]):
    BINDINGS = [
        Binding("right,n", "next", "next", key_display="→/n"),
        Binding("left,p", "back", "back", key_display="←/p"),
        Binding("home", "first", "first", show=False),
        Binding("end", "last", "last", show=False),
        Binding("enter", "watch", "watch it learn", tooltip="start this lesson's live run"),
        Binding("q,escape", "leave", "quit"),
    ]
    DEFAULT_CSS = """
    LessonScreen #lesson-head { height: 1; padding: 0 1; background: $primary-background; }
    LessonScreen #lesson-box { border: round $primary; padding: 0 1; }
    """

    index: reactive[int] = reactive(0, init=False)

    def __init__(self, lesson: Lesson) -> None:
        super().__init__()
        self.lesson = lesson

    def compose(self) -> ComposeResult:
        yield Static(id="lesson-head")
        with VerticalScroll(id="lesson-box"):
            yield Static(id="lesson-step")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#lesson-box").border_title = self.lesson.title
        self.query_one("#lesson-box").border_subtitle = f"study guide {self.lesson.guide_part}"
        self._show()

    @property
    def at_end(self) -> bool:
        return self.index == len(self.lesson.steps) - 1

    def watch_index(self) -> None:
        self._show()

    def _show(self) -> None:
        total = len(self.lesson.steps)
        step = self.lesson.steps[self.index]
        head = Text(f"marl-tui learn {self.lesson.name}", style="bold")
        head.append(f" · step {self.index + 1} of {total} · ", style="dim")
        head.append("●" * (self.index + 1) + "○" * (total - self.index - 1), style="cyan")
        self.query_one("#lesson-head", Static).update(head)
        self.query_one("#lesson-step", Static).update(
            step_renderable(step, self.index + 1, total, self.at_end, self.lesson.watch.command()))
        self.query_one("#lesson-box", VerticalScroll).scroll_home(animate=False)
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "watch":
            return self.at_end
        return True

    def action_next(self) -> None:
        self.index = min(self.index + 1, len(self.lesson.steps) - 1)

    def action_back(self) -> None:
        self.index = max(self.index - 1, 0)

    def action_first(self) -> None:
        self.index = 0

    def action_last(self) -> None:
        self.index = len(self.lesson.steps) - 1

    def action_watch(self) -> None:
        from marl_tui.config import load_scenario
        from marl_tui.tui.session import RunRequest

        if not isinstance(self.app, MarlApp) or not self.at_end:
            return
        watch = self.lesson.watch
        self.app.start_run(RunRequest(scenario=load_scenario(watch.scenario), algo=watch.algo,
                                      device=self.app.device))

    def action_leave(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        else:
            self.app.exit()
