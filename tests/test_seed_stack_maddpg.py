"""MADDPG with stacked seeds (MADDPG.stack): each seed computes bit for bit what its solo run does.

S solo learners, each built as a solo run builds it (global RNG seeded, then its env, then the
learner), step their own envs; S more, built the same way, are stacked into one learner that steps
copies of the same envs in lockstep, seeds-major. After write_back every solo's state_dict equals
its reference's (torch.equal on every tensor), and every update_seeds() element equalled the
reference's update().
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch

from marl_tui.algos.base import Transition
from marl_tui.algos.maddpg import MADDPG, MADDPGHyperparameters
from marl_tui.algos.registry import make_algorithm, resolve_hparams
from marl_tui.config import load_scenario
from marl_tui.envs.base import ActionSpace, BatchedEnv, EnvSpec, continuous_space, make_env
from marl_tui.train.run_config import seed_everything

SEEDS = (3, 11, 42)
COPIES = 8  # B: copies per seed
# Small enough that many gradient steps happen in a few thousand env steps per seed.
SHORT = {"learning_starts": 64, "batch_size": 32, "buffer_size": 1_000, "hidden": 32, "updates_per_step": 2}
CPU = torch.device("cpu")


def build(scenario: str, seed: int, overrides: dict[str, Any], copies: int = COPIES) -> tuple[BatchedEnv, MADDPG]:
    """An env and a solo learner, in a solo run's order (build_run, then Run.__init__)."""
    sc = load_scenario(scenario)
    seed_everything(seed)
    hp = resolve_hparams("maddpg", sc, overrides)
    env = make_env(sc, n_envs=copies, seed=seed, device=CPU)
    algo = make_algorithm("maddpg", env, hp, CPU)
    assert isinstance(algo, MADDPG)
    return env, algo


@dataclass
class Seeds:
    """S envs stepped as a Loop steps one: update when ready, act, env.step, observe."""

    envs: list[BatchedEnv]
    obs: list[torch.Tensor]
    state: list[torch.Tensor]

    @classmethod
    def reset(cls, envs: list[BatchedEnv]) -> Seeds:
        firsts = [env.reset(seed) for env, seed in zip(envs, SEEDS, strict=False)]
        return cls(envs, [o for o, _ in firsts], [s for _, s in firsts])

    def _env_step(self, s: int, actions: torch.Tensor) -> Transition:
        env = self.envs[s]
        res = env.step(actions)
        t = Transition(obs=self.obs[s], state=self.state[s], actions=actions,
                       reward=res.reward * env.spec.reward_scale, next_obs=res.obs, next_state=res.state,
                       terminated=torch.zeros_like(res.done), truncated=res.done)
        self.obs[s], self.state[s] = env.reset() if env.t >= env.spec.episode_length else (res.obs, res.state)
        return t

    def solo_steps(self, algos: list[MADDPG], steps: int) -> list[list[dict[str, float]]]:
        metrics: list[list[dict[str, float]]] = [[] for _ in algos]
        for _ in range(steps):
            for s, algo in enumerate(algos):
                if algo.ready():
                    metrics[s].append(algo.update())
                algo.observe(self._env_step(s, algo.act(self.obs[s], self.state[s], explore=True).actions))
        return metrics

    def stacked_steps(self, algo: MADDPG, steps: int) -> list[list[dict[str, float]]]:
        metrics: list[list[dict[str, float]]] = [[] for _ in self.envs]
        for _ in range(steps):
            if algo.ready():
                for s, m in enumerate(algo.update_seeds()):
                    metrics[s].append(m)
            actions = algo.act(torch.cat(self.obs), torch.cat(self.state), explore=True).actions
            parts = [self._env_step(s, a) for s, a in enumerate(actions.chunk(len(self.envs)))]
            algo.observe(Transition(**{f: torch.cat([getattr(p, f) for p in parts])
                                       for f in ("obs", "state", "actions", "reward", "next_obs", "next_state",
                                                 "terminated", "truncated")}))
        return metrics


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Equal to the bit: tensors torch.equal (and dtype), containers item by item, the rest ==."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def solos_and_stacked(scenario: str, overrides: dict[str, Any], steps: int,
                      seeds: int = len(SEEDS)) -> tuple[list[MADDPG], list[MADDPG], list[Any], list[Any]]:
    """(references, stacked solos after write_back, their metrics): both driven `steps` batched steps."""
    refs = [build(scenario, seed, overrides) for seed in SEEDS[:seeds]]
    ref_metrics = Seeds.reset([env for env, _ in refs]).solo_steps([a for _, a in refs], steps)
    solos = [build(scenario, seed, overrides) for seed in SEEDS[:seeds]]
    stacked = MADDPG.stack([a for _, a in solos])
    metrics = Seeds.reset([env for env, _ in solos]).stacked_steps(stacked, steps)
    stacked.write_back([a for _, a in solos])
    return [a for _, a in refs], [a for _, a in solos], ref_metrics, metrics


@pytest.mark.parametrize(("scenario", "overrides"), [
    ("pricing", {}),  # continuous, d = 1
    ("fulfillment", {}),  # discrete: Gumbel draws in act and in the actor update
    ("warehouse", {}),  # gamma > 0: bootstrapped targets
    ("warehouse", {"critic": "mean_field", "huber": True}),
    ("fulfillment", {"critic": "mean_field", "other_actions": "buffer"}),
])
def test_stacked_seeds_equal_their_solo_runs(scenario: str, overrides: dict[str, Any]) -> None:
    steps = 160  # x 8 copies: 1,280 env steps per seed, 2 x 152 gradient steps
    refs, solos, ref_metrics, metrics = solos_and_stacked(scenario, SHORT | overrides, steps)
    assert len(ref_metrics[0]) == steps - SHORT["learning_starts"] // COPIES
    for s, (ref, solo) in enumerate(zip(refs, solos, strict=True)):
        assert_same(solo.state_dict(), ref.state_dict(), f"seed {s}")
        assert_same(metrics[s], ref_metrics[s], f"seed {s} metrics")
    # The seeds did learn different things (a stack that fed every seed seed 0's data would fail above,
    # but so would one that is right: this only guards the test's own set-up).
    assert not torch.equal(refs[0].mu.body[0].weight, refs[1].mu.body[0].weight)


@pytest.mark.parametrize("scenario", ["pricing", "fulfillment"])
def test_a_stack_on_two_threads_still_equals_one_thread_solo_runs(scenario: str) -> None:
    """At the scenario's own copies, batch size and widths (tensors big enough for two threads to
    split an op), a stack stepped on two torch threads equals solos stepped on one."""
    overrides = {"learning_starts": 1_024, "buffer_size": 20_000}
    refs = [build(scenario, seed, overrides, copies=256) for seed in SEEDS]
    solos = [build(scenario, seed, overrides, copies=256) for seed in SEEDS]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        ref_metrics = Seeds.reset([env for env, _ in refs]).solo_steps([a for _, a in refs], 8)
        torch.set_num_threads(2)
        stacked = MADDPG.stack([a for _, a in solos])
        metrics = Seeds.reset([env for env, _ in solos]).stacked_steps(stacked, 8)
    finally:
        torch.set_num_threads(threads)
    stacked.write_back([a for _, a in solos])
    assert len(ref_metrics[0]) == 4
    for s, ((_, ref), (_, solo)) in enumerate(zip(refs, solos, strict=True)):
        assert_same(solo.state_dict(), ref.state_dict(), f"seed {s}")
        assert_same(metrics[s], ref_metrics[s], f"seed {s} metrics")


def test_stacked_then_written_back_solos_explain_and_act_as_their_solo_runs() -> None:
    refs, solos, _, _ = solos_and_stacked("pricing", SHORT, 40)
    obs, state = torch.rand(2, 3, refs[0].spec.obs_dim), torch.rand(2, refs[0].spec.state_dim)
    for ref, solo in zip(refs, solos, strict=True):
        assert solo.explain(obs, state) == ref.explain(obs, state)
        assert torch.equal(solo.act(obs, state, explore=False).actions, ref.act(obs, state, explore=False).actions)


def test_trained_solos_stacked_midway_continue_as_solos_do() -> None:
    """Stack solos that trained on their own, go on stacked, write back, stack again: as if solo."""
    refs = [build("fulfillment", seed, SHORT) for seed in SEEDS]
    ref_seeds = Seeds.reset([env for env, _ in refs])
    ref_metrics = ref_seeds.solo_steps([a for _, a in refs], 20 + 2 * 20 + 1)
    solos = [build("fulfillment", seed, SHORT) for seed in SEEDS]
    seeds = Seeds.reset([env for env, _ in solos])
    seeds.solo_steps([a for _, a in solos], 20)  # learning started (64 env steps) on their own
    for _ in range(2):  # round trip: write_back then stack again
        stacked = MADDPG.stack([a for _, a in solos])
        seeds.stacked_steps(stacked, 20)
        stacked.write_back([a for _, a in solos])
    greedy = stacked.act(torch.cat(seeds.obs), torch.cat(seeds.state), explore=False).actions  # discrete
    assert torch.equal(greedy, torch.cat([a.act(o, s, explore=False).actions
                                          for (_, a), o, s in zip(solos, seeds.obs, seeds.state, strict=True)]))
    tail = seeds.solo_steps([a for _, a in solos], 1)  # and the written-back solos carry on alone
    for s, ((_, ref), (_, solo)) in enumerate(zip(refs, solos, strict=True)):
        assert_same(solo.state_dict(), ref.state_dict(), f"seed {s}")
        assert_same(tail[s], ref_metrics[s][-1:], f"seed {s} last update")


def test_solos_loaded_from_checkpoints_stack_and_continue_as_solos_do() -> None:
    refs = [build("pricing", seed, SHORT) for seed in SEEDS]
    ref_metrics = Seeds.reset([env for env, _ in refs]).solo_steps([a for _, a in refs], 30)
    solos = [build("pricing", seed, SHORT) for seed in SEEDS]
    seeds = Seeds.reset([env for env, _ in solos])
    seeds.solo_steps([a for _, a in solos], 20)
    saved = [a.state_dict() for _, a in solos]
    loaded = [build("pricing", 1_000 + seed, SHORT)[1] for seed in SEEDS]  # other weights, streams
    for algo, state in zip(loaded, saved, strict=True):
        algo.load_state_dict(state)
    stacked = MADDPG.stack(loaded)
    metrics = seeds.stacked_steps(stacked, 10)
    stacked.write_back(loaded)
    for s, ((_, ref), algo) in enumerate(zip(refs, loaded, strict=True)):
        assert_same(algo.state_dict(), ref.state_dict(), f"seed {s}")
        assert_same(metrics[s], ref_metrics[s][-10:], f"seed {s} metrics")


def test_one_stacked_seed_is_the_solo() -> None:
    refs, solos, ref_metrics, metrics = solos_and_stacked("pricing", SHORT, 40, seeds=1)
    assert_same(solos[0].state_dict(), refs[0].state_dict())
    assert_same(metrics, ref_metrics)


def synthetic_spec(space: ActionSpace) -> EnvSpec:
    return EnvSpec(n_agents=3, agent_names=("a", "b", "c"), obs_dim=5, state_dim=7, action_space=space,
                   episode_length=5)


@pytest.mark.parametrize("critic", ["full", "mean_field"])
def test_vector_actions_and_terminations_per_seed(critic: str) -> None:
    """Actions of d = 3 numbers, and terminations that differ between seeds (no bundled scenario
    terminates): random transitions, each seed's its own."""
    spec = synthetic_spec(continuous_space([0.0, -1.0, 10.0], [1.0, 1.0, 20.0]))
    hp = MADDPGHyperparameters(**(SHORT | {"learning_starts": 32, "critic": critic}))

    def fresh(seed: int) -> MADDPG:
        torch.manual_seed(seed)
        return MADDPG(spec, hp, CPU)

    def transitions(seed: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return [torch.rand(COPIES, 3, 5, generator=g), torch.rand(COPIES, 7, generator=g),
                torch.randn(COPIES, 3, generator=g), torch.rand(COPIES, 3, 5, generator=g),
                torch.rand(COPIES, 7, generator=g), torch.rand(COPIES, generator=g) < 0.2]

    refs = [fresh(seed) for seed in SEEDS]
    stacked_solos = [fresh(seed) for seed in SEEDS]
    stacked = MADDPG.stack(stacked_solos)
    gens = [torch.Generator().manual_seed(seed) for seed in SEEDS]
    ref_metrics: list[list[dict[str, float]]] = [[] for _ in SEEDS]
    metrics: list[list[dict[str, float]]] = [[] for _ in SEEDS]
    for _ in range(60):
        parts = [transitions(int(torch.randint(0, 2**31, (1,), generator=g))) for g in gens]
        for s, (ref, (obs, state, r, nobs, nstate, term)) in enumerate(zip(refs, parts, strict=True)):
            if ref.ready():
                ref_metrics[s].append(ref.update())
            a = ref.act(obs, state, explore=True).actions
            ref.observe(Transition(obs, state, a, r, nobs, nstate, term, torch.zeros_like(term)))
        if stacked.ready():
            for s, m in enumerate(stacked.update_seeds()):
                metrics[s].append(m)
        obs, state, r, nobs, nstate, term = (torch.cat(x) for x in zip(*parts, strict=True))
        a = stacked.act(obs, state, explore=True).actions
        assert a.shape == (len(SEEDS) * COPIES, 3, 3)
        stacked.observe(Transition(obs, state, a, r, nobs, nstate, term, torch.zeros_like(term)))
    stacked.write_back(stacked_solos)
    assert len(metrics[0]) > 50
    greedy = stacked.act(obs, state, explore=False).actions
    assert torch.equal(greedy, torch.cat([ref.act(o, s, explore=False).actions for ref, o, s in
                                          zip(refs, obs.chunk(3), state.chunk(3), strict=True)]))
    for s, (ref, solo) in enumerate(zip(refs, stacked_solos, strict=True)):
        assert_same(solo.state_dict(), ref.state_dict(), f"seed {s}")
        assert_same(metrics[s], ref_metrics[s], f"seed {s} metrics")


def test_stacking_leaves_the_global_rng_and_refuses_what_only_a_solo_has() -> None:
    solos = [build("pricing", seed, SHORT)[1] for seed in SEEDS]
    before = torch.get_rng_state()
    stacked = MADDPG.stack(solos)
    assert torch.equal(torch.get_rng_state(), before)
    assert stacked.generators[1] is solos[1].generators[0] and stacked.buffers[2] is solos[2].buffer
    obs, state = torch.rand(1, 3, solos[0].spec.obs_dim), torch.rand(1, solos[0].spec.state_dim)
    for call in (stacked.state_dict, stacked.update, lambda: stacked.explain(obs, state)):
        with pytest.raises(RuntimeError, match="update_seeds|write_back"):
            call()
    solos[1].env_steps += COPIES
    with pytest.raises(ValueError, match="env_steps"):
        MADDPG.stack(solos)
