"""PettingZoo adapters: every preset passes PettingZoo's own API test, and round trips agree."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("pettingzoo", reason="the optional extra marl-tui[pettingzoo] is not installed")
pytest.importorskip("gymnasium", reason="the optional extra marl-tui[pettingzoo] is not installed")

from gymnasium import spaces  # noqa: E402
from pettingzoo.test import parallel_api_test, parallel_seed_test  # noqa: E402

from marl_tui.config import bundled_names, load_scenario  # noqa: E402
from marl_tui.envs.base import make_env  # noqa: E402
from marl_tui.envs.external.pettingzoo import PettingZooBatched, ScenarioParallelEnv  # noqa: E402


@pytest.mark.parametrize("name", bundled_names())
def test_every_preset_passes_the_parallel_api_test(name):
    scenario = load_scenario(name)
    cycles = scenario.episode_length + 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PettingZoo reports most API slips as warnings
        parallel_api_test(ScenarioParallelEnv(scenario), num_cycles=cycles)
        parallel_seed_test(lambda: ScenarioParallelEnv(scenario), num_cycles=cycles)


@pytest.mark.parametrize("name", bundled_names())
def test_spaces_observations_and_infos(name):
    scenario = load_scenario(name)
    env = ScenarioParallelEnv(scenario)
    obs, infos = env.reset(seed=1)
    spec = env.env.spec
    agent = env.possible_agents[0]
    act = env.action_space(agent)
    if spec.action_space.kind == "discrete":
        assert isinstance(act, spaces.Discrete) and act.n == spec.action_space.n
    else:
        assert isinstance(act, spaces.Box) and act.shape == (1,)
        assert (act.low[0], act.high[0]) == pytest.approx(
            (spec.action_space.low, spec.action_space.high)
        )
    for a in env.agents:
        assert obs[a].dtype == np.float32 and env.observation_space(a).contains(obs[a])
    assert env.state().shape == env.state_space.shape and env.state().dtype == np.float32
    for t in range(scenario.episode_length):
        assert len(env.agents) == spec.n_agents
        obs, rewards, terminated, truncated, infos = env.step(
            {a: env.action_space(a).sample() for a in env.agents}
        )
        assert all(isinstance(r, float) for r in rewards.values())
        assert not any(terminated.values())
        assert all(truncated.values()) == (t == scenario.episode_length - 1)
        for info in infos.values():
            assert info and all(isinstance(v, (float, list)) for v in info.values())
    assert env.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})


def test_fulfillment_infos_are_the_store_own_numbers():
    env = ScenarioParallelEnv(load_scenario("fulfillment"))
    env.reset(seed=0)
    _, rewards, _, _, infos = env.step(dict.fromkeys(env.agents, 1))
    store = infos["store 3"]
    assert store["accept"] == 1.0 and store["feasible"] in (0.0, 1.0)
    assert len(store["order_xy"]) == 2
    assert sum(rewards.values()) == pytest.approx(-store["team_cost"], rel=1e-5)


def test_ansi_render_names_the_step():
    env = ScenarioParallelEnv(load_scenario("fulfillment"), render_mode="ansi")
    env.reset(seed=0)
    env.step(dict.fromkeys(env.agents, 0))
    assert env.render().startswith("t=1 ") and "team_cost=20" in env.render()
    with pytest.raises(ValueError, match="render_mode"):
        ScenarioParallelEnv(load_scenario("fulfillment"), render_mode="rgb_array")


@pytest.mark.parametrize("name", ["fulfillment", "pricing"])
def test_round_trip_matches_the_native_batched_env(name):
    """Copy b of episode e is the native scenario reset with the wrapper's seed for (e, b)."""
    scenario = load_scenario(name)
    wrapped = PettingZooBatched(lambda: ScenarioParallelEnv(scenario), n_envs=3, seed=11)
    native = make_env(scenario, n_envs=1, seed=0)
    assert wrapped.spec.obs_dim == native.spec.obs_dim
    assert wrapped.spec.state_dim == native.spec.state_dim
    assert wrapped.spec.action_space == native.spec.action_space
    assert wrapped.spec.episode_length == native.spec.episode_length
    g = torch.Generator().manual_seed(0)
    for _ in range(2):  # two episodes: each reset seeds every copy afresh
        seeds = [wrapped._copy_seed(b) for b in range(3)]
        natives = [make_env(scenario, n_envs=1, seed=s) for s in seeds]
        assert len(set(seeds)) == 3
        obs_w, state_w = wrapped.reset()
        for b, env in enumerate(natives):
            obs_n, state_n = env.reset()
            assert torch.equal(obs_n[0], obs_w[b]) and torch.equal(state_n[0], state_w[b])
        for _ in range(scenario.episode_length):
            a = native.spec.action_space
            if a.kind == "discrete":
                actions = torch.randint(0, a.n, (3, native.spec.n_agents), generator=g)
            else:
                actions = a.low + (a.high - a.low) * torch.rand(3, native.spec.n_agents, generator=g)
            res_w = wrapped.step(actions)
            for b, env in enumerate(natives):
                res_n = env.step(actions[b : b + 1])
                assert torch.equal(res_n.reward[0], res_w.reward[b])
                assert torch.equal(res_n.obs[0], res_w.obs[b]) and torch.equal(res_n.state[0], res_w.state[b])
                assert torch.equal(res_n.done[0], res_w.done[b])
            assert wrapped.kpis(res_w.info)["team_reward_per_step"] == pytest.approx(
                res_w.reward.sum(-1).mean().item(), rel=1e-5
            )
    assert wrapped.oracle().values == {}


def test_restored_wrapper_replays_the_interrupted_episode():
    scenario = load_scenario("fulfillment")
    a = PettingZooBatched(lambda: ScenarioParallelEnv(scenario), n_envs=2, seed=3)
    a.reset()
    a.step(torch.zeros(2, scenario.agents, dtype=torch.long))
    a.reset()  # episode 2 starts: a checkpoint here is at an episode boundary
    saved = a.get_state()
    after = a.step(torch.ones(2, scenario.agents, dtype=torch.long))
    b = PettingZooBatched(lambda: ScenarioParallelEnv(scenario), n_envs=2, seed=99)
    b.set_state(saved)
    again = b.step(torch.ones(2, scenario.agents, dtype=torch.long))
    assert torch.equal(after.obs, again.obs) and torch.equal(after.reward, again.reward)


def test_batched_wrapper_state_falls_back_to_observations():
    class NoState(ScenarioParallelEnv):
        def __getattribute__(self, name):
            if name == "state_space":
                raise AttributeError(name)
            return super().__getattribute__(name)

    scenario = load_scenario("fulfillment")
    wrapped = PettingZooBatched(lambda: NoState(scenario), n_envs=2, seed=0)
    obs, state = wrapped.reset()
    assert wrapped.spec.state_dim == wrapped.spec.n_agents * wrapped.spec.obs_dim
    assert torch.equal(state, obs.flatten(1))


def test_mpe_simple_spread_when_installed():
    simple_spread = pytest.importorskip("mpe2.simple_spread_v3")  # optional dependency
    env = PettingZooBatched(simple_spread.parallel_env, n_envs=2, seed=0)
    obs, state = env.reset()
    assert obs.shape == (2, 3, env.spec.obs_dim) and env.spec.episode_length == 25
    for _ in range(25):
        res = env.step(torch.randint(0, env.spec.action_space.n, (2, 3)))
    assert bool(res.done.all()) and res.reward.shape == (2, 3)
