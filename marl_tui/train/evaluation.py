"""Greedy play: the policy without exploration, on an env of its own, learning nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from marl_tui.algos.base import Algorithm
from marl_tui.envs.base import BatchedEnv
from marl_tui.train.loop import Loop

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
    loop = Loop(env, algo, seed=None, learn=False)  # the env as built: its own seed
    ends = []
    with acting_on(algo, env), torch.no_grad():
        while len(ends) < episodes:
            _, ended = loop.step()
            if ended is not None:
                ends.append(ended)
    kpis = {k: sum(e.kpis[k] for e in ends) / episodes for k in ends[0].kpis}
    kpis["team_return"] = sum(e.team_return for e in ends) / episodes
    return kpis
