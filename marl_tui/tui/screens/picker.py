"""The picker: a scenario (with its reference answer), an algorithm, a seed and a few knobs.

It appears at once: scenario files are small TOML and load here, while the oracles (which
build an environment, and for fulfilment run a Monte Carlo estimate) and the algorithms'
default hyperparameters are computed in a worker thread and filled in, entry by entry, as
they arrive. Nothing a key does waits on them or changes when they land: the list keeps its
highlight, Enter starts the highlighted scenario (the learner's defaults are then resolved
by the run itself), and the list always has focus when the picker opens.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.style import Style as VisualStyle
from textual.widgets import Button, Footer, Input, Label, OptionList, RadioButton, RadioSet, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from marl_tui.config import ALGOS, Scenario, bundled_names, load_scenario, local_scenario_files
from marl_tui.errors import UserError
from marl_tui.tui.session import RunRequest

ALGO_LABELS = {
    "maddpg": "MADDPG",
    "mappo": "MAPPO",
    "qmix": "QMIX",
    "random": "random (baseline)",
    "oracle": "oracle (baseline)",
}
ALGO_NOTES = {
    "maddpg": "deterministic actors μ_i(o_i), one centralised critic Q_i(s, a) per agent",
    "mappo": "PPO for every agent with one centralised value V(s); clipped updates",
    "qmix": "per-agent Q_i mixed monotonically into Q_total; picks from discrete levels",
    "random": "uniform random actions: the floor every learner must beat",
    "oracle": "plays the scenario's exact answer: the line learners aim for",
}
ALGO_ORDER = ("maddpg", "mappo", "qmix", "random", "oracle")
EXPLORE_LABELS = {"noise_std": "noise σ", "entropy_coef": "entropy bonus", "eps_end": "final ε"}
DEFAULT_ALGO = "mappo"


@dataclass
class Entry:
    """One line of the scenario list."""

    key: str
    scenario: Scenario | None
    source: str
    error: str | None = None  # the file did not load
    info: dict[str, Any] | None = None  # scenario_info(), when computed
    info_error: str | None = None


def load_entries() -> list[Entry]:
    entries: list[Entry] = []
    for name in bundled_names():
        try:
            entries.append(Entry(name, load_scenario(name), name))
        except UserError as exc:
            entries.append(Entry(name, None, name, error=str(exc)))
    for path in local_scenario_files():
        try:
            sc = load_scenario(str(path))
            entries.append(Entry(f"{sc.name} ({path.name})", sc, str(path)))
        except UserError as exc:
            entries.append(Entry(path.name, None, str(path), error=str(exc)))
    return entries


def option_prompt(e: Entry) -> RenderableType:
    """The entry's name and kind, and below, indented (wrapped lines too), its description and
    reference answer, or why there is none (yet)."""
    head = Text(e.key, style="bold")
    if e.scenario is None:
        return Group(head, Padding(Text(f"✗ {e.error}", style="red"), (0, 0, 0, 2)))
    head.append(f"  {e.scenario.kind}", style="dim")
    body = Text(e.scenario.description)
    if e.info is not None:
        body.append(f"\n→ {e.info['oracle_summary']}", style="italic green")
    elif e.info_error:
        body.append(f"\n✗ reference unavailable: {e.info_error}", style="red")
    else:
        body.append("\n→ computing…", style="dim italic")
    return Group(head, Padding(body, (0, 0, 0, 2)))


class ScenarioList(OptionList):
    """The scenarios. Up on the first and down on the last stay put: a wrap jumped to an entry
    out of sight while the form beside it followed."""

    def action_cursor_up(self) -> None:
        self._move(-1)

    def action_cursor_down(self) -> None:
        self._move(1)

    def _move(self, direction: int) -> None:
        if self.option_count:
            here = self.highlighted if self.highlighted is not None else 0
            self.highlighted = min(max(here + direction, 0), self.option_count - 1)

    def replace_prompt(self, index: int, prompt: RenderableType) -> None:
        """A new prompt, and the highlighted entry kept in sight: a taller entry above it
        (a reference answer that arrived) pushes it down."""
        self.replace_option_prompt_at_index(index, prompt)
        self.call_after_refresh(self.scroll_to_highlight)


class AlgoButton(RadioButton):
    """An algorithm: ● chosen, ○ not, so the choice reads without colour; the cursor, a
    different thing, is its name reversed while the list has focus. (Done here, not in
    app.tcss: a style keyed on the list's focus was cached per button and went stale.)"""

    @property
    def _button(self) -> Content:
        return Content.styled("●" if self.value else "○", self.get_visual_style("toggle--button"))

    def render(self) -> Content:
        content = super().render()
        if self.has_class("-selected") and self.parent is not None and self.parent.has_focus:
            return content.stylize(VisualStyle(reverse=True), 1)
        return content


class AlgoSet(RadioSet):
    """The algorithms; their cursor is drawn by each AlgoButton, so they are redrawn when it
    moves and when the list gains or loses focus (a class change alone did not redraw them)."""

    def watch__selected(self) -> None:
        super().watch__selected()
        self._redraw_buttons()

    def on_focus(self) -> None:
        self._redraw_buttons()

    def on_blur(self) -> None:
        self._redraw_buttons()

    def _redraw_buttons(self) -> None:
        for button in self.query(AlgoButton):
            button.refresh()


class FieldError(UserError):
    """A field's value is wrong: the message says why, field_id which one."""

    def __init__(self, message: str, field_id: str) -> None:
        super().__init__(message)
        self.field_id = field_id


class Computed(Message):
    """The worker's results for one scenario (or, with key None, the algorithms' exploration
    fields), posted as each is ready."""

    def __init__(self, key: str | None, defaults: dict[str, dict[str, Any]] | None = None,
                 info: tuple[dict[str, Any] | None, str | None] | None = None,
                 explore_fields: dict[str, str | None] | None = None) -> None:
        super().__init__()
        self.key = key
        self.defaults = defaults
        self.info = info
        self.explore_fields = explore_fields


class AllComputed(Message):
    """Every reference answer is in."""


class PickerScreen(Screen[None]):
    BINDINGS = [
        Binding("enter", "start", "start", priority=True),
        Binding("question_mark", "help", "help"),
        Binding("q", "app.quit", "quit"),
        Binding("escape", "leave_field", "back to the list"),
    ]

    def __init__(self, device: str = "cpu", select: RunRequest | None = None) -> None:
        super().__init__()
        self.device = device
        self._select = select  # the run to show first (back from its dashboard with p)
        self.entries = load_entries()
        self.algo = DEFAULT_ALGO
        # What the worker computed, kept on the UI thread (its messages bring it here).
        self._defaults: dict[tuple[str, str], dict[str, Any]] = {}
        self._explore_field: dict[str, str | None] = {}
        self._form_for: tuple[str, str] | None = None
        self.ready = threading.Event()  # every reference answer shown

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("marl-tui", "bold"), "  pick a scenario and an algorithm, "
                                   "then press ", ("enter", "bold"), " to watch it learn"),
                     id="picker-title")
        with Horizontal(id="picker-body"):
            options = [Option(option_prompt(e), id=f"sc-{k}") for k, e in enumerate(self.entries)]
            yield ScenarioList(*options, id="scenarios", classes="panel")
            with VerticalScroll(id="form", classes="panel"):
                yield Static(id="detail")
                with AlgoSet(id="algo", compact=True):
                    for a in ALGO_ORDER:
                        yield AlgoButton(ALGO_LABELS[a], value=a == DEFAULT_ALGO, id=f"algo-{a}",
                                         compact=True)
                for fid, label, kind in (("seed", "seed", "integer"), ("envs", "parallel copies", "integer"),
                                         ("steps", "env steps", "integer"), ("lr", "learning rate", "number"),
                                         ("gamma", "discount γ", "number"),
                                         ("explore", "exploration", "number")):
                    with Horizontal(classes="field"):
                        yield Label(label, id=f"label-{fid}")
                        yield Input(id=fid, type=kind, compact=True)
                yield Static(id="form-error")
                yield Button("Start ▶", id="start", variant="primary", compact=True)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        scenarios = self.query_one("#scenarios", ScenarioList)
        scenarios.border_title = "scenarios"
        form = self.query_one("#form", VerticalScroll)
        form.border_title = "run"
        form.can_focus = False  # tab goes straight from the list to the algorithms
        for inp in self.query(Input):
            inp.cursor_blink = not self.app.is_headless
        self.call_after_refresh(self._compute)  # after the first paint: it imports torch
        scenarios.highlighted = 0
        if self._select is not None:
            source = self._select.scenario.source
            scenarios.highlighted = next((k for k, e in enumerate(self.entries) if e.scenario is not None
                                          and e.scenario.source == source), 0)
            self.algo = self._select.algo
            self.select_algo(self._select.algo)
        self._refresh_form()

    def on_screen_resume(self) -> None:
        """The list has focus whenever the picker shows (opened, back from a run or from
        help): keys pressed then go where the person expects, not where focus was left."""
        self.query_one("#scenarios", ScenarioList).focus()

    # ------------------------------------------------------------------ background work
    @work(thread=True, exclusive=True, group="picker-answers")
    def _compute(self) -> None:
        """Default hyperparameters, then each scenario's reference answer, off the UI thread
        (torch loads here); each result is posted as it is ready."""
        worker = get_current_worker()
        try:
            from marl_tui.algos.registry import algorithm_class, resolve_hparams
            from marl_tui.catalogue import cached_scenario_info
        except Exception as exc:  # noqa: BLE001
            for e in self.entries:
                self.post_message(Computed(e.key, info=(None, f"{type(exc).__name__}: {exc}")))
            self.post_message(AllComputed())
            return
        fields: dict[str, str | None] = {}
        for algo in ALGOS:
            try:
                fields[algo] = algorithm_class(algo).exploration_field
            except Exception:  # noqa: BLE001 - an algorithm being rewritten
                fields[algo] = None
        self.post_message(Computed(None, explore_fields=fields))
        # Every scenario's defaults first (quick), so the form fills at once.
        for e in self.entries:
            if e.scenario is None or worker.is_cancelled:
                continue
            defaults: dict[str, dict[str, Any]] = {}
            for algo in ALGOS:
                try:
                    defaults[algo] = asdict(resolve_hparams(algo, e.scenario, {}))
                except Exception as exc:  # noqa: BLE001
                    defaults[algo] = {"_error": str(exc)}
            self.post_message(Computed(e.key, defaults=defaults))
        for e in self.entries:
            if e.scenario is None or worker.is_cancelled:
                continue
            try:
                info: tuple[dict[str, Any] | None, str | None] = (cached_scenario_info(e.scenario), None)
            except Exception as exc:  # noqa: BLE001 - shown on the entry
                info = (None, f"{type(exc).__name__}: {exc}")
            self.post_message(Computed(e.key, info=info))
        self.post_message(AllComputed())

    def on_computed(self, message: Computed) -> None:
        if message.explore_fields is not None:
            self._explore_field.update(message.explore_fields)
        for algo, hp in (message.defaults or {}).items():
            self._defaults[(message.key or "", algo)] = hp
        if message.info is not None:
            index = next(k for k, e in enumerate(self.entries) if e.key == message.key)
            entry = self.entries[index]
            entry.info, entry.info_error = message.info
            self.query_one("#scenarios", ScenarioList).replace_prompt(index, option_prompt(entry))
        self._refresh_form()

    def on_all_computed(self) -> None:
        self.ready.set()

    # ------------------------------------------------------------------ the form
    def _entry(self) -> Entry | None:
        idx = self.query_one("#scenarios", ScenarioList).highlighted
        return self.entries[idx] if idx is not None and 0 <= idx < len(self.entries) else None

    def _entry_key(self) -> str | None:
        e = self._entry()
        return e.key if e else None

    def _refresh_form(self) -> None:
        e = self._entry()
        detail = self.query_one("#detail", Static)
        if e is None:
            return
        t = Text()
        if e.scenario is None:
            t.append(f"{e.key}\n", style="bold")
            t.append(f"✗ {e.error}", style="red")
            detail.update(t)
            return
        sc = e.scenario
        narrow = self.app.size.width < 100  # the list already shows the reference answer
        t.append(f"{sc.name}", style="bold")
        t.append(f"  {sc.kind}" + ("" if narrow else f" · {sc.source}"), style="dim")
        if e.info:
            t.append(f"\n{e.info['n_agents']} agents · {e.info['action_space']} · "
                     f"{e.info['episode_length']} steps", style="dim")
            if not narrow:
                t.append("\nreference: ", style="bold")
                t.append(e.info["oracle_summary"], style="green")
        elif e.info_error:
            t.append(f"\nreference unavailable: {e.info_error}", style="red")
        elif not narrow:
            t.append("\nreference: computing…", style="dim")
        t.append(f"\n{ALGO_LABELS[self.algo]}: ", style="bold")
        t.append(ALGO_NOTES[self.algo])
        detail.update(t)
        key = (e.key, self.algo)
        hp = self._defaults.get(key)
        field = self._explore_field.get(self.algo)
        if self._form_for == key and hp is not None:
            return
        if self._form_for is None or self._form_for[0] != e.key:
            self._set("seed", str(sc.seed))
            self._set("envs", str(sc.parallel_envs))
            self._keep_selected(e, ("seed", "envs"))
        if hp is None:
            for fid in ("steps", "lr", "gamma", "explore"):
                self._set(fid, "", placeholder="…", disabled=True)
            self._form_for = (e.key, "")
            return
        self._form_for = key
        self._set("steps", str(hp.get("steps", "")), disabled="steps" not in hp)
        learner = self.algo not in ("random", "oracle")
        self._set("lr", _num(hp.get("lr")), disabled=not learner or "lr" not in hp,
                  placeholder="—")
        self._set("gamma", _num(hp.get("gamma")), disabled=not learner, placeholder="—")
        label = EXPLORE_LABELS.get(field or "", field or "exploration")
        self.query_one("#label-explore", Label).update(label)
        self._set("explore", _num(hp.get(field)) if field else "",
                  disabled=not learner or not field, placeholder="—")
        self._keep_selected(e, ("steps", "lr", "gamma", "explore"))

    def _keep_selected(self, e: Entry, fields: tuple[str, ...]) -> None:
        """Back from a run with p: the settings it was started with (--seed, --envs, --steps,
        the learner's overrides) stay in the form for its scenario (and its algorithm)."""
        sel = self._select
        if sel is None or e.scenario is None or e.scenario.source != sel.scenario.source:
            return
        explore = self._explore_field.get(self.algo)
        kept = {"seed": sel.resolved_seed, "envs": sel.n_envs}
        if self.algo == sel.algo:
            kept |= {"steps": sel.steps, "lr": sel.overrides.get("lr"), "gamma": sel.overrides.get("gamma"),
                     "explore": sel.overrides.get(explore) if explore else None}
        for fid in fields:
            if kept.get(fid) is not None and self._enabled(fid):
                self.query_one(f"#{fid}", Input).value = _num(kept[fid])

    def on_resize(self) -> None:
        if self.is_mounted:
            self._refresh_form()

    def _set(self, fid: str, value: str, disabled: bool = False, placeholder: str = "") -> None:
        inp = self.query_one(f"#{fid}", Input)
        inp.value = value
        inp.placeholder = placeholder
        inp.disabled = disabled

    def _say(self, message: str | Text = "") -> None:
        self.query_one("#form-error", Static).update(message)

    @on(OptionList.OptionHighlighted, "#scenarios")
    def _highlighted(self) -> None:
        self._say()
        self._refresh_form()

    def on_descendant_focus(self, event: Any) -> None:
        self.refresh_bindings()  # escape shows only in a text field
        radio = self.query_one("#algo", RadioSet)
        if event.widget is radio:
            radio._selected = ALGO_ORDER.index(self.algo)  # the cursor starts on the chosen one

    @on(RadioSet.Changed, "#algo")
    def _algo_changed(self, event: RadioSet.Changed) -> None:
        self.algo = (event.pressed.id or "algo-mappo").removeprefix("algo-")
        # Chosen with space or enter on the list: say what the next enter does.
        self._say(Text(f"{ALGO_LABELS[self.algo]} chosen: enter starts it", style="bold")
                  if self.focused is event.radio_set else "")
        self._refresh_form()

    @on(Button.Pressed, "#start")
    def _pressed(self) -> None:
        self.action_start()

    def select_algo(self, algo: str) -> None:
        self.query_one(f"#algo-{algo}", RadioButton).value = True

    # ------------------------------------------------------------------ start
    def request(self) -> RunRequest:
        """The run the form describes; UserError says what to fix (FieldError: in which
        field). An emptied field is an error too, not a silent default."""
        e = self._entry()
        if e is None or e.scenario is None:
            raise UserError("this scenario file does not load: fix it or pick another")
        sc = e.scenario
        hp = self._defaults.get((e.key, self.algo))
        field = self._explore_field.get(self.algo)
        seed = _int(self._value("seed"), "seed", lo=0, field_id="seed")
        envs = _int(self._value("envs"), "parallel copies", lo=1, field_id="envs")
        steps = _int(self._value("steps"), "env steps", lo=1, field_id="steps") \
            if self._enabled("steps") else None
        overrides: dict[str, float] = {}
        learner = self.algo not in ("random", "oracle")
        if learner and self._enabled("lr") and (hp is None or "lr" in hp):
            lr = _float(self._value("lr"), "learning rate", field_id="lr")
            if not 0 < lr < 1:
                raise FieldError(f"learning rate {lr:g}: must be in (0, 1), e.g. 3e-4", "lr")
            if hp is None or lr != hp.get("lr"):
                overrides["lr"] = lr
        if learner and self._enabled("gamma"):
            gamma = _float(self._value("gamma"), "discount γ", field_id="gamma")
            if not 0 <= gamma < 1:
                raise FieldError(f"discount γ {gamma:g}: must be in [0, 1), e.g. 0.99", "gamma")
            if hp is None or gamma != hp.get("gamma"):
                overrides["gamma"] = gamma
        if learner and field and self._enabled("explore"):
            name = EXPLORE_LABELS.get(field, field)
            x = _float(self._value("explore"), name, field_id="explore")
            if x < 0:
                raise FieldError(f"{name} {x:g}: must be ≥ 0", "explore")
            if hp is None or x != hp.get(field):
                overrides[field] = x
        if hp is not None and steps == hp.get("steps"):
            steps = None
        req = RunRequest(scenario=sc, algo=self.algo, steps=steps, seed=seed,
                         n_envs=None if envs == sc.parallel_envs else envs, device=self.device,
                         overrides=overrides)
        if overrides:
            from marl_tui.algos.registry import resolve_hparams

            resolve_hparams(self.algo, sc, overrides)  # range checks name the field
        return req

    def _value(self, fid: str) -> str:
        return self.query_one(f"#{fid}", Input).value.strip()

    def _enabled(self, fid: str) -> bool:
        return not self.query_one(f"#{fid}", Input).disabled

    def action_start(self) -> None:
        """Enter, from anywhere on the picker, starts the highlighted scenario with the chosen
        (●) algorithm. On the algorithm list with the cursor on another algorithm, it chooses
        that one and waits for a second enter: a run never starts with an algorithm the
        person did not see chosen."""
        radio = self.query_one("#algo", RadioSet)
        if self.focused is radio:
            index = radio._selected
            if index is not None and ALGO_ORDER[index] != self.algo:
                self.select_algo(ALGO_ORDER[index])
                return
        elif isinstance(self.focused, Button) and self.focused.id != "start":
            return
        try:
            req = self.request()
        except FieldError as exc:
            self._say(Text(f"✗ {exc}", style="bold red"))
            self.query_one(f"#{exc.field_id}", Input).focus()
            return
        except UserError as exc:
            self._say(Text(f"✗ {exc}", style="bold red"))
            return
        self.app.start_run(req)  # type: ignore[attr-defined]

    def action_help(self) -> None:
        from marl_tui.tui.screens.help import PickerHelpScreen

        self.app.push_screen(PickerHelpScreen())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave_field":  # a text field takes q and ?: say how to get out of it
            return isinstance(self.focused, Input)
        return True

    def action_leave_field(self) -> None:
        self.query_one("#scenarios", ScenarioList).focus()


def _num(x: Any) -> str:
    if x is None:
        return ""
    return f"{x:g}" if isinstance(x, float) else str(x)


def _int(text: str, name: str, lo: int, field_id: str) -> int:
    if not text:
        raise FieldError(f"{name} is empty: enter a whole number", field_id)
    try:
        v = int(text)
    except ValueError:
        raise FieldError(f"{name} {text!r}: enter a whole number", field_id) from None
    if v < lo:
        raise FieldError(f"{name} {v}: must be at least {lo}", field_id)
    return v


def _float(text: str, name: str, field_id: str) -> float:
    if not text:
        raise FieldError(f"{name} is empty: enter a number such as 0.001 or 1e-3", field_id)
    try:
        return float(text)
    except ValueError:
        raise FieldError(f"{name} {text!r}: enter a number such as 0.001 or 1e-3", field_id) from None
