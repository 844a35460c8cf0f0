"""Scenario files: the bundled ones load; edits are checked field by field."""

from __future__ import annotations

import dataclasses

import pytest

from marl_tui.config import (
    FulfillmentModel,
    PricingModel,
    WarehouseModel,
    bundled_dir,
    load_scenario,
    parse_scenario,
)
from marl_tui.errors import UserError

PRICING = (bundled_dir() / "pricing.toml").read_text()


def test_bundled_files_load_with_their_models() -> None:
    assert isinstance(load_scenario("pricing").model, PricingModel)
    assert isinstance(load_scenario("warehouse").model, WarehouseModel)
    f = load_scenario("fulfillment")
    assert isinstance(f.model, FulfillmentModel) and len(f.model.positions) == f.agents == 10
    assert load_scenario("pricing-guide").model.price_max == 10
    assert load_scenario("warehouse-shared-truck").model.truck_capacity == 27
    assert load_scenario("fulfillment-strict").model.reward == "strict"


def test_every_model_field_is_set_in_the_default_files() -> None:
    # "Every parameter the model uses lives in the file."
    for name in ("pricing", "warehouse", "fulfillment"):
        sc = load_scenario(name)
        fields = {f.name for f in dataclasses.fields(sc.model)}
        # mu, a0: logit only; phase: None spreads the seasons evenly, which TOML cannot write
        for field in fields - {"mu", "a0", "phase"}:
            assert f"\n{field} =" in sc.text or f"\n{field}=" in sc.text, (name, field)


def test_a_copied_file_with_new_numbers_runs_those_numbers(tmp_path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(PRICING.replace("cost = 0.0", "cost = 4.0").replace('name = "pricing"', 'name = "mine"'))
    sc = load_scenario(str(path))
    assert sc.name == "mine" and sc.model.cost == 4.0 and sc.source == str(path)


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("cost = 0.0", "cost = -1.0", "model.cost = -1.0 is out of range: must be >= 0"),
        ("price_max = 60.0", "price_max = 0.5", "model.price_min"),
        ("b = 2.0", 'b = "two"', "model.b = 'two' has the wrong type: expected a number"),
        ("agents = 3", "agents = 0", "'agents' = 0 is out of range"),
        ('kind = "pricing"', 'kind = "auction"', "unknown kind 'auction'; kinds are: pricing, warehouse"),
        ("g = 0.5", "gee = 0.5", "unknown key model.gee; allowed keys are"),
        ('demand = "linear"', 'demand = "cubic"', "model.demand = 'cubic'"),
        ("seed = 0", "", "missing key 'seed'"),
        ("seed = 0", "seed = 0\n[train.sarsa]\nlr = 1", "unknown table [train.sarsa]"),
        ("g = 0.5", "g = 1.5", "model.g: 1.5 is too large"),
        ("seed = 0", "seed = 0 0", "not valid TOML"),
        ('name = "pricing"', 'name = "../escape"', "use letters, digits"),
        ('name = "pricing"', 'name = "pricing\\n"', "'name' = 'pricing\\n' is not allowed"),
        ("cost = 0.0", "cost = -1.0", "(marginal cost c)"),  # the field's help
        ("b = 2.0", "b = true", "model.b = True has the wrong type"),
        ("a = 100.0", "a = nan", "model.a = nan has the wrong type: expected a finite number"),
        ("agents = 3", "agents = 65", "'agents' = 65 is out of range: must be >= 1 and <= 64"),
        ("episode_length = 25", "episode_length = 25.5", "'episode_length' = 25.5 has the wrong type"),
        ('demand = "linear"', 'demand = "logits"', "must be 'linear' or 'logit' (did you mean 'logit'?)"),
        ('kind = "pricing"', 'kind = "pricng"', "unknown kind 'pricng' (did you mean 'pricing'?)"),
        ("seed = 0", "sede = 0", "unknown key 'sede' (did you mean 'seed'?); top-level keys are"),
        ("seed = 0", "seed = 0\n[train.mapo]\nlr = 1", "[train.mapo] (did you mean 'mappo'?)"),
        ("seed = 0", "seed = 0\ntrain = 3", "[train] must hold tables"),
    ],
)
def test_bad_edits_get_one_line_naming_file_and_field(old: str, new: str, needle: str) -> None:
    with pytest.raises(UserError) as err:
        parse_scenario(PRICING.replace(old, new, 1), "mine.toml")
    msg = str(err.value)
    assert msg.startswith("mine.toml: ") and needle in msg and "\n" not in msg


def test_unknown_scenario_name_lists_the_bundled_ones() -> None:
    with pytest.raises(UserError, match="bundled scenarios are: fulfillment, .*warehouse"):
        load_scenario("pricingg")
    with pytest.raises(UserError, match="does not exist"):
        load_scenario("nowhere/mine.toml")


def test_every_numeric_hyperparameter_has_a_range() -> None:
    import typing

    from marl_tui.algos.registry import HPARAM_RULES, algorithm_class
    from marl_tui.config import ALGOS

    unbounded = {"init_log_std"}  # a log: any real number is meaningful
    for algo in ALGOS:
        hp = algorithm_class(algo).Hyperparameters
        for name, tp in typing.get_type_hints(hp).items():
            if tp in (int, float) and name not in unbounded:
                assert name in HPARAM_RULES, (algo, name)


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("gamma", 1.0, "train.mappo.gamma = 1.0 is out of range: must be >= 0 and < 1"),
    ("lr", 0.0, "train.mappo.lr = 0.0 is out of range: must be > 0"),
    ("epochs", 0, "train.mappo.epochs = 0 is out of range: must be >= 1"),
])
def test_hyperparameters_out_of_range_are_refused(key: str, value: float, needle: str) -> None:
    from marl_tui.algos.registry import resolve_hparams

    sc = parse_scenario(PRICING + f"\n[train.mappo]\n{key} = {value}\n", "mine.toml")
    with pytest.raises(UserError) as err:
        resolve_hparams("mappo", sc)
    assert needle in str(err.value)


def test_a_misspelt_key_is_reported_before_the_key_it_stands_for_is_missing() -> None:
    with pytest.raises(UserError, match="unknown key 'sed' \\(did you mean 'seed'\\?\\)"):
        parse_scenario(PRICING.replace("seed = 0", "sed = 0"), "mine.toml")
    with pytest.raises(UserError, match="unknown key model.price_maxx \\(did you mean 'price_max'\\?\\)"):
        parse_scenario(PRICING.replace("price_max = 60.0", "price_maxx = 60.0"), "mine.toml")


def test_a_warehouse_too_large_for_the_exact_oracle_is_refused_when_read() -> None:
    text = (bundled_dir() / "warehouse.toml").read_text()
    for old, new in (("capacity = 45", "capacity = 200"), ("max_order = 45", "max_order = 200"),
                     ("lead_time = 0", "lead_time = 2"), ("season_length = 12", "season_length = 365")):
        assert old in text, old
        text = text.replace(old, new)
    with pytest.raises(UserError) as err:
        parse_scenario(text, "big.toml")
    assert str(err.value).startswith("big.toml: model.capacity: the exact DP would need")


def test_reading_scenarios_imports_no_environment_and_no_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, marl_tui.config as c; c.load_scenario('warehouse'); "
            "print(sorted(m for m in sys.modules if m.startswith('marl_tui.envs') or m == 'torch'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(("options", "line"), [
    ({"steps": 0}, "--steps 0: must be >= 1 (environment steps over all parallel copies)"),
    ({"envs": 0}, "--envs 0: must be >= 1 and <= 1000000"),
    ({"seed": -1}, "--seed -1: must be >= 0 and <= 2147483647 (random seed)"),
    ({"device": "tpu"}, "--device 'tpu': choose auto, cpu or cuda"),
    ({"device": "cpux"}, "--device 'cpux': choose auto, cpu or cuda (did you mean 'cpu'?)"),
    ({"checkpoint_every": -1}, "--checkpoint-every -1: must be >= 0"),
])
def test_run_options_are_checked_once_with_one_line(options: dict, line: str) -> None:
    from marl_tui.config import check_run_options

    with pytest.raises(UserError) as err:
        check_run_options(**options)
    assert str(err.value).startswith(line)


def test_run_options_in_range_pass() -> None:
    from marl_tui.config import MAX_SEED, RunOptions, check_run_options

    assert check_run_options(steps=1, envs=1, seed=MAX_SEED, device="auto", checkpoint_every=0) == RunOptions(
        steps=1, envs=1, seed=MAX_SEED, device="auto", checkpoint_every=0)


def test_config_toml_leaves_none_out_instead_of_writing_an_empty_string(tmp_path) -> None:
    from types import SimpleNamespace

    from marl_tui.config import tomllib
    from marl_tui.train.rundir import write_run_config

    @dataclasses.dataclass(frozen=True)
    class Hp:
        steps: int = 100
        clip: float | None = None
        huber: bool = False

    trainer = SimpleNamespace(scenario=load_scenario("pricing"), run_config=SimpleNamespace(algo="mappo"),
                              seed=3, total_steps=100, env=SimpleNamespace(n_envs=8), device="cpu", hp=Hp())
    write_run_config(trainer, tmp_path)
    text = (tmp_path / "config.toml").read_text()
    assert text.startswith("# How this run was started") and '""' not in text
    assert tomllib.loads(text) == {
        "run": {"scenario": "pricing", "algo": "mappo", "seed": 3, "steps": 100, "envs": 8, "device": "cpu"},
        "hyperparameters": {"steps": 100, "huber": False},
    }
