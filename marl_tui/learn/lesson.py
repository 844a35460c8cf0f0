"""What a lesson is: the guide's worked example as an ordered list of typed steps.

A step holds one equation and the same equation with the numbers the project's real code
computed, plus a note (where the guide's arithmetic slips, the note says so and gives the
right number). The last step of every lesson offers its live run ("now watch it learn").
"""

from __future__ import annotations

import importlib

import msgspec

from marl_tui.config import did_you_mean
from marl_tui.errors import UserError


class Step(msgspec.Struct, frozen=True, kw_only=True):
    title: str
    equation: str  # the guide's formula, in its symbols
    numbers: tuple[str, ...] = ()  # the formula filled in, one line each
    note: str = ""  # what to notice; the guide's slips and their correct numbers


class Watch(msgspec.Struct, frozen=True):
    """The live run a lesson ends with: this algorithm on this bundled scenario."""

    scenario: str
    algo: str

    def command(self) -> str:
        return f"marl-tui run {self.scenario} --algo {self.algo}"


class Lesson(msgspec.Struct, frozen=True, kw_only=True):
    name: str  # what `marl-tui learn NAME` takes
    title: str
    guide_part: str  # where the worked example is in the study guide
    steps: tuple[Step, ...]
    watch: Watch


# name -> (module, one-line summary); modules are imported only when a lesson is opened (torch).
LESSONS: dict[str, tuple[str, str]] = {
    "maddpg-pricing": ("marl_tui.learn.maddpg_pricing",
                       "MADDPG on three stores' prices: demand, profit, critic, target, the actor's push"),
    "mappo-warehouse": ("marl_tui.learn.mappo_warehouse",
                        "MAPPO on restocking: Gaussian policy, reward, advantage, the clipped loss"),
    "qmix-fulfillment": ("marl_tui.learn.qmix_fulfillment",
                         "QMIX on who ships an order: utilities, a monotonic mixer, argmax, its limit"),
}


def check_name(name: str) -> str:
    """The lesson's name, or a one-line UserError with the closest name."""
    if name not in LESSONS:
        raise UserError(f"no lesson named {name!r}{did_you_mean(name, LESSONS)}; "
                        f"lessons are: {', '.join(LESSONS)} (see `marl-tui learn`)")
    return name


def load_lesson(name: str) -> Lesson:
    """Compute the lesson `name` (runs the real env and networks: about a second)."""
    module = importlib.import_module(LESSONS[check_name(name)][0])
    return module.lesson()


def lesson_list() -> str:
    """The text of `marl-tui learn`: one line per lesson."""
    width = max(len(n) for n in LESSONS)
    lines = ["Lessons: the study guide's worked examples, computed by marl-tui's own code.", ""]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in LESSONS.items()]
    lines += ["", "Open one: marl-tui learn NAME   (as plain text: marl-tui learn NAME --print)"]
    return "\n".join(lines)


def step_text(step: Step, number: int, total: int) -> str:
    """One step as plain text (the screen and --print share it)."""
    lines = [f"Step {number}/{total}: {step.title}", "", f"    {step.equation}"]
    lines += [f"    {line}" for line in step.numbers]
    if step.note:
        lines += ["", *_wrap(step.note, 88, "  ")]
    return "\n".join(lines)


def lesson_text(lesson: Lesson) -> str:
    """The whole lesson as plain text (`marl-tui learn NAME --print`)."""
    total = len(lesson.steps)
    head = [lesson.title, "=" * len(lesson.title), f"(study guide, {lesson.guide_part}; "
            "every number below is computed by marl-tui's own environment and networks)"]
    body = [step_text(s, k + 1, total) for k, s in enumerate(lesson.steps)]
    return "\n\n".join(["\n".join(head), *body]) + "\n"


def _wrap(text: str, width: int, indent: str) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent)
