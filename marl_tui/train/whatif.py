"""What if agent i had acted differently? (the study guide, Part 8: credit assignment)

A paused run answers a WhatIfQuery about the step it stands on: that step is replayed on a
fresh copy of the env, set to the state the run kept from just before it (Run.state_before),
once as taken, once with a_i replaced by a'_i (everyone else's action held), and once for each
candidate action of agent i (its best response). The algorithm's networks say what they make
of the replacement (Algorithm.what_if). Nothing of the run is touched: its env, buffers,
weights and random streams stay as they were (the copy has its own counter-based streams).
"""

from __future__ import annotations

import math

import torch

from marl_tui.algos.base import Counterfactual
from marl_tui.envs.base import BatchedEnv, DiscretisedEnv
from marl_tui.errors import UserError
from marl_tui.stream.frames import WhatIfAnswer, WhatIfQuery, WhatIfRefused
from marl_tui.train.evaluation import acting_on
from marl_tui.train.loop import StepOutcome
from marl_tui.train.run import Run

# Continuous actions: agent i's best response is searched on this many evenly spaced actions.
BEST_RESPONSE_GRID = 101


def answer(run: Run, query: WhatIfQuery) -> WhatIfAnswer | WhatIfRefused:
    """The query answered, or refused with one line saying why and what to do."""
    try:
        return _answer(run, query)
    except _Refusal as refusal:
        return WhatIfRefused(query.id, str(refusal))
    except UserError as exc:  # an env that cannot be copied (an external one)
        return WhatIfRefused(query.id, f"what-if needs a copy of the env at this step: {exc}")
    except Exception as exc:  # noqa: BLE001 - a question must never stop the run
        return WhatIfRefused(query.id, f"what-if failed: {type(exc).__name__}: {exc}")


class _Refusal(Exception):
    """A query that cannot be answered as asked (the message says why and what to do)."""


def _answer(run: Run, query: WhatIfQuery) -> WhatIfAnswer:
    last = _the_step(run, query)
    loop = run.greedy if query.greedy else run.loop
    assert loop is not None  # _the_step found one of its steps
    env = loop.env
    spec = env.spec
    n = spec.n_agents
    if not 0 <= query.agent < n:
        raise _Refusal(f"agent {query.agent + 1} is out of range: this scenario has {n} agents (1..{n})")
    i = query.agent
    replacement = _algorithm_action(env, query.action, i)
    taken = last.actions[:1]  # [1, N] as the algorithm chose them
    candidates = _candidates(env, i).to(taken.dtype)
    # First: an env that cannot be copied (an external one, vector actions included) is refused.
    copy = _copy_before(run, env, 2 + len(candidates))
    rows = taken.repeat(2 + len(candidates), 1)
    rows[1, i] = replacement
    rows[2:, i] = candidates
    with torch.no_grad():
        result = copy.step(rows)
        reward = result.reward.double()
        if not torch.allclose(reward[0], last.reward[0].double(), rtol=1e-5, atol=1e-6):
            raise _Refusal("a copy of the env did not reproduce this step's rewards, so a what-if here "
                           "would not be honest (the scenario's env keeps state get_state() leaves out)")
        team = reward.sum(-1)
        score = team if spec.cooperative else reward[:, i]
        best = 2 + int(score[2:].argmax())
        native = copy.to_native(rows)
        with acting_on(run.algo, env):
            values = run.algo.what_if(Counterfactual(
                obs=last.obs[:1], state=last.state[:1], joint=rows[:2], agent=i,
                reward=result.reward[:2] * spec.reward_scale, next_state=result.state[:2]))
    as_floats = native.double().tolist()
    rewards = reward.tolist()
    return WhatIfAnswer(
        id=query.id, greedy=query.greedy, step=query.step, agent=i,
        actions=tuple(as_floats[0]), action=as_floats[1][i],
        reward=tuple(rewards[0]), replaced=tuple(rewards[1]),
        best_action=as_floats[best][i], best_reward=tuple(rewards[best]),
        best_for="team" if spec.cooperative else "own", candidates=len(candidates),
        reward_scale=spec.reward_scale, values=values,
    )


def _the_step(run: Run, query: WhatIfQuery) -> StepOutcome:
    """The step the query is about: the one the paused run stands on, with its state kept."""
    if not run.controls.paused:
        raise _Refusal("what-if needs a paused run: press space to pause, then w")
    last = run.last_outcome(query.greedy)
    view = "greedy view" if query.greedy else "training"
    if last is None:
        raise _Refusal(f"the {view} has taken no step yet: press n to take one, then w")
    if last.step != query.step:
        raise _Refusal(f"step {query.step} is gone: the {view} stands on step {last.step}; ask again")
    kept = run.state_before
    if kept is None or (kept.greedy, kept.step) != (query.greedy, query.step):
        raise _Refusal("what-if replays a step from the env's state just before it, which the run "
                       "keeps for steps taken while paused: press n to take one step, then w")
    return last


def _algorithm_action(env: BatchedEnv, action: float, i: int) -> float:
    """a'_i from the scenario's units to the algorithm's (a level's index on a discretised env)."""
    space = env.spec.action_space.own(i)  # agent i's own actions (agents may differ in size)
    if not math.isfinite(action):
        raise _Refusal(f"the action {action} is not a number: give one in {space.describe()}")
    if isinstance(env, DiscretisedEnv):
        levels = env.spec.action_levels
        for k, level in enumerate(levels):
            if abs(level - action) <= 1e-6 * max(1.0, abs(level)):
                return float(k)
        shown = ", ".join(f"{v:g}" for v in levels)
        raise _Refusal(f"{action:g} is not one of the levels this algorithm acts on: pick one of {shown}")
    if space.kind == "discrete":
        if action != int(action) or not 0 <= action < space.n:
            raise _Refusal(f"the action {action:g} is out of bounds: give an index 0..{space.n - 1}")
        return action
    if not space.low <= action <= space.high:
        raise _Refusal(f"the action {action:g} is out of bounds: give one in [{space.low:g}, {space.high:g}]")
    return action


def _candidates(env: BatchedEnv, i: int) -> torch.Tensor:
    """Agent i's actions tried for its best response: every discrete one of its own, or an even grid."""
    space = env.spec.action_space.own(i)
    if space.kind == "discrete":
        return torch.arange(space.n, device=env.device)
    return torch.linspace(space.low, space.high, BEST_RESPONSE_GRID, device=env.device)


def _copy_before(run: Run, env: BatchedEnv, k: int) -> BatchedEnv:
    """A fresh env of k copies, each in the state copy 0 of `env` was in before the kept step.
    State tensors lead with the copies' dimension; the rest (the step t) is shared."""
    assert run.state_before is not None
    state = run.state_before.env_state
    per_copy = {name for name, v in state.items() if v.dim() and v.shape[0] == env.n_envs}
    if not per_copy - {"rng.seeds", "rng.counter"}:
        # An env whose state lives outside tensors (an external one) cannot be copied honestly.
        raise _Refusal("this scenario's env keeps its state outside the tensors get_state() returns, "
                       "so a step of it cannot be replayed: what-if is not available here")
    copy = run.make_env(k, run.seed)
    copy.set_state({name: v[:1].expand(k, *v.shape[1:]).clone() if name in per_copy else v
                    for name, v in state.items()})
    return copy
