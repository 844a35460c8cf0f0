"""`marl-tui scenarios` / `info`: every bundled scenario described, with its reference answer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from marl_tui.catalogue import scenario_info, scenario_info_text, scenario_table
from marl_tui.config import bundled_names

ORACLE_KEYS = {
    "pricing": {"nash_price", "nash_profit", "collusive_price", "collusive_profit"},
    "warehouse": {"optimal_reward_team", "optimal_reward_per_agent", "order_up_to"},
    "fulfillment": {"oracle_cost", "nearest_cost", "random_cost"},
}

EXPECTED = {
    "pricing": {"nash_price": 33.3333, "nash_profit": 2222.22, "collusive_price": 50.0,
                "collusive_profit": 2500.0},
    "pricing-guide": {"nash_price": 10.0, "nash_profit": 900.0, "collusive_price": 10.0},
    "pricing-logit": {"nash_price": 1.3702, "collusive_price": 2.0, "nash_profit": 0.1202,
                      "collusive_profit": 0.25},
    "warehouse": {"optimal_reward_team": 132.67, "optimal_reward_per_agent": 44.223},
    "warehouse-shared-truck": {"heuristic_reward_team": 116.87, "upper_bound_team": 118.43},
    "fulfillment": {"oracle_cost": 3.736, "nearest_cost": 8.92, "random_cost": 7.18},
}


def test_all_eight_presets_are_bundled() -> None:
    assert set(bundled_names()) == {
        "pricing", "pricing-guide", "pricing-logit", "warehouse", "warehouse-guide",
        "warehouse-shared-truck", "fulfillment", "fulfillment-strict",
    }


@pytest.mark.parametrize("name", bundled_names())
def test_info_has_the_documented_keys(name: str) -> None:
    d = scenario_info(name)
    assert {"name", "kind", "n_agents", "action_space", "oracle"} <= set(d)
    json.dumps(d)  # plain data
    keys = ORACLE_KEYS[d["kind"]]
    if name == "warehouse-shared-truck":
        keys = {"heuristic_reward_team", "upper_bound_team"}
    assert keys <= set(d["oracle"])
    for key, value in EXPECTED.get(name, {}).items():
        assert d["oracle"][key] == pytest.approx(value, rel=2e-3, abs=0.01), key


def test_warehouse_order_up_to_levels_per_agent_per_period() -> None:
    levels = scenario_info("warehouse")["oracle"]["order_up_to"]
    assert levels[0] == [14, 17, 19, 20, 19, 17, 14, 11, 9, 8, 9, 11]
    assert levels[1] == levels[0][4:] + levels[0][:4]  # shifted by 4 periods
    assert levels[2] == levels[0][8:] + levels[0][:8]


def test_guide_warehouse_never_restocks() -> None:
    oracle = scenario_info("warehouse-guide")["oracle"]
    assert oracle["optimal_reward_team"] == pytest.approx(0.0, abs=1e-6)
    assert all(level == 0 for agent in oracle["order_up_to"] for level in agent)


def test_scenario_table_lists_every_preset_with_an_answer() -> None:
    table = scenario_table()
    for name in bundled_names():
        assert name in table
    assert "33.33" in table and "132.67" in table


def test_help_does_not_import_torch_or_textual() -> None:
    code = "import sys, marl_tui.cli; print('torch' in sys.modules, 'textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_info_json_through_the_command() -> None:
    out = subprocess.run([sys.executable, "-m", "marl_tui", "info", "pricing-guide", "--json"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout, parse_constant=lambda c: pytest.fail(f"bare {c} is not JSON"))
    assert data["name"] == "pricing-guide" and data["oracle"]["nash_price"] == pytest.approx(10)
    # Nash = collusion here: the indexes are undefined, written as null
    assert data["oracle_kpis"]["collusion_index"] is None


def test_user_scenarios_are_listed_and_a_broken_one_does_not_hide_the_rest(tmp_path, monkeypatch) -> None:
    from marl_tui.config import bundled_dir

    (tmp_path / "scenarios").mkdir()
    mine = (bundled_dir() / "pricing.toml").read_text()
    mine = mine.replace('name = "pricing"', 'name = "mine"').replace("cost = 0.0", "cost = 5.0")
    (tmp_path / "scenarios" / "mine.toml").write_text(mine)
    (tmp_path / "scenarios" / "bad.toml").write_text('name = "bad"\nkind = "pricing"\n')
    monkeypatch.chdir(tmp_path)
    table = scenario_table()
    assert "Nash 36.67" in table  # (100 + 2·5) / (2·2 − 2·0.5): the user's numbers, computed
    assert "bad.toml" in table and "missing key 'description'" in table
    assert "warehouse-shared-truck" in table


def test_info_says_when_a_files_name_differs_from_the_file(cli, tmp_path, monkeypatch) -> None:
    """A copied scenario keeps `name = "pricing"`: info says so instead of renaming it silently."""
    from marl_tui.config import bundled_dir

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.toml").write_text((bundled_dir() / "pricing.toml").read_text())
    code, out, err = cli("info", "mine.toml")
    assert code == 0, err
    assert out.splitlines()[0].startswith("pricing (pricing)")
    assert "note:" in out and "name = 'pricing', not 'mine'" in out
    code, out, err = cli("info", "mine.toml", "--json")
    assert code == 0 and "not 'mine'" in json.loads(out)["note"]
    code, out, err = cli("info", "pricing")  # a file whose name is its own: no note
    assert code == 0 and "note:" not in out


def test_scenario_info_is_cached_by_the_files_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference answers are computed once per file text and marl-tui version."""
    from marl_tui import catalogue

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    computed: list[str] = []
    real = catalogue.scenario_info

    def counting(sc):  # noqa: ANN001, ANN202 - the real function, counted
        computed.append(sc.name)
        return real(sc)

    monkeypatch.setattr(catalogue, "scenario_info", counting)
    first = catalogue.cached_scenario_info("warehouse")
    again = catalogue.cached_scenario_info("warehouse")
    assert first == again == real(catalogue.load_scenario("warehouse")) and computed == ["warehouse"]
    mine = tmp_path / "mine.toml"
    text = (catalogue.load_scenario("pricing").text).replace("parallel_envs = ", "parallel_envs = 1")
    mine.write_text(text)
    catalogue.cached_scenario_info(str(mine))
    mine.write_text(text.replace("seed = ", "seed = 7"))  # another file: computed afresh
    catalogue.cached_scenario_info(str(mine))
    assert computed == ["warehouse", "pricing", "pricing"]


def test_info_offers_levels_only_where_actions_are_continuous() -> None:
    """Discrete learners get levels of a continuous action; a discrete scenario has none to offer."""
    assert "60 levels for discrete-action algorithms" in scenario_info_text(scenario_info("pricing"))
    assert "levels" not in scenario_info_text(scenario_info("fulfillment")).splitlines()[3]
