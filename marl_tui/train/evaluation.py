"""Greedy play: the policy without exploration, on an env of its own, learning nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

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


# The final evaluation of a run is bounded by its training budget: at most
# max(EVALUATION_FLOOR, EVALUATION_SHARE x the training's batched steps) batched steps, so an
# episode of 100,000 steps after 2,000 training steps does not evaluate for minutes.
EVALUATION_FLOOR = 1_000
EVALUATION_SHARE = 0.25
FINAL_ROUNDS = 4  # a run's final evaluation: this many episodes of every copy


def evaluation_cap(total_steps: int, copies: int) -> int:
    """The most batched steps evaluating a run of `total_steps` env steps over `copies` may take."""
    return max(EVALUATION_FLOOR, int(EVALUATION_SHARE * total_steps / max(copies, 1)))


@dataclass(frozen=True)
class EvaluationPlan:
    """What greedy play will do: `episodes` whole episodes in all, `copies` at a time, or
    (partial) the first `steps` steps of one episode of each copy when an episode is longer
    than the cap."""

    episodes: int  # whole episodes over all copies; 0 when partial
    copies: int  # copies of the env playing side by side
    steps: int  # batched steps
    asked: int  # episodes asked for

    @property
    def partial(self) -> bool:
        return self.episodes == 0

    def describe(self) -> str:
        if self.partial:
            return (f"the first {self.steps:,} steps of one episode x {self.copies:,} copies (an episode is "
                    "longer than the evaluation's bound)")
        fewer = f" (of {self.asked:,} asked: the evaluation's bound)" if self.episodes < self.asked else ""
        return f"{self.episodes:,} episodes{fewer}, {self.copies:,} at a time, {self.steps:,} steps"


def plan_evaluation(episodes: int, episode_length: int, cap: int, copies: int) -> EvaluationPlan:
    """Exactly `episodes` whole episodes, played by the most copies (at most `copies`) that
    divide them evenly, as many rounds as fit in `cap` batched steps, else part of one."""
    side_by_side = max(d for d in range(1, min(episodes, copies) + 1) if episodes % d == 0)
    rounds = min(episodes // side_by_side, cap // episode_length)
    if rounds == 0:
        return EvaluationPlan(0, side_by_side, min(cap, episode_length), episodes)
    return EvaluationPlan(rounds * side_by_side, side_by_side, rounds * episode_length, episodes)


def evaluate(algo: Algorithm, env: BatchedEnv, plan: EvaluationPlan,
             on_step: Callable[[int], None] | None = None,
             stop: Callable[[], bool] | None = None) -> dict[str, float] | None:
    """The scenario's KPIs and team return, averaged over the plan's greedy episodes (env: of
    plan.copies copies), or over the first steps of one episode when the plan is partial.

    on_step(steps done) after each batched step; stop() checked before each: True ends the
    evaluation with None."""
    loop = Loop(env, algo, seed=None, learn=False)  # the env as built: its own seed
    ends = []
    with acting_on(algo, env), torch.no_grad():
        while loop.step_count < plan.steps:
            if stop is not None and stop():
                return None
            _, ended = loop.step()
            if ended is not None:
                ends.append(ended)
            if on_step is not None:
                on_step(loop.step_count)
    if plan.partial:  # the episode so far, its KPIs averaged over the steps taken
        ends = [loop.account.close(0, 0)]
    kpis = {k: sum(e.kpis[k] for e in ends) / len(ends) for k in ends[0].kpis}
    kpis["team_return"] = sum(e.team_return for e in ends) / len(ends)
    return kpis
