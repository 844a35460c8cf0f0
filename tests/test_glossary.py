"""The glossary has an entry for every KPI, metric column and label the panels render."""

from __future__ import annotations

import pytest

from marl_tui.config import bundled_names, load_scenario
from marl_tui.envs.base import make_env
from marl_tui.learn.glossary import ENTRIES, entries_for_panel, lookup, run_notes, search
from marl_tui.train.build import build_run
from marl_tui.train.framing import scenes
from marl_tui.train.run_config import RunConfig
from marl_tui.tui.widgets.scene import SceneData
from marl_tui.tui.widgets.scenes import PANELS
from marl_tui.tui.widgets.status import StatusInfo, status_text
from marl_tui.tui.widgets.why import WhyData, why_text

LEARNERS = ("maddpg", "mappo", "qmix")
FAST = {"maddpg": {"learning_starts": 0, "batch_size": 8, "updates_per_step": 1},
        "mappo": {"rollout_length": 2}, "qmix": {"learning_starts": 0, "batch_size": 8, "updates_per_step": 1}}

# What the panels render (checked against the rendered text below), each with its entry.
LABELS = {
    "pricing": ("collusion index Δ", "price index", "exploitability", "mean price", "mean profit", "D",
                "r_i", "r_N", "r_M"),
    "warehouse": ("fill rate", "stockout rate", "pct of optimal", "team reward per step", "mean order",
                  "target"),
    "fulfillment": ("optimal choice rate", "regret", "conflict rate", "miss rate", "mean cost", "team cost"),
    "maddpg": ("y_i", "r_i", "Q_i⁻", "γ", "μ_i(o_i)", "Q_i", "∂Q_i/∂a_i", "push"),
    "mappo": ("V(s)", "Â", "clip fraction", "approx KL", "entropy", "mean r", "mean Â", "ε"),
    "qmix": ("Q_total", "|W1|", "|W2|", "V(s)", "ε", "γ", "y"),
}


def test_every_kpi_of_every_scenario_has_an_entry() -> None:
    names = set()
    for name in bundled_names():
        names |= set(make_env(load_scenario(name), n_envs=1).oracle().kpis)
    assert names and not [k for k in names if lookup(k) is None]


@pytest.mark.parametrize("algo", LEARNERS)
def test_every_metric_of_every_algorithm_and_every_csv_column_has_an_entry(algo: str) -> None:
    scenario = load_scenario("pricing" if algo != "qmix" else "fulfillment")
    run = build_run(RunConfig(scenario, algo, steps=64, n_envs=4, seed=0, overrides=FAST[algo]))
    run.run()
    assert run.metrics
    columns = [c for c in run.csv_columns() if not c.startswith("return_")] + ["return_1"]
    missing = [k for k in [*run.metrics, *columns] if lookup(k) is None]
    assert not missing


@pytest.mark.parametrize("kind", ["pricing", "warehouse", "fulfillment"])
def test_scene_and_why_labels_are_rendered_and_have_entries(kind: str) -> None:
    for algo in LEARNERS:
        scenario = load_scenario(kind)
        run = build_run(RunConfig(scenario, algo, steps=scenario.episode_length * 4, n_envs=4, seed=0,
                                  overrides=FAST[algo]))
        run.run()
        record = scenes([run.loop.recent[-1]])[0]
        explain = run.algo.explain(run.loop.recent[-1].obs, run.loop.recent[-1].state)
        data = SceneData(record=record, kpis=run.kpis, oracle_kpis=run.oracle.kpis,
                         oracle_values=run.oracle.values, model=scenario.model,
                         agent_names=run.env.spec.agent_names, episode_length=scenario.episode_length,
                         n_envs=4, explain=explain, algo=algo)
        scene = PANELS[kind]().lines(data, 120).plain
        why = why_text(WhyData(explain, algo, run.env.spec.agent_names, kind,
                               reward_scale=run.env.spec.reward_scale), 120).plain
        for label in LABELS[kind]:
            assert label in scene, label
            assert lookup(label) is not None, label
        discrete_maddpg = {"∂Q_i/∂a_i"} if (algo, kind) == ("maddpg", "fulfillment") else set()
        for label in LABELS[algo]:
            assert label in why or (label in discrete_maddpg and "∂Q/∂a₁−₀" in why), (algo, label)
            assert lookup(label) is not None, label


def test_status_line_labels_have_entries() -> None:
    text = status_text(StatusInfo(scenario="pricing", algo="MAPPO", state="running")).plain
    assert "pricing" in text
    for label in ("env steps", "episodes done", "updates", "team return", "exploitability"):
        assert lookup(label) is not None


def test_lookup_search_and_panels() -> None:
    assert lookup("Δ") is lookup("collusion_index") is lookup("Collusion Index")
    assert "negative" in lookup("entropy").meaning and "0.242" in lookup("entropy").meaning
    assert "outside" not in lookup("fill_rate").meaning
    assert "NOT bounded to [0, 1]" in lookup("collusion index").meaning
    assert search("collusion")[0].key == "collusion_index"
    assert lookup("V(s)") in entries_for_panel("why")
    assert all(e.panels for e in ENTRIES) and len({e.key for e in ENTRIES}) == len(ENTRIES)
    assert lookup("π") is lookup("policy") and lookup("r_N") is lookup("mean profit")  # π is never profit


def test_run_notes_explain_the_surprises() -> None:
    assert any("collusive price" in n for n in run_notes("pricing", "qmix"))
    assert any("negative" in n for n in run_notes("warehouse", "mappo"))


async def test_glossary_screen_opens_on_a_term_and_searches() -> None:
    from textual.app import App
    from textual.widgets import Static

    from marl_tui.tui.screens.glossary import GlossaryScreen

    app = App()
    async with app.run_test(size=(100, 30)) as pilot:
        app.push_screen(GlossaryScreen(focus_term="Δ", notes=run_notes("pricing", "qmix")))
        await pilot.pause()
        text = str(app.screen.query_one("#glossary-text", Static).render())
        assert "collusion index" in text and "collusive price" in text
        await pilot.press(*"entropy")
        await pilot.pause()
        assert "policy entropy" in str(app.screen.query_one("#glossary-text", Static).render())
        await pilot.press("escape")
        assert not isinstance(app.screen, GlossaryScreen)
