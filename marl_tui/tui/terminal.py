"""The one terminal check every way into the app goes through, before textual is imported.

A Textual app happily starts with stdout redirected and then writes escape codes into a file,
so without a TTY on both ends (or with a window too small for any panel) we stop with one line
that says what to use instead.
"""

from __future__ import annotations

import os
import sys

from marl_tui.errors import UserError

# Below this the dashboard cannot show its panels at all (the app folds layouts above it).
MIN_COLUMNS, MIN_ROWS = 40, 12
HEADLESS = "`marl-tui train SCENARIO` (add --jsonl for machine-readable lines)"
# textual-serve (`marl-tui serve`) runs the app with this driver: it draws into a browser tab
# through pipes, so there is no terminal to check (the tab's size is the app's to handle).
WEB_DRIVER = "textual.drivers.web_driver:WebDriver"


def require_terminal(what: str = "the app", instead: str = HEADLESS) -> None:
    """UserError unless standard input and output are a terminal of a usable size (or the app
    is served to a browser)."""
    if os.environ.get("TEXTUAL_DRIVER") == WEB_DRIVER:
        return
    for name, stream in (("standard input", sys.stdin), ("standard output", sys.stdout)):
        try:
            tty = stream is not None and stream.isatty()
        except (OSError, ValueError, AttributeError):  # closed or replaced streams
            tty = False
        if not tty:
            raise UserError(f"{what} needs a terminal, and {name} is not one; without a terminal use {instead}")
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return
    if 0 < size.columns < MIN_COLUMNS or 0 < size.lines < MIN_ROWS:
        raise UserError(f"{what}: the terminal is {size.columns}x{size.lines}; the app needs at least "
                        f"{MIN_COLUMNS}x{MIN_ROWS} (enlarge the window, or use {instead})")
