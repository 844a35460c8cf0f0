"""A notice in place of a cropped screen while the terminal is smaller than any panel needs."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Static

from marl_tui.tui.terminal import MIN_COLUMNS, MIN_ROWS


class TooSmallScreen(Screen[None]):
    DEFAULT_CSS = "TooSmallScreen { align: center middle; } TooSmallScreen Static { width: auto; }"
    BINDINGS = [("q", "app.quit", "quit")]

    def compose(self) -> ComposeResult:
        yield Static(id="too-small")

    def on_mount(self) -> None:
        self.show(self.app.size.width, self.app.size.height)

    def show(self, width: int, height: int) -> None:
        self.query_one("#too-small", Static).update(
            f"terminal too small: needs {MIN_COLUMNS}×{MIN_ROWS}, have {width}×{height}\n"
            "enlarge the window (training goes on; q quits)")
