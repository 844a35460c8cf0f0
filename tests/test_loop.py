"""The loop's episode accounting: what it sums on the device equals the per-step sums it replaced,
and the episode end it reads off the env's clock is the env's own done."""

from __future__ import annotations

import pytest
import torch

from marl_tui.algos.baselines import RandomPolicy
from marl_tui.algos.registry import make_algorithm, resolve_hparams
from marl_tui.config import load_scenario
from marl_tui.envs.base import DiscretisedEnv, make_env
from marl_tui.train.loop import Loop

SCENARIOS = ["pricing", "warehouse", "fulfillment"]


def random_loop(name: str, discretised: bool = False) -> Loop:
    sc = load_scenario(name)
    env = make_env(sc, n_envs=8, seed=3)
    if discretised:
        env = DiscretisedEnv(env)
    algo = make_algorithm("random", env, resolve_hparams("random", sc, {}), torch.device("cpu"))
    assert isinstance(algo, RandomPolicy)
    return Loop(env, algo, seed=3, learn=False)


@pytest.mark.parametrize("name", SCENARIOS)
def test_episode_kpis_and_returns_equal_the_per_step_host_sums(name: str) -> None:
    loop = random_loop(name)
    kpi_sums: dict[str, float] = {}
    returns = torch.zeros(loop.env.n_envs, loop.env.spec.n_agents)
    ends = []
    while len(ends) < 2:  # two episodes: the accumulators restart after the first
        outcome, ended = loop.step()
        # What the loop did before: each step's KPIs read to the host and summed there.
        for k, v in loop.env.kpis(outcome.info).items():
            kpi_sums[k] = kpi_sums.get(k, 0.0) + float(v)
        returns += outcome.reward
        if ended is not None:
            steps = loop.env.spec.episode_length
            assert ended.kpis.keys() == kpi_sums.keys()
            for k, total in kpi_sums.items():
                assert ended.kpis[k] == pytest.approx(total / steps, rel=1e-12, abs=1e-12), k
            assert ended.agent_returns == pytest.approx(returns.mean(0).tolist(), rel=1e-6)
            assert ended.team_return == pytest.approx(float(returns.mean(0).sum()), rel=1e-6)
            ends.append(ended)
            kpi_sums, returns = {}, torch.zeros_like(returns)
    assert ends[0].kpis != ends[1].kpis  # two different episodes, each its own sums


@pytest.mark.parametrize(("name", "discretised"), [(n, False) for n in SCENARIOS] + [("pricing", True)])
def test_episode_end_read_off_the_clock_is_the_envs_done(name: str, discretised: bool) -> None:
    loop = random_loop(name, discretised)
    env = loop.env
    length = env.spec.episode_length
    for _ in range(2 * length + 3):
        obs = loop.obs
        actions = loop.algo.act(obs, loop.state, explore=False).actions
        res = env.step(actions)
        assert bool(res.done.all()) == bool(res.done.any()) == (env.t >= length)
        if env.t >= length:
            env.reset()
    # And the loop ends its episodes exactly there.
    loop = random_loop(name, discretised)
    ends = [loop.step()[1] is not None for _ in range(2 * length)]
    assert [i + 1 for i, e in enumerate(ends) if e] == [length, 2 * length]
