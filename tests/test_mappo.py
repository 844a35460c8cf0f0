"""MAPPO: the guide's clipped-surrogate number, GAE by hand, exact resume, and a learning smoke test."""

from __future__ import annotations

import dataclasses
import io
import math
import re

import msgspec
import pytest
import torch

from marl_tui.algos.base import Transition
from marl_tui.algos.baselines import OracleExplain, RandomExplain
from marl_tui.algos.maddpg import MADDPGExplain
from marl_tui.algos.mappo import MAPPO, MAPPOExplain, ValueNorm, clipped_surrogate_loss, gae
from marl_tui.algos.qmix import QMIXExplain
from marl_tui.algos.registry import make_algorithm, resolve_hparams
from marl_tui.config import load_scenario
from marl_tui.envs.base import ActionSpace, EnvSpec, make_env

N, OBS, S, B = 2, 3, 4, 8


def tiny_spec(discrete: bool = False, cooperative: bool = False) -> EnvSpec:
    space = ActionSpace("discrete", n=3) if discrete else ActionSpace("continuous", low=1.0, high=10.0)
    return EnvSpec(n_agents=N, agent_names=("a", "b"), obs_dim=OBS, state_dim=S,
                   action_space=space, episode_length=3, cooperative=cooperative)


def tiny_algo(discrete: bool = False, seed: int = 0, cooperative: bool = False,
              **hp: object) -> MAPPO:
    torch.manual_seed(seed)
    base = dict(hidden=16, rollout_length=4, epochs=2, minibatches=2)
    return MAPPO(tiny_spec(discrete, cooperative), MAPPO.Hyperparameters(**(base | hp)),
                 torch.device("cpu"))


def play(algo: MAPPO, gen: torch.Generator, steps: int) -> list[object]:
    """Train on `steps` made-up transitions; return the actions taken and the update metrics."""
    taken: list[object] = []
    for t in range(steps):
        obs, state = torch.rand(B, N, OBS, generator=gen), torch.rand(B, S, generator=gen)
        out = algo.act(obs, state, explore=True)
        done = torch.full((B,), t % 3 == 2)
        algo.observe(Transition(
            obs=obs, state=state, actions=out.actions, reward=torch.randn(B, N, generator=gen),
            next_obs=torch.rand(B, N, OBS, generator=gen),
            next_state=torch.rand(B, S, generator=gen),
            terminated=torch.zeros(B, dtype=torch.bool), truncated=done, extras=out.extras,
        ))
        taken.append(out.actions)
        if algo.ready():
            taken.append(algo.update())
    return taken


# --------------------------------------------------------------------------- the guide's numbers


def test_clipped_surrogate_guide_example() -> None:
    # Part 3: r = 0.8, A_hat = -300, eps = 0.2 -> L = -min(-240, -240) = 240.
    L = clipped_surrogate_loss(torch.tensor(0.8), torch.tensor(-300.0), 0.2)
    assert L.item() == pytest.approx(240.0)


def test_clipped_surrogate_takes_the_pessimistic_side() -> None:
    ratio = torch.tensor([1.5, 0.5, 1.5, 0.5])
    A_hat = torch.tensor([2.0, 2.0, -2.0, -2.0])
    # A > 0: a ratio above 1 + eps earns no more (clipped); below 1 - eps the loss is unclipped.
    # A < 0: a ratio below 1 - eps is clipped; above 1 + eps the full penalty applies.
    expected = torch.tensor([-1.2 * 2.0, -0.5 * 2.0, 1.5 * 2.0, 0.8 * 2.0])
    assert torch.allclose(clipped_surrogate_loss(ratio, A_hat, 0.2), expected)


def test_gae_three_steps_by_hand_with_truncation_bootstrap() -> None:
    gamma, lam = 0.9, 0.8
    r = torch.tensor([1.0, 2.0, 3.0])
    V = torch.tensor([0.5, 1.0, 1.5])  # V(s_0), V(s_1), V(s_2)
    V_next = torch.tensor([1.0, 1.5, 4.0])  # V(s_1), V(s_2), V(s_3) of the final state
    end = torch.tensor([False, False, True])
    # delta = r + gamma V' - V = (1.4, 2.35, 5.1); the time-limit end still bootstraps V(s_3) = 4.
    # A_2 = 5.1, A_1 = 2.35 + 0.72 * 5.1 = 6.022, A_0 = 1.4 + 0.72 * 6.022 = 5.73584.
    A_hat, G = gae(r, V, V_next, gamma, lam, truncated=end)
    assert torch.allclose(A_hat, torch.tensor([5.73584, 6.022, 5.1]))
    assert torch.allclose(G, torch.tensor([6.23584, 7.022, 6.6]))
    # A real end drops the bootstrap: delta_2 = 3 - 1.5 = 1.5.
    A_term, _ = gae(r, V, V_next, gamma, lam, terminated=end)
    assert torch.allclose(A_term, torch.tensor([1.4 + 0.72 * 3.43, 2.35 + 0.72 * 1.5, 1.5]))


def test_gae_cuts_the_trace_at_an_episode_end_inside_the_rollout() -> None:
    r = torch.tensor([1.0, 2.0, 3.0])
    V, V_next = torch.tensor([0.5, 1.0, 7.0]), torch.tensor([1.0, 1.5, 2.0])
    # Step 1 ends an episode (bootstrapped from its own final state, V = 1.5); step 2 is a new one.
    A_hat, _ = gae(r, V, V_next, 0.9, 0.8, truncated=torch.tensor([False, True, False]))
    d = torch.tensor([1.0 + 0.9 - 0.5, 2.0 + 0.9 * 1.5 - 1.0, 3.0 + 0.9 * 2.0 - 7.0])
    assert torch.allclose(A_hat, torch.tensor([d[0] + 0.72 * d[1], d[1], d[2]]))


def test_gae_with_lambda_one_is_the_bootstrapped_discounted_return() -> None:
    r = torch.tensor([[1.0], [2.0], [3.0]])
    V = torch.tensor([[5.0], [-2.0], [0.3]])
    V_next = torch.tensor([[-2.0], [0.3], [10.0]])  # V(s_{t+1}): the next row of V, then V(s_3)
    A_hat, G = gae(r, V, V_next, 0.5, 1.0)
    assert torch.allclose(G[:, 0], torch.tensor([1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 10,
                                                 2 + 0.5 * 3 + 0.25 * 10, 3 + 0.5 * 10]))
    assert torch.allclose(A_hat, G - V)


def test_value_norm_matches_the_statistics_of_everything_seen() -> None:
    gen = torch.Generator().manual_seed(0)
    parts = [3.0 + 2.0 * torch.randn(100, 2, generator=gen) for _ in range(3)]
    norm = ValueNorm(2)
    for p in parts:
        norm.update(p)
    x = torch.cat(parts)
    assert torch.allclose(norm.mean, x.mean(0), atol=1e-4)
    assert torch.allclose(norm.var, x.var(0, unbiased=False), atol=1e-3)
    assert torch.allclose(norm.denormalise(norm.normalise(x)), x, atol=1e-5)


# --------------------------------------------------------------------------- policy


def test_continuous_log_prob_is_of_the_unclipped_sample() -> None:
    algo = tiny_algo(init_log_std=0.5)  # wide: many samples fall outside [-1, 1]
    obs = torch.rand(B, N, OBS)
    out = algo.act(obs, torch.rand(B, S), explore=True)
    u = out.extras["u"]
    assert (u.abs() > 1).any()
    assert torch.equal(out.actions, 1.0 + (u.clamp(-1, 1) + 1) * 4.5)  # clipped only for the env
    log_prob, _ = algo.policy.log_prob_entropy(obs, u)
    assert torch.allclose(out.extras["log_prob"], log_prob, atol=1e-6)


def test_discrete_samples_follow_the_policy_and_greedy_takes_the_argmax() -> None:
    algo = tiny_algo(discrete=True)
    with torch.no_grad():
        algo.policy.net.body[-1].bias.copy_(torch.tensor([1.0, 0.0, -1.0]))
    obs = torch.rand(1, N, OBS).expand(4000, N, OBS)
    out = algo.act(obs, torch.rand(4000, S), explore=True)
    probs = torch.softmax(algo.policy(obs[:1]), -1)[0]
    freq = torch.stack([(out.actions == k).float().mean(0) for k in range(3)], -1)
    assert (freq - probs).abs().max() < 0.03
    log_prob, _ = algo.policy.log_prob_entropy(obs, out.actions)
    assert torch.allclose(out.extras["log_prob"], log_prob, atol=1e-6)
    assert torch.equal(algo.act(obs[:1], torch.rand(1, S), False).actions[0], probs.argmax(-1))


def test_update_moves_the_policy_toward_positive_advantages() -> None:
    # Reward = the agent's unit-space action: a higher mean must come out of a few updates.
    algo = tiny_algo(rollout_length=8, epochs=4, lr=1e-2, entropy_coef=0.0)
    gen = torch.Generator().manual_seed(3)
    obs, state = torch.rand(B, N, OBS, generator=gen), torch.rand(B, S, generator=gen)
    mean_before = algo.policy(obs).mean()
    for _ in range(5):
        while not algo.ready():
            out = algo.act(obs, state, explore=True)
            algo.observe(Transition(
                obs=obs, state=state, actions=out.actions, reward=out.extras["u"],
                next_obs=obs, next_state=state, terminated=torch.zeros(B, dtype=torch.bool),
                truncated=torch.ones(B, dtype=torch.bool), extras=out.extras,
            ))
        metrics = algo.update()
    assert algo.policy(obs).mean() > mean_before + 0.3
    for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
                "explained_variance", "grad_norm", "ratio_mean"):
        assert isinstance(metrics[key], float) and math.isfinite(metrics[key])


ANY_EXPLAIN = MADDPGExplain | MAPPOExplain | QMIXExplain | RandomExplain | OracleExplain


def assert_guide_numbers(ex: MAPPOExplain) -> None:
    """The reported sample satisfies the guide's clipped surrogate, recomputed here."""
    r, A, eps = ex.ratio, ex.A_hat, ex.eps
    assert r is not None and A is not None and ex.clipped_ratio is not None and ex.L_clip is not None
    assert ex.clipped_ratio == pytest.approx(min(max(r, 1 - eps), 1 + eps))
    assert ex.L_clip == pytest.approx(-min(r * A, ex.clipped_ratio * A), rel=1e-5, abs=1e-6)
    for v in (ex.clip_fraction, ex.approx_kl, ex.entropy, ex.ratio_mean, ex.A_hat_mean):
        assert isinstance(v, float) and math.isfinite(v)


@pytest.mark.parametrize("discrete", [False, True])
def test_explain_is_plain_data_with_the_guide_numbers(discrete: bool) -> None:
    algo = tiny_algo(discrete=discrete, cooperative=discrete)
    gen = torch.Generator().manual_seed(0)
    play(algo, gen, 4)
    info = algo.explain(torch.rand(B, N, OBS, generator=gen), torch.rand(B, S, generator=gen))
    assert isinstance(info, MAPPOExplain) and len(info.V) == N
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(info), type=ANY_EXPLAIN) == info
    if discrete:
        assert info.probs is not None and info.mean is None and info.std is None
        assert len(info.probs) == N and sum(info.probs[0]) == pytest.approx(1.0)
    else:
        assert info.mean is not None and info.std is not None and info.probs is None
        assert all(1.0 <= m <= 10.0 for m in info.mean) and all(s > 0 for s in info.std)
    assert_guide_numbers(info)


@pytest.mark.parametrize("kind", ["pricing", "warehouse", "fulfillment"])
def test_explain_is_its_typed_struct_on_every_scenario_kind(kind: str) -> None:
    torch.manual_seed(0)
    scenario = load_scenario(kind)
    env = make_env(scenario, n_envs=8, seed=0)
    hp = resolve_hparams("mappo", scenario, {"rollout_length": 2, "hidden": 16})
    algo = make_algorithm("mappo", env, hp, torch.device("cpu"))
    spec, n = env.spec, env.spec.n_agents
    obs, state = env.reset(0)
    before = algo.explain(obs, state)
    assert type(before) is MAPPO.explain_type is MAPPOExplain
    assert before.ratio is None and before.L_clip is None and before.entropy is None  # no update yet
    while not algo.ready():
        out = algo.act(obs, state, explore=True)
        res = env.step(out.actions)
        algo.observe(Transition(
            obs=obs, state=state, actions=out.actions, reward=res.reward * spec.reward_scale,
            next_obs=res.obs, next_state=res.state, terminated=torch.zeros_like(res.done),
            truncated=res.done, extras=out.extras,
        ))
        obs, state = res.obs, res.state
    algo.update()
    after = algo.explain(obs, state)

    for ex in (before, after):
        assert len(ex.V) == n and ex.eps == hp.clip_eps
        if spec.action_space.kind == "discrete":
            assert ex.mean is None and ex.std is None and ex.probs is not None
            assert [sum(p) for p in ex.probs] == pytest.approx([1.0] * n)
        else:
            assert ex.probs is None and ex.mean is not None and ex.std is not None
            assert all(spec.action_space.low <= m <= spec.action_space.high for m in ex.mean)
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(ex), type=ANY_EXPLAIN) == ex
    assert_guide_numbers(after)


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize("discrete", [False, True])
def test_state_dict_round_trip_gives_identical_actions_and_update(discrete: bool) -> None:
    a = tiny_algo(discrete=discrete, seed=0)
    play(a, torch.Generator().manual_seed(1), 6)  # one update, then half a rollout
    blob = io.BytesIO()
    torch.save(a.state_dict(), blob)
    blob.seek(0)
    b = tiny_algo(discrete=discrete, seed=123)  # different weights and generator until loaded
    b.load_state_dict(torch.load(blob, weights_only=True))
    # Same made-up environment for both from here on: identical actions, then identical update.
    *acts_a, metrics_a = play(a, torch.Generator().manual_seed(2), 2)
    *acts_b, metrics_b = play(b, torch.Generator().manual_seed(2), 2)
    assert all(torch.equal(x, y) for x, y in zip(acts_a, acts_b, strict=True))
    assert isinstance(metrics_a, dict) and metrics_a == metrics_b
    for (name, p), q in zip(a.state_dict()["policy"].items(), b.state_dict()["policy"].values(),
                            strict=True):
        assert torch.equal(p, q), name


def test_generator_is_on_the_cpu_so_checkpoints_load_anywhere() -> None:
    algo = tiny_algo()
    assert algo.generator.device.type == "cpu"
    state = algo.state_dict()["generator"]
    assert state.device.type == "cpu" and state.dtype == torch.uint8


@pytest.mark.parametrize("discrete", [False, True])
def test_metric_names_leave_the_trainers_columns_alone(discrete: bool) -> None:
    metrics = [m for m in play(tiny_algo(discrete=discrete), torch.Generator().manual_seed(4), 4)
               if isinstance(m, dict)][-1]
    assert not set(metrics) & {"env_steps", "episodes", "updates", "team_return"}
    assert not any(re.fullmatch(r"return_\d+", k) for k in metrics)  # return_i


def test_hyperparameters_and_capabilities() -> None:
    hp = MAPPO.Hyperparameters()
    fields = {f.name for f in dataclasses.fields(hp)}
    assert {"steps", "gamma", "lr", "hidden", "entropy_coef"} <= fields
    assert MAPPO.exploration_field == "entropy_coef"
    assert MAPPO.capabilities.continuous and MAPPO.capabilities.discrete
    assert MAPPO.capabilities.on_policy and MAPPO.capabilities.centralised_critic
    assert tiny_algo().exploration()[0] == "entropy"


# --------------------------------------------------------------------------- learning


def test_learns_the_price_cap_on_pricing_guide() -> None:
    from marl_tui.train.build import build_run
    from marl_tui.train.run_config import RunConfig

    trainer = build_run(RunConfig(scenario=load_scenario("pricing-guide"), algo="mappo",
                                steps=120_000, seed=0))
    trainer.run()
    kpis = trainer.evaluate(episodes=1)
    assert kpis["mean_price"] >= 9.0
