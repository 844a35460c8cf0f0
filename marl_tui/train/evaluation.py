"""Greedy play: the policy without exploration, on an env of its own, learning nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from marl_tui.algos.base import Algorithm
from marl_tui.envs.base import BatchedEnv

# Seed offsets of the envs greedy play uses, so they never replay the training env's stream.
GREEDY_VIEW_SEED_OFFSET = 1_000_003
EVALUATION_SEED_OFFSET = 2_000_003


@contextlib.contextmanager
def acting_on(algo: Algorithm, env: BatchedEnv) -> Iterator[None]:
    """Point a baseline that reads true state (the oracle) at the env it now plays."""
    if not algo.needs_env:
        yield
        return
    saved = algo.env  # type: ignore[attr-defined]
    algo.env = env  # type: ignore[attr-defined]
    try:
        yield
    finally:
        algo.env = saved  # type: ignore[attr-defined]


def evaluate(algo: Algorithm, env: BatchedEnv, episodes: int) -> dict[str, float]:
    """The scenario's KPIs, averaged over `episodes` greedy episodes of every copy, and team return."""
    obs, state = env.reset()
    sums: dict[str, float] = {}
    count = 0
    team = torch.zeros(env.n_envs, device=env.device)
    with acting_on(algo, env), torch.no_grad():
        for _ in range(episodes * env.spec.episode_length):
            out = algo.act(obs, state, explore=False)
            res = env.step(out.actions)
            team += res.reward.sum(-1)
            for k, v in env.kpis(res.info).items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            obs, state = env.reset() if bool(res.done.all()) else (res.obs, res.state)
    kpis = {k: v / count for k, v in sums.items()}
    kpis["team_return"] = float(team.mean()) / episodes
    return kpis
