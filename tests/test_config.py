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
        for field in fields - {"mu", "a0"}:
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
