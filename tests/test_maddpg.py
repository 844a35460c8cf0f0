"""MADDPG: critic targets, straight-through Gumbel actions, exact resume, and a learning smoke test."""

from __future__ import annotations

import dataclasses
import io
import re

import msgspec
import pytest
import torch

from marl_tui.algos.base import Transition
from marl_tui.algos.baselines import OracleExplain, RandomExplain
from marl_tui.algos.maddpg import MADDPG, MADDPGExplain, MADDPGHyperparameters, gumbel_softmax_st, td_target
from marl_tui.algos.mappo import MAPPOExplain
from marl_tui.algos.qmix import QMIXExplain
from marl_tui.algos.registry import make_algorithm, resolve_hparams
from marl_tui.config import load_scenario
from marl_tui.envs.base import ActionSpace, BatchedEnv, EnvSpec, make_env
from marl_tui.errors import UserError

N, OBS, S, B = 2, 3, 4, 8


def tiny_spec(discrete: bool = False) -> EnvSpec:
    space = ActionSpace("discrete", n=3) if discrete else ActionSpace("continuous", low=1.0, high=10.0)
    return EnvSpec(n_agents=N, agent_names=("a", "b"), obs_dim=OBS, state_dim=S,
                   action_space=space, episode_length=5)


def tiny_algo(discrete: bool = False, seed: int = 0, **hp: object) -> MADDPG:
    torch.manual_seed(seed)
    base = dict(hidden=16, batch_size=B, buffer_size=64, learning_starts=0, updates_per_step=1)
    return MADDPG(tiny_spec(discrete), MADDPGHyperparameters(**(base | hp)), torch.device("cpu"))


def random_transition(algo: MADDPG, gen: torch.Generator) -> Transition:
    spec, n = algo.spec, algo.spec.n_agents
    if spec.action_space.kind == "discrete":
        actions = torch.randint(0, spec.action_space.n, (B, n), generator=gen)
    else:
        actions = 1.0 + 9.0 * torch.rand(B, n, generator=gen)
    return Transition(
        obs=torch.rand(B, n, OBS, generator=gen), state=torch.rand(B, S, generator=gen),
        actions=actions, reward=torch.randn(B, n, generator=gen),
        next_obs=torch.rand(B, n, OBS, generator=gen), next_state=torch.rand(B, S, generator=gen),
        terminated=torch.zeros(B, dtype=torch.bool), truncated=torch.ones(B, dtype=torch.bool),
    )


def test_td_target_hand_made_batch() -> None:
    r = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    Q_next = torch.tensor([[10.0, 20.0], [30.0, 40.0]])
    terminated = torch.tensor([False, True])
    y = td_target(r, Q_next, 0.9, terminated)
    # Copy 0 bootstraps (a time-limit end is no termination); copy 1 terminated: y = r.
    assert torch.allclose(y, torch.tensor([[10.0, 20.0], [3.0, 4.0]]))
    assert torch.allclose(td_target(r, Q_next, 0.0, torch.zeros(2)), r)


def test_td_target_through_the_target_networks_and_critic_fits_it() -> None:
    # tau = 0 freezes the targets; a target critic whose last layer is zero outputs its bias c_i.
    algo = tiny_algo(gamma=0.5, tau=0.0, critic_lr=1e-2, grad_clip=10.0, normalise_rewards=False)
    last = algo.Q_target.body[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([[2.0], [-4.0]]))
    algo.observe(random_transition(algo, torch.Generator().manual_seed(1)))
    batch = {k: v[:B] for k, v in algo.buffer.data.items()}
    y_i, Q_next = algo.target_values(batch)
    assert torch.allclose(Q_next, torch.tensor([2.0, -4.0]).expand(B, N))
    assert torch.allclose(y_i, batch["reward"] + 0.5 * torch.tensor([2.0, -4.0]))
    for _ in range(300):
        algo.update()
    joint = algo._buffer_actions(batch["actions"]).flatten(1)
    Q_i = algo.Q(algo._critic_in(batch["state"], batch["obs"], joint)).squeeze(-1)
    assert (Q_i - y_i).abs().max() < 0.1


def test_gumbel_softmax_straight_through_is_one_hot_and_carries_gradient() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.tensor([[2.0, 0.0, -1.0]]).expand(4000, 3).clone().requires_grad_(True)
    a = gumbel_softmax_st(logits, 1.0, gen)
    assert set(a.detach().unique().tolist()) == {0.0, 1.0}
    assert torch.equal(a.detach().sum(-1), torch.ones(4000))
    # Forward samples follow softmax(logits).
    freq = a.detach().mean(0)
    assert torch.allclose(freq, torch.softmax(logits[0].detach(), -1), atol=0.03)
    (a * torch.tensor([1.0, 0.0, 0.0])).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    # Raising action 0's value pushes its logit up and the others down.
    assert logits.grad[:, 0].sum() > 0 and logits.grad[:, 1:].sum() < 0


@pytest.mark.parametrize("critic", ["full", "mean_field"])
@pytest.mark.parametrize("discrete", [False, True])
def test_state_dict_round_trip_gives_identical_actions_and_next_update(discrete: bool, critic: str) -> None:
    gen = torch.Generator().manual_seed(2)
    a = tiny_algo(discrete, seed=0, critic=critic)
    for _ in range(3):
        a.observe(random_transition(a, gen))
        a.update()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = tiny_algo(discrete, seed=123, critic=critic)  # different initial weights and streams
    b.load_state_dict(torch.load(buf, weights_only=True))
    obs, state = torch.rand(B, N, OBS, generator=gen), torch.rand(B, S, generator=gen)
    assert torch.equal(a.act(obs, state, explore=False).actions,
                       b.act(obs, state, explore=False).actions)
    assert torch.equal(a.act(obs, state, explore=True).actions,
                       b.act(obs, state, explore=True).actions)
    assert a.update() == b.update()
    for pa, pb in zip(a.mu.parameters(), b.mu.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert a.explain(obs, state) == b.explain(obs, state)


def test_exploration_noise_anneals_after_warmup() -> None:
    algo = tiny_algo(noise_std=0.2, noise_final=0.05, noise_decay_steps=16, learning_starts=8)
    assert algo.exploration() == ("noise", 0.2)
    assert not algo.ready()
    gen = torch.Generator().manual_seed(3)
    for _ in range(4):  # 32 transitions: 8 warm-up + 16 decay + 8 more
        algo.observe(random_transition(algo, gen))
    assert algo.ready()
    name, value = algo.exploration()
    assert name == "noise" and value == pytest.approx(0.05)
    assert tiny_algo(discrete=True).exploration()[0] == "epsilon"


def test_learns_pricing_guide_cap_price() -> None:
    from marl_tui.config import load_scenario
    from marl_tui.train.build import build_run
    from marl_tui.train.run_config import RunConfig

    torch.set_num_threads(1)
    trainer = build_run(RunConfig(
        scenario=load_scenario("pricing-guide"), algo="maddpg", steps=12_800, seed=0, n_envs=128,
        overrides={"learning_starts": 2_560, "batch_size": 256, "hidden": 32},
    ))
    trainer.run()
    kpis = trainer.evaluate(episodes=1)
    assert kpis["mean_price"] >= 9.0
    why = trainer.algo.explain(trainer.loop.obs, trainer.loop.state)
    assert isinstance(why, MADDPGExplain) and why.mu_i is not None and why.dQ_da is not None
    assert why.y_i is not None and len(why.mu_i) == len(why.Q_i) == len(why.y_i) == 3
    # The best response is the price cap: every critic says "raise the price".
    assert all(g > 0 for g in why.dQ_da)
    assert dataclasses.asdict(trainer.hp)["gamma"] == pytest.approx(0.0)


def test_rewards_normalised_by_std_measured_once() -> None:
    gen = torch.Generator().manual_seed(4)
    algo = tiny_algo()
    algo.observe(random_transition(algo, gen))
    expected = float(algo.buffer.data["reward"][:B].std())
    algo.update()
    algo.observe(random_transition(algo, gen))
    algo.update()
    assert algo.reward_std == pytest.approx(expected)  # fixed after the first update
    batch = {k: v[:B] for k, v in algo.buffer.data.items()}
    y_i, Q_next = algo.target_values(batch)
    assert torch.allclose(y_i, batch["reward"] / expected + algo.hp.gamma * Q_next)


@pytest.mark.parametrize("discrete", [False, True])
def test_greedy_acting_leaves_the_exploration_stream_alone(discrete: bool) -> None:
    gen = torch.Generator().manual_seed(5)
    a, b = tiny_algo(discrete), tiny_algo(discrete)
    obs, state = torch.rand(B, N, OBS, generator=gen), torch.rand(B, S, generator=gen)
    for _ in range(3):
        a.act(obs, state, explore=False)  # an evaluation must not change training's samples
    assert torch.equal(a.act(obs, state, explore=True).actions,
                       b.act(obs, state, explore=True).actions)


@pytest.mark.parametrize("discrete", [False, True])
def test_metric_names_leave_the_trainers_columns_alone(discrete: bool) -> None:
    algo = tiny_algo(discrete)
    algo.observe(random_transition(algo, torch.Generator().manual_seed(6)))
    metrics = algo.update()
    assert metrics["gradient_steps"] == 1.0
    assert not set(metrics) & {"env_steps", "episodes", "updates", "team_return"}
    assert not any(re.fullmatch(r"return_\d+", k) for k in metrics)  # return_i


@pytest.mark.parametrize("discrete", [False, True])
def test_actor_step_equals_a_full_backward_and_adds_no_critic_grads(
    discrete: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The actor step differentiates w.r.t. mu only: the same step loss.backward() gives."""
    gen = torch.Generator().manual_seed(7)
    a, b = tiny_algo(discrete), tiny_algo(discrete)
    t = random_transition(a, gen)
    a.observe(t)
    b.observe(t)
    after_critic_step: list[torch.Tensor] = []
    critic_step = a.Q_opt.step

    def step_and_record(*args: object, **kw: object) -> object:
        out = critic_step(*args, **kw)
        after_critic_step[:] = [p.grad.clone() for p in a.Q.parameters()]
        return out

    a.Q_opt.step = step_and_record  # type: ignore[method-assign]
    a.update()
    for g, p in zip(after_critic_step, a.Q.parameters(), strict=True):
        assert torch.equal(g, p.grad)  # the actor step left the critic's gradients alone

    def grad_by_backward(loss: torch.Tensor, params: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        for p in params:
            p.grad = None
        loss.backward()  # the old way: fills Q's weight gradients as well
        return tuple(p.grad for p in params)

    monkeypatch.setattr(torch.autograd, "grad", grad_by_backward)
    b.update()
    for pa, pb in zip(a.mu.parameters(), b.mu.parameters(), strict=True):
        assert torch.equal(pa, pb)


# --------------------------------------------------------------------------- explain, on every scenario kind

ANY_EXPLAIN = MADDPGExplain | MAPPOExplain | QMIXExplain | RandomExplain | OracleExplain


def on_scenario(kind: str) -> tuple[BatchedEnv, MADDPG]:
    """The bundled scenario of this kind, 8 copies, a small MADDPG that learns from the first step.

    gamma 0.5 on every kind (pricing and fulfilment default to 0), so Q_next counts in y_i.
    """
    torch.manual_seed(0)
    scenario = load_scenario(kind)
    env = make_env(scenario, n_envs=8, seed=0)
    hp = resolve_hparams("maddpg", scenario, {"learning_starts": 0, "batch_size": 8, "hidden": 16,
                                              "updates_per_step": 1, "gamma": 0.5})
    algo = make_algorithm("maddpg", env, hp, torch.device("cpu"))
    assert isinstance(algo, MADDPG)
    return env, algo


@pytest.mark.parametrize("kind", ["pricing", "warehouse", "fulfillment"])
def test_explain_is_its_typed_struct_on_every_scenario_kind(kind: str) -> None:
    env, algo = on_scenario(kind)
    spec, n = env.spec, env.spec.n_agents
    obs, state = env.reset(0)
    before = algo.explain(obs, state)
    assert type(before) is MADDPG.explain_type is MADDPGExplain
    assert before.y_i is None and before.r_i is None and before.Q_next is None  # no update yet

    out = algo.act(obs, state, explore=True)
    res = env.step(out.actions)
    algo.observe(Transition(
        obs=obs, state=state, actions=out.actions, reward=res.reward * spec.reward_scale,
        next_obs=res.obs, next_state=res.state, terminated=torch.zeros_like(res.done),
        truncated=res.done,
    ))
    assert algo.ready()
    algo.update()
    after = algo.explain(res.obs, res.state)

    for ex in (before, after):
        assert len(ex.Q_i) == n and ex.gamma == 0.5
        if spec.action_space.kind == "discrete":
            assert ex.mu_i is None and ex.dQ_da is None
            assert ex.greedy is not None and ex.dQ_da_onehot is not None
            assert all(0 <= a < spec.action_space.n for a in ex.greedy)
            assert [len(g) for g in ex.dQ_da_onehot] == [spec.action_space.n] * n
        else:
            assert ex.greedy is None and ex.dQ_da_onehot is None
            assert ex.mu_i is not None and ex.dQ_da is not None and len(ex.dQ_da) == n
            low, high = spec.action_space.low, spec.action_space.high
            assert all(low <= a <= high for a in ex.mu_i)
        # Plain data: through the stream's codec and back, unchanged.
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(ex), type=ANY_EXPLAIN) == ex

    assert after.y_i is not None and after.r_i is not None and after.Q_next is not None
    assert len(after.y_i) == len(after.r_i) == len(after.Q_next) == n
    # y_i = r_i + gamma Q_i^-: batch means, and nothing in the buffer terminated.
    assert after.y_i == pytest.approx([r + 0.5 * q for r, q in zip(after.r_i, after.Q_next, strict=True)],
                                      rel=1e-5, abs=1e-6)


# --- the mean-field critic (critic = "mean_field") ---------------------------------------------


def spec_of(n: int, discrete: bool) -> EnvSpec:
    space = ActionSpace("discrete", n=3) if discrete else ActionSpace("continuous", low=1.0, high=10.0)
    return EnvSpec(n_agents=n, agent_names=tuple(f"a{i}" for i in range(n)), obs_dim=OBS, state_dim=S,
                   action_space=space, episode_length=5)


def algo_of(n: int, discrete: bool, critic: str, seed: int = 0) -> MADDPG:
    torch.manual_seed(seed)
    hp = MADDPGHyperparameters(hidden=16, batch_size=B, buffer_size=64, learning_starts=0,
                               updates_per_step=2, critic=critic)
    return MADDPG(spec_of(n, discrete), hp, torch.device("cpu"))


@pytest.mark.parametrize("discrete", [False, True])
def test_mean_field_critic_sees_its_own_obs_and_action_and_the_others_mean(discrete: bool) -> None:
    n, gen = 4, torch.Generator().manual_seed(5)
    algo = algo_of(n, discrete, "mean_field")
    d = algo.d_act
    assert algo.Q.body[0].weight.shape == (n, S + OBS + 2 * d, 16)  # no N x obs, no N x actions
    state, obs = torch.rand(B, S, generator=gen), torch.rand(B, n, OBS, generator=gen)
    a = torch.rand(B, n, d, generator=gen)
    x = algo._critic_in(state, obs, a.flatten(1))
    assert x.shape == (B, n, S + OBS + 2 * d)
    for i in range(n):
        others = torch.cat([a[:, :i], a[:, i + 1:]], dim=1).mean(1)
        expected = torch.cat([state, obs[:, i], a[:, i], others], dim=-1)
        assert torch.allclose(x[:, i], expected, atol=1e-6)
    # Per critic joint actions (the actor update's): critic i takes its a_i from its own row.
    rows = a[:, None].expand(-1, n, -1, -1).clone()
    rows[:, 2, 2] = 7.0  # critic 2's own action differs; the others' still read a
    xr = algo._critic_in(state, obs, rows.flatten(2))
    assert torch.equal(xr[:, [0, 1, 3]], x[:, [0, 1, 3]])
    assert torch.all(xr[:, 2, S + OBS:S + OBS + d] == 7.0)
    assert torch.allclose(xr[:, 2, S + OBS + d:], x[:, 2, S + OBS + d:])
    # It learns and explains like the full critic.
    for _ in range(3):
        algo.observe(random_transition(algo, gen))
        metrics = algo.update()
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    assert len(algo.explain(obs[:1], state[:1]).Q_i) == n


@pytest.mark.parametrize("discrete", [False, True])
def test_mean_field_critic_is_the_full_critic_for_one_agent(discrete: bool) -> None:
    full, mean_field = algo_of(1, discrete, "full"), algo_of(1, discrete, "mean_field")
    gen_full, gen_mf = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    for _ in range(4):
        full.observe(random_transition(full, gen_full))
        mean_field.observe(random_transition(mean_field, gen_mf))
        assert full.update() == mean_field.update()
    for pf, pm in zip(full.state_dict()["Q"].values(), mean_field.state_dict()["Q"].values(), strict=True):
        assert torch.equal(pf, pm)
    obs, state = torch.rand(B, 1, OBS, generator=gen_full), torch.rand(B, S, generator=gen_full)
    assert full.explain(obs, state) == mean_field.explain(obs, state)


def test_mean_field_differs_from_full_with_several_agents_and_unknown_critic_is_refused() -> None:
    assert algo_of(3, False, "full").Q.body[0].weight.shape[1] == S + 3 * OBS + 3
    scenario = load_scenario("pricing")
    assert resolve_hparams("maddpg", scenario, {"critic": "mean_field"}).critic == "mean_field"
    with pytest.raises(UserError, match="critic"):
        resolve_hparams("maddpg", scenario, {"critic": "meanfield"})
