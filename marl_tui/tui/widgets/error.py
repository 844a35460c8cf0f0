"""The error view: what went wrong in training, and where to look. Never a frozen screen."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


def error_text(message: str, run_dir: str | None, headless: str, building: bool) -> Text:
    t = Text()
    t.append("✗ ", style="bold red")
    t.append("Could not start this run" if building else "Training stopped with an error",
             style="bold")
    t.append(f"\n{message}\n", style="red")
    t.append("Where to look: ", style="bold")
    if run_dir:
        t.append(f"the run directory {run_dir} (config.toml, metrics.csv up to the failure); ")
    t.append(f"the same run without the app prints the full message: {headless}")
    t.append("\nr restart · p back to the picker · q quit", style="dim")
    return t


class ErrorView(Static):
    """Hidden until shown; the rest of the dashboard stays as it was at the failure."""

    DEFAULT_CSS = "ErrorView { display: none; height: auto; } ErrorView.-shown { display: block; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(Text(""), id=id)
        self.message: str | None = None
        self.text = Text("")

    def show(self, message: str, run_dir: str | None, headless: str, building: bool = False) -> None:
        if message == self.message:
            return
        self.message = message
        self.text = error_text(message, run_dir, headless, building)
        self.update(self.text)
        self.add_class("-shown")

    def clear(self) -> None:
        self.message = None
        self.remove_class("-shown")
