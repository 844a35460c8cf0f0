"""The pricing game: REFERENCE.md §1-2 numbers, the oracle, and the batched env contract."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from marl_tui.config import PricingModel, Scenario, load_scenario, parse_scenario
from marl_tui.envs import pricing, pricing_oracle
from marl_tui.envs.base import make_env
from marl_tui.envs.pricing import PricingEnv
from marl_tui.envs.pricing_oracle import (
    best_response,
    demands,
    deviation_profits,
    exploitability,
    profits,
    solve,
)


def scenario(name: str, **changes) -> Scenario:
    return dataclasses.replace(load_scenario(name), **changes)


def f64(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# --------------------------------------------------------------------------- formulas


def test_worked_example_recomputed():
    model = scenario("pricing").model
    p = f64(5.2, 4.8, 6.1)
    assert demands(p, model).tolist() == pytest.approx([95.05, 96.05, 92.80])
    assert profits(p, model).tolist() == pytest.approx([494.26, 461.04, 566.08])


def test_linear_demand_is_clipped_at_zero():
    model = scenario("pricing").model
    d = demands(f64(60.0, 1.0, 1.0), model)  # 100 - 120 + 1 < 0
    assert d[0].item() == 0.0
    assert d[1].item() == pytest.approx(100 - 2 + 0.5 * 61)


@pytest.mark.parametrize("name", ["pricing", "pricing-guide", "pricing-logit"])
def test_best_response_beats_a_dense_grid(name):
    model = scenario(name).model
    gen = torch.Generator().manual_seed(1)
    span = model.price_max - model.price_min
    prices = model.price_min + span * torch.rand(50, 3, generator=gen, dtype=torch.float64)
    grid = torch.linspace(model.price_min, model.price_max, 4001, dtype=torch.float64)
    # Store i's profit at every grid price with its rivals fixed: [4001, 50, 3].
    grid_best = deviation_profits(grid[:, None, None], prices, model).amax(0)
    best = deviation_profits(best_response(prices, model), prices, model)
    assert (best >= grid_best - 1e-9).all()
    assert ((best - grid_best) / grid_best.abs().clamp_min(1e-9) < 1e-4).all()


# --------------------------------------------------------------------------- oracle


def test_default_preset_oracle():
    s = solve(scenario("pricing").model, 3)
    assert s.nash_price == pytest.approx(33.333, abs=5e-4)
    assert demands(f64(*[s.nash_price] * 3), scenario("pricing").model)[0].item() == (
        pytest.approx(66.667, abs=5e-4)
    )
    assert s.nash_profit == pytest.approx(2222.22, abs=5e-3)
    assert s.collusive_price == pytest.approx(50.0)
    assert s.collusive_profit == pytest.approx(2500.0)
    assert s.best_deviation_price == pytest.approx(37.5)
    assert s.best_deviation_profit == pytest.approx(2812.5)


@pytest.mark.parametrize(("a", "b", "g", "c", "n"), [(100, 2, 0.5, 0, 3), (50, 3, 0.4, 5, 4)])
def test_linear_matches_closed_forms_inside_the_range(a, b, g, c, n):
    model = dataclasses.replace(
        scenario("pricing").model, a=a, b=b, g=g, cost=c, price_min=0.0, price_max=1000.0
    )
    s = solve(model, n)
    assert s.nash_price == pytest.approx((a + b * c) / (2 * b - (n - 1) * g))
    k = b - (n - 1) * g
    assert s.collusive_price == pytest.approx((a + k * c) / (2 * k))


def test_guide_preset_is_pinned_at_the_price_cap():
    env = PricingEnv(scenario("pricing-guide"), n_envs=2, seed=0)
    o = env.oracle()
    assert o.values == {
        "nash_price": 10.0,
        "nash_profit": 900.0,
        "collusive_price": 10.0,
        "collusive_profit": 900.0,
        "best_deviation_price": 10.0,
        "best_deviation_profit": 900.0,
    }
    assert math.isnan(o.kpis["collusion_index"]) and math.isnan(o.kpis["price_index"])
    assert o.kpis["exploitability"] == 0.0


@pytest.mark.parametrize(
    ("agents", "p_n", "p_m", "pi_n", "pi_m"),
    [(3, 1.3702, 2.0000, 0.1202, 0.2500), (2, 1.4729, 1.9250, 0.2229, 0.3375)],
)
def test_logit_preset_matches_calvano(agents, p_n, p_m, pi_n, pi_m):
    text = load_scenario("pricing-logit").text.replace("agents = 3", f"agents = {agents}")
    sc = parse_scenario(text, "pricing-logit-n.toml")
    assert sc.agents == agents
    s = PricingEnv(sc, n_envs=1, seed=0).solution()
    assert s.nash_price == pytest.approx(p_n, abs=5e-5)
    assert s.collusive_price == pytest.approx(p_m, abs=5e-5)
    assert s.nash_profit == pytest.approx(pi_n, abs=5e-5)
    assert s.collusive_profit == pytest.approx(pi_m, abs=5e-5)


def test_oracle_record_for_default_preset():
    env = PricingEnv(scenario("pricing"), n_envs=4, seed=0)
    o = env.oracle()
    assert o.summary == "Nash 33.33 (profit 2222.2) · collusive 50.00 (2500.0)"
    assert o.has_policy
    assert o.team_return == pytest.approx(3 * 2222.2222 * 25, rel=1e-6)
    assert o.kpis == pytest.approx(
        {
            "mean_price": 33.3333,
            "mean_profit": 2222.2222,
            "profit_vs_nash": 0.0,
            "collusion_index": 0.0,
            "price_index": 0.0,
            "exploitability": 0.0,
        },
        abs=1e-3,
    )
    actions = env.oracle_actions()
    assert actions.shape == (4, 3)
    assert torch.allclose(actions, torch.full((4, 3), 100 / 3))


@pytest.mark.parametrize("name", ["pricing", "pricing-guide", "pricing-logit"])
def test_exploitability_is_zero_at_nash(name):
    model = scenario(name).model
    p = f64(*[solve(model, 3).nash_price] * 3)
    assert exploitability(p, model).abs().max().item() < 1e-9


def test_exploitability_at_collusion_is_the_deviation_gain():
    model = scenario("pricing").model
    assert exploitability(f64(50, 50, 50), model).tolist() == pytest.approx([312.5] * 3)


def test_kpis_at_nash_and_at_collusion():
    env = PricingEnv(scenario("pricing"), n_envs=8, seed=0)
    env.reset()
    k = env.kpis(env.step(env.oracle_actions()).info)
    assert k["mean_price"] == pytest.approx(33.3333, abs=1e-3)
    assert k["collusion_index"] == pytest.approx(0.0, abs=1e-5)
    assert k["price_index"] == pytest.approx(0.0, abs=1e-5)
    assert k["exploitability"] == pytest.approx(0.0, abs=1e-3)
    k = env.kpis(env.step(torch.full((8, 3), 50.0)).info)
    assert k == pytest.approx(
        {
            "mean_price": 50.0,
            "mean_profit": 2500.0,
            "profit_vs_nash": 12.5,  # 2500 against 2222.2: outside the ±2 % band, above Nash
            "collusion_index": 1.0,
            "price_index": 1.0,
            "exploitability": 312.5,
        }
    )


# --------------------------------------------------------------------------- environment


def test_spec():
    spec = PricingEnv(scenario("pricing"), n_envs=2, seed=0).spec
    assert spec.agent_names == ("store 1", "store 2", "store 3")
    assert (spec.obs_dim, spec.state_dim, spec.episode_length) == (4, 3, 25)
    assert spec.action_space.kind == "continuous"
    assert (spec.action_space.low, spec.action_space.high) == (1.0, 60.0)
    assert spec.action_levels == tuple(float(p) for p in range(1, 61))
    assert spec.reward_scale == 0.001 and not spec.cooperative
    levels = PricingEnv(scenario("pricing-logit"), n_envs=2, seed=0).spec.action_levels
    assert len(levels) == 31 and levels[0] == 1.0 and levels[-1] == 2.5


def test_make_env_builds_pricing():
    env = make_env(scenario("pricing"), n_envs=3, seed=1)
    assert isinstance(env, PricingEnv) and env.n_envs == 3


def test_shapes_observation_and_done():
    env = PricingEnv(scenario("pricing", episode_length=4), n_envs=5, seed=0)
    obs, state = env.reset()
    assert obs.shape == (5, 3, 4) and state.shape == (5, 3)
    assert obs.dtype == state.dtype == torch.float32
    assert ((state >= 0) & (state < 1)).all()
    assert torch.equal(state, obs[:, 0, :3])  # store 1 sees the prices in store order
    actions = torch.tensor([[0.0, 30.0, 99.0]]).expand(5, 3)  # out of range: clamped
    for t in range(1, 5):
        r = env.step(actions)
        assert r.obs.shape == (5, 3, 4) and r.state.shape == (5, 3)
        assert r.reward.shape == (5, 3) and r.done.shape == (5,) and r.done.dtype == torch.bool
        assert {k: v.shape for k, v in r.info.items()} == {
            "price": (5, 3),
            "demand": (5, 3),
            "profit": (5, 3),
        }
        assert r.done.all() if t == 4 else not r.done.any()
    assert r.info["price"][0].tolist() == [1.0, 30.0, 60.0]
    assert torch.equal(r.reward, r.info["profit"])
    # Store i sees its own price first, then the next stores in turn, then its profit.
    scaled = (torch.tensor([1.0, 30.0, 60.0]) - 1) / 59
    assert torch.allclose(r.obs[0, 1, :3], scaled[[1, 2, 0]])
    assert r.obs[0, 2, 3].item() == pytest.approx(r.reward[0, 2].item() * 0.001)
    # The state is the scaled prices only: no time feature that would reach 1 at the
    # truncation learners bootstrap from (the same prices give the same state on any day).
    assert torch.allclose(r.state[0], scaled)


def test_pricing_reexports_the_oracle():
    """Code importing the formulas or the solver from marl_tui.envs.pricing keeps working."""
    for name in ("PricingSolution", "best_response", "demands", "deviation_profits",
                 "exploitability", "profits", "solve"):
        assert getattr(pricing, name) is getattr(pricing_oracle, name)


def random_actions(steps: int, b: int, n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(123)
    return 1 + 59 * torch.rand(steps, b, n, generator=gen)


def test_batch_equals_single_copies_with_consecutive_seeds():
    sc = scenario("pricing", episode_length=3)
    actions = random_actions(6, 4, 3)

    def rollout(env: PricingEnv, acts: torch.Tensor) -> tuple[list, list]:
        obs, rewards = [env.reset()[0]], []
        for a in acts:
            r = env.step(a)
            obs.append(r.obs)
            rewards.append(r.reward)
            if r.done.all():
                obs.append(env.reset()[0])  # the second episode draws new start prices
        return torch.stack(obs), torch.stack(rewards)

    batch_obs, batch_rew = rollout(PricingEnv(sc, n_envs=4, seed=7), actions)
    for b in range(4):
        obs, rew = rollout(PricingEnv(sc, n_envs=1, seed=7 + b), actions[:, b : b + 1])
        assert torch.equal(obs[:, 0], batch_obs[:, b])
        assert torch.equal(rew[:, 0], batch_rew[:, b])


def test_reset_with_seed_restarts_the_streams():
    sc = scenario("pricing")
    env = PricingEnv(sc, n_envs=3, seed=0)
    env.reset()
    env.reset()
    assert torch.equal(env.reset(seed=5)[0], PricingEnv(sc, n_envs=3, seed=5).reset()[0])
    assert not torch.equal(env.reset()[0], PricingEnv(sc, n_envs=3, seed=5).reset()[0])


def test_get_state_set_state_continues_identically():
    sc = scenario("pricing-logit", episode_length=4)
    actions = 1 + 1.5 * torch.rand(10, 2, 3, generator=torch.Generator().manual_seed(0))

    def play(env: PricingEnv, acts: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for a in acts:
            r = env.step(a)
            out += [r.obs, r.state, r.reward]
            if r.done.all():
                out += list(env.reset())
        return out

    env = PricingEnv(sc, n_envs=2, seed=3)
    env.reset()
    play(env, actions[:2])
    saved = {k: v.clone() for k, v in env.get_state().items()}
    expected = play(env, actions[2:])

    other = PricingEnv(sc, n_envs=2, seed=99)
    other.reset()
    other.set_state(saved)
    assert other.t == 2
    for got, want in zip(play(other, actions[2:]), expected, strict=True):
        assert torch.equal(got, want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    sc = scenario("pricing-logit")
    cpu, gpu = PricingEnv(sc, 4, 0), PricingEnv(sc, 4, 0, device="cuda")
    assert torch.allclose(cpu.reset()[0], gpu.reset()[0].cpu())
    a = random_actions(1, 4, 3)[0].clamp(1, 2.5)
    rc, rg = cpu.step(a), gpu.step(a.cuda())
    assert torch.allclose(rc.reward, rg.reward.cpu())
    assert cpu.kpis(rc.info) == pytest.approx(gpu.kpis(rg.info), rel=1e-5)


# --------------------------------------------------------------------------- asymmetric stores


def _asymmetric(**model: object) -> PricingModel:
    return dataclasses.replace(scenario("pricing").model, **model)


def test_asymmetric_linear_nash_solves_the_first_order_conditions():
    """Two stores, a = (100, 80), b = (2, 1.5), g = (0.5, 0.4), c = (5, 10). By hand:
    4 p1 - 0.5 p2 = 110 and 3 p2 - 0.4 p1 = 95 give p1 = (110 + 0.5 * 95 / 3) / (4 - 0.5 * 0.4 / 3)
    = 31.9915 and p2 = (95 + 0.4 p1) / 3 = 35.9322."""
    model = _asymmetric(a=(100.0, 80.0), b=(2.0, 1.5), g=(0.5, 0.4), cost=(5.0, 10.0))
    s = solve(model, 2)
    p1 = (110 + 0.5 * 95 / 3) / (4 - 0.5 * 0.4 / 3)
    p2 = (95 + 0.4 * p1) / 3
    assert s.nash_prices == pytest.approx((p1, p2), abs=1e-9)
    assert s.nash_prices == pytest.approx((31.9915, 35.9322), abs=1e-4)
    d1, d2 = 100 - 2 * p1 + 0.5 * p2, 80 - 1.5 * p2 + 0.4 * p1
    assert s.nash_profits == pytest.approx(((p1 - 5) * d1, (p2 - 10) * d2), abs=1e-7)
    assert s.nash_price == pytest.approx((p1 + p2) / 2)
    # Nash: no store gains by deviating
    assert exploitability(f64(p1, p2), model).tolist() == pytest.approx([0.0, 0.0], abs=1e-9)
    # Collusion: the gradient of joint profit vanishes and joint profit beats Nash.
    pc = f64(*s.collusive_prices).requires_grad_()
    profits(pc, model).sum().backward()
    assert pc.grad.abs().max().item() < 1e-8
    assert sum(s.collusive_profits) > sum(s.nash_profits)


def test_asymmetric_nash_outside_the_box_iterates_best_responses():
    """Store 2's unconstrained Nash price (35.93) exceeds price_max = 33, so it sits at 33;
    store 1 best-replies: p1 = (100 + 0.5 * 33 + 2 * 5) / 4 = 31.625, and store 2's reply to
    that, (80 + 0.4 * 31.625 + 1.5 * 10) / 3 = 35.88, is still above the cap."""
    model = _asymmetric(a=(100.0, 80.0), b=(2.0, 1.5), g=(0.5, 0.4), cost=(5.0, 10.0), price_max=33.0)
    s = solve(model, 2)
    assert s.nash_prices == pytest.approx((31.625, 33.0), abs=1e-9)


def test_asymmetric_logit_nash_is_the_fixed_point():
    """Calvano's duopoly with qualities (2.2, 2.0) and costs (1, 1): at the fixed point each
    price meets its first-order condition p_i - c_i = mu / (1 - q_i)."""
    model = dataclasses.replace(scenario("pricing-logit").model, a=(2.2, 2.0), cost=(1.0, 1.0))
    s = solve(model, 2)
    p = f64(*s.nash_prices)
    q = demands(p, model)
    assert (p - 1.0).tolist() == pytest.approx((0.25 / (1 - q)).tolist(), abs=1e-10)
    assert s.nash_prices[0] > s.nash_prices[1]  # the better store charges more
    # symmetric qualities give back the symmetric answer
    same = dataclasses.replace(model, a=(2.0, 2.0))
    assert solve(same, 2).nash_price == pytest.approx(1.4729, abs=5e-5)
    # collusion: equal markups, joint profit stationary
    pc = f64(*s.collusive_prices).requires_grad_()
    profits(pc, model).sum().backward()
    assert pc.grad.abs().max().item() < 1e-8


def test_asymmetric_env_plays_each_stores_nash_price():
    sc = scenario("pricing").with_overrides(
        agents=2, model=_asymmetric(a=(100.0, 80.0), b=(2.0, 1.5), g=(0.5, 0.4), cost=(5.0, 10.0)))
    env = PricingEnv(sc, n_envs=3, seed=0)
    o = env.oracle()
    assert o.values["nash_price_1"] == pytest.approx(31.9915, abs=1e-4)
    assert o.values["nash_price_2"] == pytest.approx(35.9322, abs=1e-4)
    env.reset()
    k = env.kpis(env.step(env.oracle_actions()).info)
    assert k["profit_vs_nash"] == pytest.approx(0.0, abs=1e-3)
    assert k["exploitability"] == pytest.approx(0.0, abs=1e-2)
