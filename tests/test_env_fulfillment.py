"""Store fulfilment: reference numbers (REFERENCE §4), reward rules, batching, checkpoints."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from marl_tui.config import load_scenario
from marl_tui.envs.fulfillment import FulfillmentEnv, _costs, _Draw
from marl_tui.envs.fulfillment_oracle import Offsets, Params, given_orders, reference_values


def make(name: str = "fulfillment", n_envs: int = 8, seed: int = 3, **model) -> FulfillmentEnv:
    scenario = load_scenario(name)
    if model:
        agents = len(model.get("positions", scenario.model.positions))
        scenario = scenario.with_overrides(
            agents=agents, model=dataclasses.replace(scenario.model, **model)
        )
    return FulfillmentEnv(scenario, n_envs=n_envs, seed=seed)


def two_stores(reward: str, load2: float = 1.0) -> FulfillmentEnv:
    """Order at the origin. Store 1 at 1 km, stock 2, load 0: cost 1 + 0 + 1 = 2.
    Store 2 at 3 km, stock 1, load `load2`: cost 3 + 0.5 load2 + 2 (infeasible at load 4)."""
    env = make(n_envs=1, positions=[[1.0, 0.0], [3.0, 0.0]], reward=reward)
    env.reset()
    env._show(_Draw(torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 1.0]]),
                    torch.tensor([[0.0, load2]])))
    return env


def random_actions(n_envs: int, n_agents: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (n_envs, n_agents), generator=g)


# --- reference answer -----------------------------------------------------------------


def test_oracle_matches_reference_numbers():
    o = make().oracle()
    assert o.values["oracle_cost"] == pytest.approx(3.736, abs=0.001)
    assert o.values["nearest_cost"] == pytest.approx(8.92, abs=0.01)
    assert o.values["nearest_optimal_rate"] == pytest.approx(0.536, abs=0.002)
    assert o.values["random_cost"] == pytest.approx(7.18, abs=0.01)
    assert o.extra["quadrature_error"] < 2e-4
    assert o.extra["oracle_miss_rate"] == pytest.approx((1 / 3) ** 10)  # nobody able
    assert set(o.extra) == {"oracle_miss_rate", "quadrature_error", "grid"}  # no timings
    assert o.has_policy
    assert o.team_return == pytest.approx(-o.values["oracle_cost"] * 20)
    assert o.kpis["optimal_choice_rate"] == 1.0 and o.kpis["regret"] == 0.0
    assert "3.7" in o.summary


PER_STORE_WEIGHTS = {"distance_weight": (1.0, 0.5, 2.0), "load_weight": (0.5, 0.2, 1.0),
                     "inventory_weight": (2.0, 3.0, 0.5)}


@pytest.mark.parametrize("weights", [{}, PER_STORE_WEIGHTS], ids=["one-weight", "per-store"])
def test_exact_given_the_order_location(weights):
    """At fixed points the formulas equal a count over every stock/load combination of
    three stores (30^3 equally likely states), with a miss cheap enough to be declined; with
    one set of weights for all stores and with each store's own."""
    model = dataclasses.replace(load_scenario("fulfillment").model,
                                positions=[[1.0, 2.0], [4.0, 1.0], [2.0, 5.0]], miss_penalty=6.0, **weights)
    p = Params.of(model)
    w = torch.tensor([p.distance_weight, p.load_weight, p.inventory_weight], dtype=torch.float64)
    points = np.array([[0.5, 0.5], [3.0, 2.5], [2.2, 4.1], [9.5, 9.5]])
    exact = given_orders(p, Offsets.of(p), points)
    grids = torch.meshgrid(*[torch.arange(6.0), torch.arange(5.0)] * 3, indexing="ij")
    inventory = torch.stack(grids[0::2], -1).reshape(-1, 3).double()
    load = torch.stack(grids[1::2], -1).reshape(-1, 3).double()
    positions = torch.tensor(p.positions, dtype=torch.float64)
    for k, xy in enumerate(points):
        order = torch.tensor(xy).expand(len(inventory), 2)
        c = _costs(_Draw(order, inventory, load), positions, w, p)
        near = c.distance[0].argmin()
        nearest = torch.where(c.feasible[:, near], c.cost[:, near], p.miss_penalty)
        n_able = c.feasible.sum(-1)
        random = torch.where(n_able > 0, torch.where(c.feasible, c.cost, 0.0).sum(-1)
                             / n_able.clamp_min(1), p.miss_penalty)
        counted = {"oracle_cost": c.oracle_cost.mean(), "nearest_cost": nearest.mean(),
                   "random_cost": random.mean(),
                   "nearest_optimal_rate": (c.oracle_store == near).double().mean(),
                   "oracle_miss_rate": (c.oracle_store < 0).double().mean()}
        got = reference_values(p, Offsets.of(p), exact[:, k])
        assert got == pytest.approx({key: v.item() for key, v in counted.items()}, abs=1e-12)
    if not weights:
        assert got["oracle_cost"] == 6.0 and got["nearest_optimal_rate"] == 0.0  # far corner


def test_sampled_orders_agree_with_the_exact_values():
    """The env's own draws under the oracle policy: each mean within 4 standard errors."""
    env = make(n_envs=2048, seed=0)
    exact = env.oracle().values
    env.reset()
    samples: dict[str, list[torch.Tensor]] = {key: [] for key in exact}
    for _ in range(8):
        res = env.step(env.oracle_actions())
        info = res.info
        assert env.kpis(info)["optimal_choice_rate"] == 1.0
        near = info["distance"].argmin(-1, keepdim=True)
        able = info["feasible"]
        n_able = able.sum(-1)
        samples["oracle_cost"].append(info["team_cost"])
        samples["nearest_cost"].append(torch.where(
            able.gather(-1, near).squeeze(-1), info["cost"].gather(-1, near).squeeze(-1), 20.0))
        samples["random_cost"].append(torch.where(
            n_able > 0, torch.where(able, info["cost"], 0.0).sum(-1) / n_able.clamp_min(1), 20.0))
        samples["nearest_optimal_rate"].append((near.squeeze(-1) == info["oracle_store"]).float())
    for key, parts in samples.items():
        x = torch.cat(parts).double()
        error = x.std().item() / len(x) ** 0.5
        assert abs(x.mean().item() - exact[key]) < 4 * error, (key, x.mean().item(), error)


def test_oracle_policy_has_no_regret():
    env = make(n_envs=256, seed=0)
    env.reset()
    for _ in range(env.spec.episode_length):
        res = env.step(env.oracle_actions())
        k = env.kpis(res.info)
        assert k["optimal_choice_rate"] == 1.0
        assert k["regret"] == 0.0 and k["conflict_rate"] == 0.0


@pytest.mark.parametrize("reward", ["resolved", "strict"])
def test_oracle_actions_pick_the_cheapest_able_store(reward):
    env = two_stores(reward)
    assert env.oracle_actions().tolist() == [[1, 0]]
    res = env.step(env.oracle_actions())
    assert res.info["team_cost"].item() == pytest.approx(2.0)
    assert res.info["oracle_cost"].item() == pytest.approx(2.0)


# --- reward rules on hand-made cases -----------------------------------------------------

CASES = [
    # accept, load of store 2, resolved (cost, served_by), strict (cost, served_by)
    ([1, 0], 1.0, (2.0, 0), (2.0, 0)),
    ([0, 1], 1.0, (5.5, 1), (5.5, 1)),
    ([1, 1], 1.0, (3.0, 0), (20.0, -1)),  # two accepters: cheapest + 1 redundant / strict miss
    ([0, 0], 1.0, (20.0, -1), (20.0, -1)),  # nobody
    ([1, 1], 4.0, (3.0, 0), (20.0, -1)),  # store 2 is full: its acceptance is redundant
    ([0, 1], 4.0, (20.0, -1), (20.0, -1)),  # only a full store accepts: a miss
]


@pytest.mark.parametrize("accept, load2, resolved, strict", CASES)
def test_reward_rules(accept, load2, resolved, strict):
    for reward, (cost, served) in (("resolved", resolved), ("strict", strict)):
        env = two_stores(reward, load2)
        res = env.step(torch.tensor([accept]))
        assert res.info["team_cost"].item() == pytest.approx(cost), reward
        assert res.info["served_by"].item() == served, reward
        assert res.reward.tolist()[0] == pytest.approx([-cost / 2, -cost / 2])
        assert res.info["feasible"].tolist() == [[True, load2 < 4]]


def test_kpis_on_a_conflict():
    env = two_stores("resolved")
    k = env.kpis(env.step(torch.tensor([[1, 1]])).info)
    assert k == pytest.approx({"optimal_choice_rate": 0.0, "regret": 1.0, "conflict_rate": 1.0,
                               "miss_rate": 0.0, "mean_cost": 3.0})


@pytest.mark.parametrize("reward", ["resolved", "strict"])
@pytest.mark.parametrize("accept", [[0, 0], [1, 0], [1, 1]])
def test_an_order_nobody_can_ship_is_no_wrong_choice(reward, accept):
    """Both stores full: every choice is the same miss (regret 0), so each counts as right."""
    env = two_stores(reward)
    env._show(_Draw(torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 0.0]]), torch.tensor([[4.0, 1.0]])))
    k = env.kpis(env.step(torch.tensor([accept])).info)
    assert k["optimal_choice_rate"] == 1.0 and k["regret"] == 0.0 and k["miss_rate"] == 1.0


# --- observations, shapes, episodes ------------------------------------------------------


def test_shapes_and_episode_end():
    env = make(n_envs=5)
    n = env.spec.n_agents
    obs, state = env.reset()
    assert obs.shape == (5, n, 7) and state.shape == (5, 3 * n + 2)
    assert env.spec.agent_names[0] == "store 1" and env.spec.cooperative
    for t in range(1, env.spec.episode_length + 1):
        res = env.step(random_actions(5, n, t))
        assert res.obs.shape == (5, n, 7) and res.state.shape == (5, 3 * n + 2)
        assert res.reward.shape == (5, n) and res.done.shape == (5,)
        assert bool(res.done.all()) == (t == env.spec.episode_length)
        assert res.info["order_xy"].shape == (5, 2)
        for key in ("inventory", "load", "distance", "cost", "feasible", "accept"):
            assert res.info[key].shape == (5, n), key
        for key in ("served_by", "oracle_store", "team_cost", "oracle_cost"):
            assert res.info[key].shape == (5,), key
        assert torch.isfinite(res.info["cost"]).all()
    strict = make("fulfillment-strict", n_envs=5)
    assert strict.reset()[0].shape == (5, n, 3) and strict.spec.obs_dim == 3


def test_ranked_observation_tells_the_best_store():
    env = make(n_envs=64)
    obs, _ = env.reset()
    feasible, own, rank, rival = obs[..., 3], obs[..., 4], obs[..., 5], obs[..., 6]
    assert torch.equal(feasible.bool(), env.costs.feasible)
    best = env.costs.oracle_store
    rows = torch.arange(64)
    assert (rank[rows, best] == 0).all()
    assert (own[rows, best] < rival[rows, best]).all()
    # Every other able store sees a rival cheaper than itself.
    others = feasible.bool().clone()
    others[rows, best] = False
    assert (rival[others] < own[others]).all() and (rank[others] > 0).all()
    assert (rank[~feasible.bool()] == 1).all()
    assert ((obs[..., :3] >= 0) & (obs[..., :3] <= 1)).all()


# --- reproducibility ---------------------------------------------------------------------


def test_batched_equals_single_copies():
    batched = make(n_envs=4, seed=7)
    singles = [make(n_envs=1, seed=7 + b) for b in range(4)]
    first = [batched.reset()] + [[s.reset() for s in singles]]
    assert torch.equal(first[0][0], torch.cat([o for o, _ in first[1]]))
    for t in range(25):  # crosses an episode end: stepping on after done keeps drawing
        actions = random_actions(4, 10, t)
        res = batched.step(actions)
        parts = [s.step(actions[b : b + 1]) for b, s in enumerate(singles)]
        assert torch.equal(res.obs, torch.cat([p.obs for p in parts]))
        assert torch.equal(res.state, torch.cat([p.state for p in parts]))
        assert torch.equal(res.reward, torch.cat([p.reward for p in parts]))
        for key, value in res.info.items():
            assert torch.equal(value, torch.cat([p.info[key] for p in parts])), key


def test_reset_seed_matches_a_fresh_env():
    env = make(seed=1)
    env.reset()
    env.step(random_actions(8, 10, 0))
    assert torch.equal(env.reset(seed=9)[0], make(seed=9).reset()[0])


def test_state_round_trip():
    env = make(n_envs=6)
    env.reset()
    for t in range(5):
        env.step(random_actions(6, 10, t))
    saved = {k: v.clone() for k, v in env.get_state().items()}
    later = [env.step(random_actions(6, 10, 100 + t)) for t in range(20)]
    other = make(n_envs=6, seed=99)
    other.set_state(saved)
    assert other.t == 5
    for t, ref in enumerate(later):
        res = other.step(random_actions(6, 10, 100 + t))
        assert torch.equal(res.obs, ref.obs) and torch.equal(res.reward, ref.reward)
        assert torch.equal(res.done, ref.done)
