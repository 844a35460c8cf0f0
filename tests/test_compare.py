"""marl-tui compare: the statistics against hand-computed values, the marl-eval JSON against its
documented structure, the local engine on a tiny matrix, a killed job resumed, the screen driven
by Textual's pilot, the Ray engine (skipped without ray), and bad input."""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from marl_tui.compare import jobrun
from marl_tui.compare.board import Board
from marl_tui.compare.engines import LocalEngine
from marl_tui.compare.jobrun import TrainSpec
from marl_tui.compare.jobs import Job
from marl_tui.compare.runs import RunTail, read_info
from marl_tui.compare.stats import (
    Interval,
    bootstrap_ci,
    improvement,
    iqm,
    probability_of_improvement,
    seed_band,
)
from marl_tui.compare.targets import TARGETS, WINDOW, reached_at, reference_lines
from marl_tui.config import HEADLINE_KPI, has_oracle

# ------------------------------------------------------------------ statistics, by hand


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(4.5)  # (3 + 4 + 5 + 6) / 4
    assert iqm([1, 2, 3, 4, 100]) == pytest.approx(3.0)  # one cut at each end: (2 + 3 + 4) / 3
    assert iqm([5, 5, 5, 5]) == pytest.approx(5.0)


def _exact_percentiles(values: list[float], statistic: Callable[[np.ndarray], float]) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of the exact bootstrap distribution (every resample)."""
    stats = [statistic(np.array(r)) for r in itertools.product(values, repeat=len(values))]
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def test_bootstrap_ci_by_hand() -> None:
    # Two seeds, 0 and 1: a resample's mean is 0, ½ or 1 with chances ¼, ½, ¼, so 95 % of it
    # lies in [0, 1].
    assert bootstrap_ci([0.0, 1.0]) == Interval(0.0, 1.0)
    assert bootstrap_ci([3.0, 3.0, 3.0]) == Interval(3.0, 3.0)
    assert bootstrap_ci([7.0]) is None  # one seed has no interval
    values = [0.0, 1.0, 2.0, 10.0]  # 256 resamples, enumerated
    low, high = _exact_percentiles(values, np.mean)
    ci = bootstrap_ci(values)
    assert ci is not None
    assert ci.low == pytest.approx(low, abs=0.25) and ci.high == pytest.approx(high, abs=0.25)
    ci_iqm = bootstrap_ci(values, iqm)
    low, high = _exact_percentiles(values, lambda a: float(iqm(a)))
    assert ci_iqm is not None
    assert ci_iqm.low == pytest.approx(low, abs=0.25) and ci_iqm.high == pytest.approx(high, abs=0.25)


def test_probability_of_improvement_by_hand() -> None:
    # pairs (x, y): 1>0, 2>0, 2=2 (½), 3>0, 3>2 -> 4.5 of 9
    assert probability_of_improvement([1, 2, 3], [0, 2, 4]) == pytest.approx(0.5)
    assert probability_of_improvement([3, 4], [1, 2]) == 1.0
    assert probability_of_improvement([1, 1], [1, 1]) == 0.5
    result = improvement("a", [3, 4], "b", [1, 2])
    assert result.probability == 1.0 and result.ci == Interval(1.0, 1.0)  # every resample agrees
    assert improvement("a", [3], "b", [1, 2]).ci is None


def test_seed_band_uses_the_seeds_present_at_each_point() -> None:
    xs = np.arange(4.0)
    curves = np.array([[1.0, 2.0, 3.0, np.nan], [3.0, 4.0, 5.0, 6.0]])
    band = seed_band(xs, curves)
    assert band.mean == (2.0, 3.0, 4.0, 6.0)
    assert band.low[:3] == (1.0, 2.0, 3.0) and band.high[:3] == (3.0, 4.0, 5.0)
    assert np.isnan(band.low[3])  # one seed: a line, no band


def test_targets_are_declared_on_the_headline_kpis() -> None:
    # an external env has no oracle, so no target
    assert {k: t.kpi for k, t in TARGETS.items()} == {k: v for k, v in HEADLINE_KPI.items() if has_oracle(k)}
    nash = {"nash_profit": 100.0}
    pricing = TARGETS["pricing"]
    assert pricing.met(101.9, nash) and not pricing.met(102.1, nash)
    xs = list(range(20))
    # passing through the target on the way elsewhere does not count; settling there does
    assert reached_at(xs, [90] * 5 + [100] * 5 + [120] * 10, pricing, nash) is None
    # the mean of the WINDOW episodes ending at 13 is (90 + 4 x 100) / 5 = 98, within 2 % of 100
    assert WINDOW == 5 and reached_at(xs, [90] * 10 + [100] * 10, pricing, nash) == 13
    lines = reference_lines("mean_profit", {"mean_profit": 2222.2}, {"nash_profit": 2222.2, "collusive_profit": 2500})
    assert lines == (("oracle = Nash", 2222.2), ("collusive", 2500))


# ------------------------------------------------------------------ marl-eval JSON


def check_marl_eval(doc: object) -> int:
    """REFERENCE §8: {env: {task: {algorithm: {"run_1": {"step_1": {"step_count": int, "<metric>":
    [values]}, …, "absolute_metrics": {"<metric>": [values]}}}}}}. Returns the number of runs."""
    runs = 0
    assert isinstance(doc, dict) and len(doc) == 1
    for tasks in doc.values():
        assert isinstance(tasks, dict) and tasks
        for algos in tasks.values():
            assert isinstance(algos, dict) and algos
            for algo_runs in algos.values():
                for run_name, run in algo_runs.items():
                    runs += 1
                    assert re.fullmatch(r"run_\d+", run_name)
                    steps = [k for k in run if k != "absolute_metrics"]
                    assert steps and all(re.fullmatch(r"step_\d+", k) for k in steps)
                    assert [int(k[5:]) for k in steps] == list(range(1, len(steps) + 1))
                    counts = [run[k]["step_count"] for k in steps]
                    assert all(isinstance(c, int) for c in counts) and counts == sorted(counts)
                    for entry in [*(run[k] for k in steps), run["absolute_metrics"]]:
                        metrics = {k: v for k, v in entry.items() if k != "step_count"}
                        assert "return" in metrics
                        assert all(isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v)
                                   for v in metrics.values())
    return runs


# ------------------------------------------------------------------ the local engine, end to end


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 x 2 comparison on a tiny budget, through the real command (headless)."""
    from marl_tui.compare.command import CompareOptions, run_compare

    out = tmp_path_factory.mktemp("compare") / "c"
    log = out.parent / "out.txt"
    with log.open("w") as stream:
        code = run_compare(CompareOptions(targets=("pricing",), algos="mappo,qmix", seeds=2, steps=13_000,
                                          out=out, jobs=2, headless=True), stream=stream)
    assert code == 0, log.read_text()
    return out


def test_local_engine_writes_every_run_and_the_results(compared: Path) -> None:
    for algo, seed in itertools.product(("mappo", "qmix"), (0, 1)):
        run_dir = compared / f"{algo}-s{seed}"
        assert jobrun.finished(run_dir), (compared / "logs" / f"{algo}-s{seed}.log").read_text()
        info = read_info(run_dir)
        assert (info.algo, info.seed, info.total_steps) == (algo, seed, 13_000)
        assert (run_dir / "stream" / "records.bin").is_file()
    assert check_marl_eval(json.loads((compared / "results.json").read_text())) == 4
    runs = (compared / "runs.csv").read_text().splitlines()
    assert len(runs) == 5 and all(",finished," in row for row in runs[1:])
    summary = (compared / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("algorithm,metric,seeds,mean,mean_ci_low")
    assert {row.split(",")[1] for row in summary[1:]} == {"team_return", "mean_profit"}
    assert (compared / "improvement.csv").read_text().splitlines()[1].startswith("mappo,qmix,team_return,")
    printed = (compared.parent / "out.txt").read_text()
    assert printed.count("start    ") == 4 and printed.count("done     ") == 4
    assert "IQM 95% CI" in printed and "P(MAPPO > QMIX)" in printed


def test_existing_runs_compare_headless(compared: Path, cli) -> None:
    code, out, err = cli("compare", compared / "mappo-s0", compared / "qmix-s0", "--headless")
    assert code == 0, err
    assert "MAPPO" in out and "QMIX" in out and "results:" not in out  # two runs: nowhere to write
    code, out, err = cli("compare", compared, "--headless")
    assert code == 0 and f"results: {compared / 'results.json'}" in out


def _wait(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_killed_job_is_resumed_by_the_next_comparison(tmp_path: Path) -> None:
    job = Job("qmix", 0, tmp_path / "qmix-s0")
    spec = TrainSpec(scenario="pricing", steps={"qmix": 64_000})
    engine = LocalEngine([job], spec, workers=1)
    engine.start()
    _wait(lambda: (job.run_dir / "checkpoints" / "latest.pt").is_file() and job.name in engine._procs)
    engine._procs[job.name][1].kill()  # kill -9: no chance to save
    assert engine.join(60)
    assert engine.states()[job.name].status == "failed"
    assert not jobrun.finished(job.run_dir)
    assert jobrun.job_argv(job, spec)[3] == "resume"
    again = LocalEngine([job], spec, workers=1)
    again.start()
    assert again.join(120)
    assert again.states()[job.name].status == "finished", job.log.read_text()
    tail = RunTail(job.run_dir)
    tail.poll()
    data = tail.snapshot()
    assert data is not None and data.env_steps >= 64_000 and data.summary_status == "finished"


# ------------------------------------------------------------------ the screen


async def test_compare_screen_on_recorded_runs(compared: Path) -> None:
    from textual.widgets import DataTable

    from marl_tui.compare.command import CompareOptions, board_for_runs
    from marl_tui.tui.app import MarlApp
    from marl_tui.tui.screens.compare import CompareScreen, RunsScreen
    from marl_tui.tui.screens.replay import ReplayScreen
    from marl_tui.tui.widgets.compare_chart import CompareChart

    board = board_for_runs(CompareOptions(targets=(str(compared),)))
    app = MarlApp(first_screen=CompareScreen(board))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        table = screen.query_one("#cmp-table", DataTable)
        for _ in range(200):  # the first poll runs in a worker thread
            if table.row_count == 2:
                break
            await pilot.pause(0.05)
        assert table.row_count == 2
        row = [str(c) for c in table.get_row_at(0)]
        assert row[0] == "P MAPPO" and row[1] == "2/2"
        chart = screen.query_one("#cmp-kpi", CompareChart)
        await pilot.pause()
        drawn = "".join(chart.render_line(y).text for y in range(chart.size.height))
        assert "P" in drawn and "Q" in drawn and "~" in drawn  # means, and the collusive line
        legend = str(screen.query_one("#cmp-legend").render())
        assert "oracle = Nash" in legend and "collusive" in legend
        before = screen.kpi
        await pilot.press("k")  # another KPI
        for _ in range(200):  # it is scored again in a worker thread
            if screen.kpi != before and screen.comparison is not None and screen.comparison.metrics[-1] == screen.kpi:
                break
            await pilot.pause()
        assert screen.kpi != before
        await pilot.press("enter")  # MAPPO's runs
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("enter")  # replay seed 0
        await pilot.pause()
        assert isinstance(app.screen, ReplayScreen)
        await pilot.press("q")
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)


# ------------------------------------------------------------------ Ray


def test_ray_engine_on_a_local_instance(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    from marl_tui.compare.ray_engine import RayEngine

    jobs = [Job("random", seed, tmp_path / f"random-s{seed}") for seed in (0, 1)]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)}})
    try:
        engine = RayEngine(jobs, TrainSpec(scenario="pricing", steps={"random": 6400}), address=None)
        engine.start()
        assert engine.join(180)
        assert all(s.status == "finished" for s in engine.states().values()), engine.states()
    finally:
        ray.shutdown()
    board = Board("pricing", [RunTail(j.run_dir) for j in jobs])
    board.poll()
    assert [m.status for m in board.members()] == ["finished", "finished"]


# ------------------------------------------------------------------ bad input


def _fake_run(path: Path, scenario: str, algo: str = "mappo", seed: int = 0) -> Path:
    path.mkdir(parents=True)
    (path / "config.toml").write_text(f'[run]\nscenario = "{scenario}"\nalgo = "{algo}"\nseed = {seed}\n'
                                      "steps = 1000\n")
    return path


@pytest.mark.parametrize(("args", "says"), [
    (("pricing", "--algos", "mapo,qmix"), "unknown algorithm 'mapo' (did you mean 'mappo'?)"),
    (("pricing", "--seeds", "0"), "--seeds 0: give at least 1"),
    (("pricing", "--jobs", "0"), "--jobs 0: give at least 1"),
    (("pricing", "--engine", "spark"), "--engine 'spark': choose local or ray"),
    (("pricing", "--address", "x:1"), "add --engine ray"),
    (("nosuch/run",), "no such directory"),
    (("pricng",), "did you mean 'pricing'"),
])
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    os.chdir(tmp_path)
    code, out, err = cli("compare", *args, "--out", tmp_path / "c", "--headless")
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "c").exists()


def test_runs_of_other_scenarios_are_refused(cli, tmp_path: Path) -> None:
    a = _fake_run(tmp_path / "a", "pricing")
    b = _fake_run(tmp_path / "b", "warehouse")
    code, _, err = cli("compare", a, b, "--headless")
    assert code == 2 and "runs of different scenarios" in err
    code, _, err = cli("compare", tmp_path, "--headless")  # the folder holding both
    assert code == 2 and "runs of different scenarios" in err
    code, _, err = cli("compare", tmp_path / "empty-dir-missing", "--headless")
    assert code == 2 and "no such directory" in err
    code, _, err = cli("compare", a, "--algos", "qmix", "--headless")
    assert code == 2 and "only when training" in err


def test_out_holding_another_scenario_is_refused(cli, tmp_path: Path) -> None:
    _fake_run(tmp_path / "c" / "mappo-s0", "warehouse")
    code, _, err = cli("compare", "pricing", "--algos", "mappo", "--seeds", "1", "--out", tmp_path / "c",
                       "--headless")
    assert code == 2 and "belongs to scenario 'warehouse'" in err


def test_ray_missing_is_one_line(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    code, _, err = cli("compare", "pricing", "--engine", "ray", "--out", tmp_path / "c", "--headless")
    assert code == 2 and "Ray is not installed" in err and "marl-tui[ray]" in err
    assert not (tmp_path / "c").exists()


def test_ray_unreachable_is_one_line(cli, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    code, _, err = cli("compare", "pricing", "--engine", "ray", "--address", "127.0.0.1:9", "--out",
                       tmp_path / "c", "--headless")
    assert code == 2 and "no Ray cluster answers there" in err
    assert not (tmp_path / "c").exists()
