"""The glossary screen: a searchable list of every KPI, symbol and column, and the entry.

    GlossaryScreen()                          # the whole list
    GlossaryScreen(focus_term="Δ")            # opens on an entry (key, term, symbol or label)
    GlossaryScreen(panel="why")               # only what the why panel shows
    GlossaryScreen(notes=run_notes(kind, algo))   # per-run notes shown above the entry

Type to filter; up/down choose; escape closes.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from marl_tui.learn.glossary import Entry, entries_for_panel, lookup, search


def entry_text(entry: Entry, notes: tuple[str, ...] = ()) -> Text:
    t = Text()
    t.append(entry.term, style="bold underline")
    if entry.symbol:
        t.append(f"   {entry.symbol}", style="bold cyan")
    t.append(f"\n{entry.key}", style="dim")
    t.append("\n\n" + entry.meaning)
    t.append(f"\n\nshown on: {', '.join(entry.panels)}", style="dim")
    for note in notes:
        t.append("\n\nthis run: ", style="bold yellow")
        t.append(note)
    return t


class GlossaryScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "close")]
    DEFAULT_CSS = """
    GlossaryScreen { align: center middle; }
    GlossaryScreen #glossary-box { width: 95%; height: 90%; border: round $primary; }
    GlossaryScreen #glossary-list { width: 30; }
    GlossaryScreen #glossary-entry { padding: 0 1; }
    """

    def __init__(self, focus_term: str | None = None, panel: str | None = None,
                 notes: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.pool = entries_for_panel(panel) if panel else None
        self.notes = notes
        self.focus_term = focus_term
        self.shown: list[Entry] = []

    def compose(self) -> ComposeResult:
        yield Input(placeholder="search the glossary", id="glossary-search")
        with Horizontal(id="glossary-box"):
            yield OptionList(id="glossary-list")
            with VerticalScroll(id="glossary-entry"):
                yield Static(id="glossary-text")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#glossary-box").border_title = "glossary"
        self._fill("")
        start = lookup(self.focus_term) if self.focus_term else None
        if start is not None and start in self.shown:
            self.query_one(OptionList).highlighted = self.shown.index(start)
        self._show(start or (self.shown[0] if self.shown else None))
        self.query_one(Input).focus()

    def _fill(self, query: str) -> None:
        found = search(query)
        self.shown = [e for e in found if self.pool is None or e in self.pool]
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options([Option(f"{e.term}" + (f"  {e.symbol}" if e.symbol else "")) for e in self.shown])
        if self.shown:
            options.highlighted = 0

    def _show(self, entry: Entry | None) -> None:
        text = entry_text(entry, self.notes) if entry else Text("no entry matches", style="dim")
        self.query_one("#glossary-text", Static).update(text)

    @on(Input.Changed)
    def _search(self, event: Input.Changed) -> None:
        self._fill(event.value)
        self._show(self.shown[0] if self.shown else None)

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if 0 <= event.option_index < len(self.shown):
            self._show(self.shown[event.option_index])

    def key_down(self) -> None:
        self.query_one(OptionList).action_cursor_down()

    def key_up(self) -> None:
        self.query_one(OptionList).action_cursor_up()

    def action_close(self) -> None:
        self.dismiss(None)
