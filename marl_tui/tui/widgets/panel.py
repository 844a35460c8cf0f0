"""The frame every text panel shares: a focusable, scrollable box with a title.

A panel's content is built for the width it gets (`Fit`), so the same code draws an
80-column and a 200-column terminal.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static


class Fit:
    """A Rich renderable drawn by fn(width) at render time."""

    def __init__(self, fn: Callable[[int], RenderableType]) -> None:
        self.fn = fn

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.fn(max(10, options.max_width))

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(options.max_width, options.max_width)


class PanelBody(Static):
    DEFAULT_CSS = "PanelBody { width: 100%; height: auto; }"

    def on_resize(self) -> None:
        # A scrollbar appearing or the terminal resizing changes the width: wrap again.
        parent = self.parent
        if isinstance(parent, Panel) and parent.drawn_width not in (None, self.size.width):
            parent.redraw()


class Panel(VerticalScroll):
    """A bordered panel. Subclasses call `self.draw(fn)` with fn(width) -> renderable."""

    can_focus = True
    TITLE = ""
    HINT = ""  # one line for the help screen

    def __init__(self, *, id: str | None = None, classes: str = "") -> None:
        super().__init__(id=id, classes=f"panel {classes}".strip())
        self.border_title = self.TITLE
        self._body = PanelBody(Text(""))
        self._fn: Callable[[int], RenderableType] | None = None
        self._lines: int | None = None
        self._width: int | None = None
        self._height: int | None = None

    def compose(self) -> ComposeResult:
        yield self._body

    def draw(self, fn: Callable[[int], RenderableType]) -> None:
        """Show fn(width). Text is wrapped here, so its height is known: when it has as many
        lines as before, the body is repainted without a new layout of the screen (layouts
        are the app's biggest cost while training runs)."""
        self._fn = fn
        width = self._body.size.width
        if width != self._width:
            self._lines = None
        self._width = width if width > 0 else None
        if width <= 0:  # not laid out yet
            self._body.update(Fit(fn))
            return
        content = fn(width)
        if not isinstance(content, Text):
            self._lines = self._width = None
            self._body.update(Fit(fn))
            return
        wrapped = content.wrap(self.app.console, width)
        if self._lines is not None and len(wrapped) < self._lines:
            # Shorter than before at the same width: pad it, so the panel keeps its height
            # and the screen is not laid out again (the panel does not jump either).
            wrapped.extend(Text("") for _ in range(self._lines - len(wrapped)))
        lines = len(wrapped)
        self._body.update(Text("\n").join(wrapped), layout=lines != self._lines)
        self._lines = lines

    @property
    def drawn_width(self) -> int | None:
        return self._width

    @property
    def spare_room(self) -> bool:
        """The panel has a height of its own (the grid's cell), not its content's: rows left
        empty below the content can be used (longer trails, more rows)."""
        return not self.styles.height.is_auto and self.scrollable_content_region.height > 0

    def on_resize(self) -> None:
        if self.spare_room and self._height != self.size.height:
            self.redraw()  # a panel that fills its rows fills them again
        self._height = self.size.height

    def redraw(self) -> None:
        if self._fn is not None:
            self._lines = None
            self.draw(self._fn)

    def message(self, text: str, style: str = "dim") -> None:
        self._fn = None
        self._lines = self._width = None
        self._body.update(Text(text, style=style))
