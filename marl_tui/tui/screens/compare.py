"""`marl-tui compare`: algorithms side by side over seeds, live while their runs train.

Two charts (team return, and the scenario's headline KPI; `k` shows its other KPIs) with each
algorithm's mean over seeds and 95 % bootstrap band against the exact answer, a table per
algorithm (final greedy score: mean, IQM, 95 % CI; the target; wall time), and the probability
of improvement. Enter on a row lists that algorithm's runs; Enter on a run replays it. The run
directories are polled every POLL_SECONDS in a worker thread, which hands the screen one
immutable Comparison.
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from marl_tui.compare.board import Board
from marl_tui.compare.stats import Interval
from marl_tui.compare.summary import TEAM_RETURN, AlgoResult, Comparison, Member, metric_of
from marl_tui.compare.targets import reference_lines
from marl_tui.config import ALGO_TITLES
from marl_tui.errors import UserError
from marl_tui.tui.fmt import DASH, humanise, kpi_value, num, pack
from marl_tui.tui.screens.replay import ReplayScreen
from marl_tui.tui.widgets.compare_chart import ChartData, CompareChart, legend, style_of

POLL_SECONDS = 1.5


def _ci(ci: Interval | None, kpi: str) -> str:
    return f"[{kpi_value(kpi, ci.low)}, {kpi_value(kpi, ci.high)}]" if ci else DASH


def _to_target(a: AlgoResult) -> str:
    if a.steps_to_target is None:
        return DASH
    secs = f" ≈{a.seconds_to_target:.0f}s" if a.seconds_to_target is not None else ""
    return f"{a.steps_to_target:,.0f}{secs}"


def _runs(a: AlgoResult) -> str:
    failed = a.count("failed")
    return f"{a.count('finished')}/{len(a.members)}" + (f" {failed}✗" if failed else "")


class RunsScreen(Screen[None]):
    """One algorithm's runs: Enter replays the run under the cursor."""

    BINDINGS = [Binding("escape,q", "back", "back"), Binding("enter", "replay", "replay", show=False)]

    def __init__(self, result: AlgoResult, kpi: str) -> None:
        super().__init__()
        self.result, self.kpi = result, kpi

    def compose(self) -> ComposeResult:
        yield Static(f"{ALGO_TITLES.get(self.result.algo, self.result.algo)}: its runs (Enter: replay)",
                     id="cmp-status")
        yield DataTable(id="cmp-runs", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("seed", "status", "done", f"final {humanise(self.kpi)}", "run directory")
        for m in self.result.members:
            ev = m.final
            table.add_row(str(m.seed), m.status, f"{100 * m.progress:.0f}%",
                          kpi_value(self.kpi, metric_of(ev, self.kpi)) if ev else DASH, str(m.run_dir),
                          key=str(m.run_dir))
        table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self._open(self.result.members[event.cursor_row])

    def action_replay(self) -> None:
        self._open(self.result.members[self.query_one(DataTable).cursor_row])

    def _open(self, member: Member) -> None:
        from marl_tui.tui.recording import open_recording

        try:
            recording = open_recording(member.run_dir)
        except UserError as exc:
            self.notify(str(exc), severity="warning")
            return
        self.app.push_screen(ReplayScreen(recording.source, recording.scenario))

    def action_back(self) -> None:
        self.app.pop_screen()


class CompareScreen(Screen[None]):
    BINDINGS = [
        Binding("k", "next_kpi", "KPI", tooltip="chart and score another of the scenario's KPIs"),
        Binding("q", "quit", "quit", tooltip="stop the runs still training (each saves) and leave"),
    ]

    def __init__(self, board: Board) -> None:
        super().__init__()
        self.board = board
        self.kpi: str | None = None  # the charted KPI; None: the target's
        self.comparison: Comparison | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="cmp-status")
        with Horizontal(id="cmp-charts"):
            yield CompareChart(id="cmp-return")
            yield CompareChart(id="cmp-kpi")
        yield Static(id="cmp-legend")
        yield DataTable(id="cmp-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="cmp-notes")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#cmp-status", Static).update(f"{self.board.scenario}: reading the runs…")
        self.set_interval(POLL_SECONDS, self.refresh_comparison)
        self.refresh_comparison()
        self.query_one(DataTable).focus()

    @work(thread=True, exclusive=True, group="compare-poll")
    def refresh_comparison(self) -> None:
        board = self.board
        board.poll()
        points = max(20, self.query_one("#cmp-kpi", CompareChart).size.width - 14)
        comparison = board.comparison(metrics=(self.kpi,) if self.kpi else (), points=points)
        if board.engine is not None and board.over() and not board.written:
            board.write_results(comparison)
        self.app.call_from_thread(self.show, comparison)

    def show(self, c: Comparison) -> None:
        self.comparison = c
        kpi = c.metrics[-1]
        self._status(c)
        oracle = c.oracle
        for chart_id, metric in (("#cmp-return", TEAM_RETURN), ("#cmp-kpi", kpi)):
            lines: tuple[tuple[str, float], ...] = ()
            if oracle is not None:
                lines = ((("oracle", oracle.team_return),) if metric == TEAM_RETURN
                         else reference_lines(metric, oracle.kpis, oracle.values))
            self.query_one(chart_id, CompareChart).set_data(
                ChartData(metric, tuple((a.algo, a.bands[metric]) for a in c.algos if metric in a.bands), lines))
        kpi_lines = reference_lines(kpi, oracle.kpis, oracle.values) if oracle else ()
        width = max(20, self.size.width - 2)
        self.query_one("#cmp-legend", Static).update(
            Text("\n".join(pack(legend([a.algo for a in c.algos], kpi_lines), width)), style="dim"))
        self._table(c, kpi)
        notes = [f"P({ALGO_TITLES.get(i.x, i.x)}>{ALGO_TITLES.get(i.y, i.y)}) {i.probability:.2f}"
                 + (f" [{i.ci.low:.2f},{i.ci.high:.2f}]" if i.ci else "") for i in c.improvements]
        if notes:
            notes[0] = f"final team return: {notes[0]}"
        if self.board.written:
            notes.append(f"results in {self.board.results_dir}")
        self.query_one("#cmp-notes", Static).update("\n".join(pack(notes, width)))

    def _status(self, c: Comparison) -> None:
        members = [m for a in c.algos for m in a.members]
        over = sum(m.status in ("finished", "failed", "stopped") for m in members)
        running = sum(m.status == "running" for m in members)
        queued = sum(m.status == "queued" for m in members)
        parts = [c.scenario, f"{over}/{len(members)} runs over"]
        if running or queued:
            parts.append(f"{running} running, {queued} queued")
        if c.target is not None:
            parts.append(f"target: {c.target.text}")
        self.query_one("#cmp-status", Static).update(" · ".join(parts))

    def _table(self, c: Comparison, kpi: str) -> None:
        table = self.query_one("#cmp-table", DataTable)
        row = table.cursor_row
        table.clear(columns=True)
        short = humanise(kpi)[:14]
        table.add_columns("algorithm", "runs", f"{short}: mean", "IQM", "IQM 95% CI", "hit", "to target", "wall s")
        for a in c.algos:
            e = a.final.get(kpi)
            mark = Text(f"{style_of(a.algo).mark} {ALGO_TITLES.get(a.algo, a.algo)}")
            table.add_row(mark, _runs(a), kpi_value(kpi, e.mean) if e else DASH, kpi_value(kpi, e.iqm) if e else DASH,
                          _ci(e.iqm_ci if e else None, kpi), f"{a.reached}/{len(a.members)}", _to_target(a),
                          num(a.wall_seconds, 3) if a.wall_seconds is not None else DASH, key=a.algo)
        if c.algos:
            table.move_cursor(row=min(row, len(c.algos) - 1))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if self.comparison is None or event.data_table.id != "cmp-table":
            return
        result = self.comparison.algos[event.cursor_row]
        self.app.push_screen(RunsScreen(result, self.comparison.metrics[-1]))

    def action_next_kpi(self) -> None:
        c = self.comparison
        if c is None or c.oracle is None:
            return
        kpis = list(c.oracle.kpis)
        current = c.metrics[-1]
        self.kpi = kpis[(kpis.index(current) + 1) % len(kpis)] if current in kpis else kpis[0]
        self.refresh_comparison()

    def action_quit(self) -> None:
        if self.board.engine is not None:
            self.board.engine.stop()
        self.app.exit()
