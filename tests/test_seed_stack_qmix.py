"""QMIX seeds stacked in one learner (QMIX.stack) reproduce solo runs of those seeds bitwise.

Each solo is built as the trainer builds one (global RNG seeded, env, then algorithm) and driven
by the trainer's own Loop; the stack steps the same envs in lockstep, seeds-major.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from marl_tui.algos.base import Transition
from marl_tui.algos.qmix import QMIX
from marl_tui.algos.registry import resolve_hparams
from marl_tui.config import load_scenario
from marl_tui.envs.base import DiscretisedEnv, make_env
from marl_tui.train.loop import Loop
from marl_tui.train.run_config import seed_everything
from tests.test_seed_stack_maddpg import assert_same

SEEDS = (3, 11, 42)
COPIES = 8  # B, per seed
# Small enough that updates start early, the buffer wraps and targets are copied many times.
SMALL = {"hidden": 32, "mixer_hidden": 16, "batch_size": 32, "buffer_size": 600, "learning_starts": 64,
         "updates_per_step": 2, "eps_anneal_steps": 1_500, "target_update_interval": 10}


def solo_loop(scenario: str, seed: int, overrides: dict[str, Any]) -> Loop:
    """A solo QMIX run of `seed` on `scenario`, built in the trainer's order, in its Loop."""
    sc = load_scenario(scenario)
    hp = resolve_hparams("qmix", sc, {**SMALL, **overrides})
    seed_everything(seed)
    env = make_env(sc, n_envs=COPIES, seed=seed)
    if env.spec.action_space.kind == "continuous":
        env = DiscretisedEnv(env)
    return Loop(env, QMIX(env.spec, hp, torch.device("cpu")), seed)


def solo_loops(scenario: str, overrides: dict[str, Any]) -> list[Loop]:
    return [solo_loop(scenario, seed, overrides) for seed in SEEDS]


def run_solos(loops: list[Loop], steps: int) -> list[list[dict[str, float]]]:
    """Each loop on its own, as the trainer runs it; returns each step's metrics of every seed."""
    per_step = []
    for _ in range(steps):
        row = []
        for loop in loops:
            loop.step()
            row.append(loop.update_if_ready())
        per_step.append(row)
    return per_step


def run_stacked(stacked: QMIX, loops: list[Loop], steps: int) -> list[list[dict[str, float]]]:
    """The loops' envs stepped in lockstep by one stacked learner (rows seeds-major)."""
    per_step = []
    for _ in range(steps):
        obs, state = torch.cat([lp.obs for lp in loops]), torch.cat([lp.state for lp in loops])
        out = stacked.act(obs, state, explore=True)
        results = [lp.env.step(a) for lp, a in zip(loops, out.actions.chunk(len(loops)), strict=True)]
        reward = torch.cat([r.reward * lp.env.spec.reward_scale for lp, r in zip(loops, results, strict=True)])
        done = torch.cat([r.done for r in results])
        stacked.observe(Transition(
            obs=obs, state=state, actions=out.actions, reward=reward,
            next_obs=torch.cat([r.obs for r in results]), next_state=torch.cat([r.state for r in results]),
            terminated=torch.zeros_like(done), truncated=done,
        ))
        for lp, r in zip(loops, results, strict=True):
            ended = lp.env.t >= lp.env.spec.episode_length
            lp.obs, lp.state = lp.env.reset() if ended else (r.obs, r.state)
        per_step.append(stacked.update_seeds() if stacked.ready() else [None] * len(loops))
    return per_step


def reloaded(algo: QMIX) -> QMIX:
    """A new learner that loaded `algo`'s checkpoint state (as a resumed run does)."""
    fresh = QMIX(algo.spec, algo.hp, algo.device)
    fresh.load_state_dict(algo.state_dict())
    return fresh


def assert_stack_follows_solos(scenario: str, overrides: dict[str, Any], before: int, steps: int,
                               reload: bool = False) -> None:
    """Solos trained `before` steps alone (and, with `reload`, loaded into new learners from
    their state_dict) then `steps` more == the same solos stacked for those steps."""
    reference = solo_loops(scenario, overrides)
    expected = run_solos(reference, before + steps)[before:]
    loops = solo_loops(scenario, overrides)
    run_solos(loops, before)
    if reload:
        for lp in loops:
            lp.algo = reloaded(lp.algo)
    solos = [lp.algo for lp in loops]
    stacked = QMIX.stack(solos)
    got = run_stacked(stacked, loops, steps)
    assert sum(m is not None for row in got for m in row) > 3 * 50  # many updates were compared
    assert_same(got, expected, "metrics")
    stacked.write_back(solos)
    for s, (solo, ref) in enumerate(zip(solos, (lp.algo for lp in reference), strict=True)):
        assert_same(solo.state_dict(), ref.state_dict(), f"seed {SEEDS[s]}")


@pytest.mark.parametrize("scenario", ["pricing", "warehouse", "fulfillment"])
def test_stacked_seeds_equal_solo_runs(scenario: str) -> None:
    assert_stack_follows_solos(scenario, {}, before=0, steps=250)


@pytest.mark.parametrize("overrides", [
    {"shared": False},  # per-agent Q_i networks
    {"huber": True, "target_update_interval": 0, "grad_clip": 0.5},  # Huber, soft targets, clipping bites
])
def test_stacked_seeds_equal_solo_runs_other_settings(overrides: dict[str, Any]) -> None:
    assert_stack_follows_solos("fulfillment", overrides, before=0, steps=150)


@pytest.mark.parametrize("reload", [False, True])
def test_stack_of_trained_solos_continues_as_they_would(reload: bool) -> None:
    assert_stack_follows_solos("pricing", {}, before=120, steps=120, reload=reload)


def test_one_seed_stacked_is_the_plain_solo() -> None:
    reference = solo_loops("warehouse", {})[:1]
    expected = run_solos(reference, 150)
    loops = solo_loops("warehouse", {})[:1]
    stacked = QMIX.stack([loops[0].algo])
    assert_same(run_stacked(stacked, loops, 150), expected, "metrics")
    assert stacked.ready()
    stacked.write_back([loops[0].algo])
    assert_same(loops[0].algo.state_dict(), reference[0].algo.state_dict())
    assert set(stacked.update()) == set(expected[-1][0])  # S = 1: update() is update_seeds()[0]


def test_write_back_then_stack_round_trips() -> None:
    loops = solo_loops("pricing", {})
    run_solos(loops, 30)
    first = QMIX.stack([lp.algo for lp in loops])
    run_stacked(first, loops, 30)
    first.write_back([lp.algo for lp in loops])
    again = QMIX.stack([lp.algo for lp in loops])
    for name in ("Q", "mixer", "Q_target", "mixer_target", "optimizer"):
        assert_same(getattr(again, name).state_dict(), getattr(first, name).state_dict(), name)
    assert_same(again.buffer.data, first.buffer.data, "buffer")
    assert (again.buffer.pos, again.buffer.size) == (first.buffer.pos, first.buffer.size)
    assert [g is lp.algo.generator for g, lp in zip(again.generators, loops, strict=True)] == [True] * 3
    assert (again.env_steps, again.n_updates) == (first.env_steps, first.n_updates)
    assert_same(again.last_y, first.last_y, "last_y")


def test_a_stack_refuses_what_only_a_solo_answers() -> None:
    loops = solo_loops("pricing", {})
    stacked = QMIX.stack([lp.algo for lp in loops])
    obs, state = loops[0].obs, loops[0].state
    for call in (lambda: stacked.explain(obs, state), stacked.state_dict, lambda: stacked.load_state_dict({}),
                 stacked.update):
        with pytest.raises(RuntimeError, match="write_back|update_seeds"):
            call()


def test_stack_refuses_solos_out_of_lockstep() -> None:
    loops = solo_loops("pricing", {})
    run_solos(loops[:1], 1)
    with pytest.raises(ValueError, match="lockstep"):
        QMIX.stack([lp.algo for lp in loops])
