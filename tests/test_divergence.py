"""Divergence is a fault: values far above max|r̄|/(1−γ) stop a run like NaN does (exit 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marl_tui.config import bundled_dir
from marl_tui.learn import doctor


def _facts(algo: str = "qmix", gamma: float = 0.99, n_agents: int = 3) -> doctor.Facts:
    return doctor.Facts(algo=algo, kind="other", n_agents=n_agents, episode_length=25, gamma=gamma,
                        reward_scale=1.0, continuous=False)


def test_the_bound_is_the_doctors_and_the_fault_sits_far_above_its_warning() -> None:
    """simple_spread (REFERENCE §8): team reward ≈ −2 per step, per agent ≈ 0.67; γ 0.99 bounds
    |Q_i| by 67, |Q_total| by 3 × 67. The issue's diverged QMIX reached Q_total 1.2e7."""
    facts = _facts()
    bound = doctor.reward_bound(2 / 3, facts)
    assert bound == pytest.approx(66.667, abs=1e-3)
    assert doctor.diverged({"q_total_mean": -1.2e7}, facts, bound, doctor.DIVERGENCE_FAULT_FACTOR) == (
        "q_total_mean", -1.2e7, pytest.approx(100 * 3 * 66.667, abs=1))
    # an honest value, a few times the bound at most, is neither a warning nor a fault
    assert doctor.diverged({"q_total_mean": -150.0, "td_loss": 30.0}, facts, bound, doctor.DIVERGENCE_FACTOR) is None
    # a loss is a squared error: its limit is the value limit squared
    assert doctor.diverged({"td_loss": 5e9}, facts, bound, doctor.DIVERGENCE_FAULT_FACTOR)[0] == "td_loss"
    assert doctor.diverged({"q_total_mean": 1e9}, facts, float("nan"), 100.0) is None  # no episode yet


def test_a_diverging_qmix_run_stops_with_exit_1_and_the_advice(cli, tmp_path: Path) -> None:
    """QMIX on pricing with γ 0.99, its target copied every update and lr 3x the default: Q_total
    explodes (the doctor's test run, tests/test_doctor.py). The doctor warns, the guard stops it."""
    text = (bundled_dir() / "pricing.toml").read_text() + (
        "\n[train.qmix]\ngamma = 0.99\nlr = 0.003\ntarget_update_interval = 1\nlearning_starts = 500\n")
    scenario = tmp_path / "diverging.toml"
    scenario.write_text(text.replace('name = "pricing"', 'name = "diverging"'))
    out = tmp_path / "run"
    code, _, err = cli("train", scenario, "--algo", "qmix", "--steps", "3200", "--envs", "32", "--out", out)
    *warnings, fault = err.strip().splitlines()
    assert code == 1 and all("doctor: q_total_mean diverges" in w for w in warnings), err  # the warning first
    assert "TrainingFault" in fault and "diverged" in fault and "max|r̄|/(1−γ)" in fault
    assert "a smaller learning rate, a lower γ, target network updates" in fault
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "error" and summary["steps"] < 3200


@pytest.mark.parametrize("algo", ["qmix", "mappo", "maddpg"])
def test_preset_defaults_do_not_trip_the_guard(algo: str) -> None:
    """A short run of each algorithm's defaults on the bundled fulfillment preset finishes: their
    values stay within the bound (the learning tests and benchmarks run them far longer)."""
    from marl_tui.config import load_scenario
    from marl_tui.train.build import build_run
    from marl_tui.train.run_config import RunConfig

    run = build_run(RunConfig(scenario=load_scenario("fulfillment"), algo=algo, seed=0, n_envs=32,
                              steps=6_000, overrides={"learning_starts": 640} if algo != "mappo" else {}))
    run.run()
    assert run.status == "finished" and run.updates > 0
