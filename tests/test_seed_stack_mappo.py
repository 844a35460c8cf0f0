"""MAPPO seeds stacked in one learner (MAPPO.stack) reproduce solo runs bitwise: every update's
metrics and, after write_back, every seed's whole state_dict (weights, Adam, value statistics,
generator, rollout) equal those of that seed's solo run."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from marl_tui.algos.base import Transition
from marl_tui.algos.mappo import MAPPO
from marl_tui.algos.registry import resolve_hparams
from marl_tui.config import load_scenario
from marl_tui.envs.base import BatchedEnv, make_env
from marl_tui.train.run_config import seed_everything
from tests.test_external import needs_mpe
from tests.test_seed_stack_maddpg import assert_same

SPREAD_CONTINUOUS = Path(__file__).parents[1] / "scenarios" / "external" / "simple-spread-continuous.toml"
SEEDS = (11, 12, 13)
B = 8  # copies per seed
# Short rollouts, so that a few hundred batched steps hold many updates.
SMALL = {"rollout_length": 4, "epochs": 2, "minibatches": 2, "hidden": 16}

Metrics = list[dict[str, float]]


def solo(scenario: str, seed: int) -> tuple[MAPPO, BatchedEnv]:
    """A learner and its env, built as a solo run builds them (the global RNG seeded first)."""
    sc = load_scenario(scenario)
    seed_everything(seed)
    env = make_env(sc, n_envs=B, seed=seed)
    return MAPPO(env.spec, resolve_hparams("mappo", sc, SMALL), torch.device("cpu")), env


class Lockstep:
    """Envs stepped together for one learner, their batches seeds-major (rows s*B:(s+1)*B are
    env s's), in the trainer's order: update if ready, act, step, observe, reset at the end."""

    def __init__(self, envs: list[BatchedEnv], seeds: tuple[int, ...] | None) -> None:
        """seeds: reset each env with its seed; None: the envs go on from where they are (set
        obs and state)."""
        self.envs = envs
        self.obs: list[torch.Tensor] = []
        self.state: list[torch.Tensor] = []
        for env, seed in zip(envs, seeds or (), strict=False):
            obs, state = env.reset(seed)
            self.obs.append(obs)
            self.state.append(state)

    def run(self, algo: MAPPO, steps: int, learn: Callable[[], Metrics]) -> list[Metrics]:
        updates = []
        for _ in range(steps):
            if algo.ready():
                updates.append(learn())
            obs, state = torch.cat(self.obs), torch.cat(self.state)
            out = algo.act(obs, state, explore=True)
            results = [env.step(out.actions[s * B:(s + 1) * B]) for s, env in enumerate(self.envs)]
            done = torch.cat([r.done for r in results])
            algo.observe(Transition(
                obs=obs, state=state, actions=out.actions,
                reward=torch.cat([r.reward for r in results]) * self.envs[0].spec.reward_scale,
                next_obs=torch.cat([r.obs for r in results]), next_state=torch.cat([r.state for r in results]),
                terminated=torch.zeros_like(done), truncated=done, extras=out.extras,
            ))
            for s, (env, r) in enumerate(zip(self.envs, results, strict=True)):
                self.obs[s], self.state[s] = env.reset() if env.t >= env.spec.episode_length else (r.obs, r.state)
        return updates


class SoloRuns:
    """Each seed's solo run: its own learner and env, stepped on its own."""

    def __init__(self, scenario: str, seeds: tuple[int, ...] = SEEDS) -> None:
        built = [solo(scenario, seed) for seed in seeds]
        self.algos = [algo for algo, _ in built]
        self.drivers = [Lockstep([env], (seed,)) for (_, env), seed in zip(built, seeds, strict=True)]

    def run(self, steps: int) -> list[list[Metrics]]:
        """Per seed, its updates' metrics."""
        return [[m[0] for m in driver.run(algo, steps, lambda a=algo: [a.update()])]
                for algo, driver in zip(self.algos, self.drivers, strict=True)]


def stacked_updates(updates: list[Metrics]) -> list[list[Metrics]]:
    """update_seeds() results (per update, per seed) as per seed, per update."""
    return [[u[s] for u in updates] for s in range(len(updates[0]))] if updates else []


# 300 batched steps: 2,400 env steps of each seed, 74 updates. The MPE scenario has actions of 5
# numbers per agent (a diagonal Gaussian); its env steps each copy in Python, so fewer steps.
@pytest.mark.parametrize(("scenario", "steps"), [
    ("pricing", 300), ("warehouse", 300), ("fulfillment", 300),
    pytest.param(str(SPREAD_CONTINUOUS), 40, marks=needs_mpe, id="simple-spread-continuous-40"),
])
def test_stacked_seeds_follow_their_solo_runs_bitwise(scenario: str, steps: int) -> None:
    solos = SoloRuns(scenario)
    expected = solos.run(steps)

    built = [solo(scenario, seed) for seed in SEEDS]
    fresh = [algo for algo, _ in built]
    stacked = MAPPO.stack(fresh)
    assert stacked.n_seeds == len(SEEDS)
    driver = Lockstep([env for _, env in built], SEEDS)
    # A write_back halfway (as before a checkpoint) changes nothing in the stack's course.
    updates = driver.run(stacked, steps // 2 + 1, stacked.update_seeds)
    stacked.write_back(fresh)
    got = stacked_updates(updates + driver.run(stacked, steps - steps // 2 - 1, stacked.update_seeds))

    assert len(got[0]) == steps // SMALL["rollout_length"] - 1
    assert_same(got, expected, "metrics")
    # Different seeds learned different things (the comparison above is not of equal runs).
    assert got[0][-1]["policy_loss"] != got[1][-1]["policy_loss"]
    stacked.write_back(fresh)
    for s, (mine, theirs) in enumerate(zip(fresh, solos.algos, strict=True)):
        assert mine.pos > 0  # mid-rollout: the rollout so far comes back too
        assert_same(mine.state_dict(), theirs.state_dict(), f"seed {s}")


@pytest.mark.parametrize("scenario", ["pricing", "fulfillment"])
def test_trained_and_reloaded_solos_stack_and_continue_as_solos(scenario: str) -> None:
    """Solos that trained on their own (stopped mid-rollout), then stacked, continue as the solos
    do; so do solos loaded from their checkpoints."""
    steps_before, steps_after = 22, 30
    reference = SoloRuns(scenario)
    reference.run(steps_before)
    checkpoints = [copy.deepcopy(algo.state_dict()) for algo in reference.algos]
    env_states = [copy.deepcopy(d.envs[0].get_state()) for d in reference.drivers]
    carry = [(d.obs[0].clone(), d.state[0].clone()) for d in reference.drivers]

    trained = SoloRuns(scenario)
    trained.run(steps_before)
    loaded = SoloRuns(scenario, seeds=(7, 8, 9))  # other seeds: everything comes from the checkpoints
    for algo, driver, checkpoint, env_state, (obs, state) in zip(
            loaded.algos, loaded.drivers, checkpoints, env_states, carry, strict=True):
        algo.load_state_dict(copy.deepcopy(checkpoint))
        driver.envs[0].set_state(env_state)
        driver.obs, driver.state = [obs], [state]

    expected = reference.run(steps_after)
    for runs in (trained, loaded):
        stacked = MAPPO.stack(runs.algos)
        assert stacked.pos == steps_before % SMALL["rollout_length"]
        driver = Lockstep([d.envs[0] for d in runs.drivers], None)  # going on from steps_before
        driver.obs, driver.state = [d.obs[0] for d in runs.drivers], [d.state[0] for d in runs.drivers]
        got = stacked_updates(driver.run(stacked, steps_after, stacked.update_seeds))
        assert_same(got, expected, "metrics")
        stacked.write_back(runs.algos)
        for s, (mine, theirs) in enumerate(zip(runs.algos, reference.algos, strict=True)):
            assert_same(mine.state_dict(), theirs.state_dict(), f"seed {s}")


def stack_state(stacked: MAPPO) -> dict[str, Any]:
    seeds = stacked.seeds
    assert seeds is not None
    return {
        "theta": seeds.theta, "exp_avg": seeds.exp_avg, "exp_avg_sq": seeds.exp_avg_sq,
        "steps": seeds.steps, "value_norms": [vn.state_dict() for vn in stacked.value_norms],
        "buffer": stacked.buffer, "pos": stacked.pos, "updates": stacked.updates,
        "entropies": stacked.entropies, "lasts": stacked.lasts,
        "generators": [g.get_state() for g in stacked.generators],
    }


def test_write_back_then_stack_round_trips() -> None:
    built = [solo("warehouse", seed) for seed in SEEDS]
    solos = [algo for algo, _ in built]
    stacked = MAPPO.stack(solos)
    Lockstep([env for _, env in built], SEEDS).run(stacked, 15, stacked.update_seeds)  # 3 updates, mid-rollout
    assert stacked.updates == 3 and stacked.pos == 3
    stacked.write_back(solos)
    again = MAPPO.stack(solos)
    assert [id(g) for g in again.generators] == [id(s.generator) for s in solos]  # the solos' own
    assert_same(stack_state(again), stack_state(stacked), "stack")


def test_a_stack_of_one_is_the_solo() -> None:
    expected = SoloRuns("pricing", seeds=(5,))
    updates = expected.run(40)[0]
    algo, env = solo("pricing", 5)
    stacked = MAPPO.stack([algo])
    got = [m[0] for m in Lockstep([env], (5,)).run(stacked, 40, lambda: [stacked.update()])]
    assert_same(got, updates, "metrics")
    stacked.write_back([algo])
    assert_same(algo.state_dict(), expected.algos[0].state_dict())


def test_a_stack_sends_single_seed_questions_to_the_solos() -> None:
    solos = [solo("pricing", seed)[0] for seed in SEEDS]
    stacked = MAPPO.stack(solos)
    obs, state = torch.zeros(1, 3, solos[0].spec.obs_dim), torch.zeros(1, solos[0].spec.state_dim)
    for call in (stacked.state_dict, lambda: stacked.explain(obs, state), stacked.update,
                 lambda: stacked.load_state_dict({})):
        with pytest.raises(ValueError, match="write_back|update_seeds"):
            call()
    with pytest.raises(ValueError, match="lockstep"):
        solos[1].pos = 1
        MAPPO.stack(solos)
