"""QMIX: the mixer's monotonicity, decentralised argmax = joint argmax, learning, resume."""

from __future__ import annotations

import io
import itertools
import re

import msgspec
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from marl_tui.algos.base import Transition
from marl_tui.algos.baselines import OracleExplain, RandomExplain
from marl_tui.algos.maddpg import MADDPGExplain
from marl_tui.algos.mappo import MAPPOExplain
from marl_tui.algos.qmix import QMIX, QMixer, QMIXExplain, QMIXHyperparameters
from marl_tui.algos.registry import make_algorithm, needs_discrete, resolve_hparams
from marl_tui.config import load_scenario
from marl_tui.envs.base import (
    ActionSpace,
    BatchedEnv,
    DiscretisedEnv,
    EnvSpec,
    Oracle,
    StepResult,
    make_env,
)

torch.set_num_threads(1)


class MatrixGame(BatchedEnv):
    """Two agents play a one-shot cooperative game whose payoff depends on a state s in {0, 1}.

    s is drawn afresh each step and both agents see it. Team payoff x_s[a_1] * y_s[a_2]
    (non-negative factors, so monotonic: inside QMIX's class). The best joint action is
    (0, 0) in state 0 and (2, 1) in state 1, each worth 9; the runners-up are worth 3.
    Each agent is paid half the payoff.
    """

    X = torch.tensor([[3.0, 1.0, 0.0], [0.0, 1.0, 3.0]])
    Y = torch.tensor([[3.0, 0.0, 1.0], [1.0, 3.0, 0.0]])
    BEST = {0: [0, 0], 1: [2, 1]}

    def __init__(self, n_envs: int, seed: int) -> None:
        super().__init__(n_envs, seed)
        self.spec = EnvSpec(
            n_agents=2, agent_names=("a", "b"), obs_dim=2, state_dim=2,
            action_space=ActionSpace("discrete", n=3), episode_length=5, cooperative=True,
        )
        self.s = torch.zeros(n_envs, dtype=torch.long)

    def _draw(self) -> None:
        self.s = (self.rng.uniform(1)[:, 0] < 0.5).long()

    def _observe(self) -> tuple[torch.Tensor, torch.Tensor]:
        state = torch.nn.functional.one_hot(self.s, 2).float()
        return state.unsqueeze(1).expand(-1, 2, -1).contiguous(), state

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        self._reseed(seed)
        self.t = 0
        self._draw()
        return self._observe()

    def step(self, actions: torch.Tensor) -> StepResult:
        payoff = self.X[self.s, actions[:, 0]] * self.Y[self.s, actions[:, 1]]
        self.t += 1
        self._draw()
        obs, state = self._observe()
        done = torch.full((self.n_envs,), self.t >= self.spec.episode_length)
        return StepResult(obs, state, (payoff / 2)[:, None].expand(-1, 2), done, {"payoff": payoff})

    def oracle(self) -> Oracle:
        return Oracle(values={}, summary="payoff 9", kpis={"payoff": 9.0}, team_return=45.0)

    def kpis(self, info: dict[str, torch.Tensor]) -> dict[str, float]:
        return {"payoff": info["payoff"].mean().item()}

    def get_state(self) -> dict[str, torch.Tensor]:
        return {"s": self.s.clone(), **self._rng_state()}

    def set_state(self, state: dict[str, torch.Tensor]) -> None:
        self.s = state["s"].clone()
        self._load_rng_state(state)


SMALL = QMIXHyperparameters(
    gamma=0.5, lr=3e-3, hidden=32, mixer_hidden=16, batch_size=64, buffer_size=4096,
    learning_starts=256, updates_per_step=1, eps_anneal_steps=3000, target_update_interval=50,
)


def play(algo: QMIX, env: BatchedEnv, iterations: int) -> None:
    """The trainer's loop in miniature: act, step, observe, update when ready."""
    obs, state = env.reset(0)
    for _ in range(iterations):
        out = algo.act(obs, state, explore=True)
        res = env.step(out.actions)
        algo.observe(Transition(
            obs=obs, state=state, actions=out.actions, reward=res.reward, next_obs=res.obs,
            next_state=res.state, terminated=torch.zeros_like(res.done), truncated=res.done,
        ))
        if algo.ready():
            algo.update()
        obs, state = env.reset() if bool(res.done.all()) else (res.obs, res.state)


def trained_on_matrix_game(iterations: int = 200, seed: int = 0) -> tuple[QMIX, MatrixGame]:
    torch.manual_seed(seed)
    env = MatrixGame(n_envs=32, seed=seed)
    algo = QMIX(env.spec, SMALL, torch.device("cpu"))
    play(algo, env, iterations)
    return algo, env


def both_states() -> tuple[torch.Tensor, torch.Tensor]:
    state = torch.eye(2)
    return state.unsqueeze(1).expand(-1, 2, -1).contiguous(), state


# --------------------------------------------------------------------------- the mixer


@settings(max_examples=12, deadline=None)
@given(
    n_agents=st.integers(1, 5),
    state_dim=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
    weight_scale=st.floats(0.1, 10.0),
)
def test_mixer_is_monotonic_in_every_Q_i(
    n_agents: int, state_dim: int, seed: int, weight_scale: float
) -> None:
    """dQ_total/dQ_i >= 0 for any state, any Q_i and any (rescaled, signed) hypernetwork weights."""
    g = torch.Generator().manual_seed(seed)
    mixer = QMixer(n_agents, state_dim, hidden=8)
    with torch.no_grad():
        for p in mixer.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * weight_scale)
    q = (torch.randn(64, n_agents, generator=g) * 20).requires_grad_(True)
    s = torch.randn(64, state_dim, generator=g) * 5
    mixer(q, s).sum().backward()
    assert (q.grad >= 0).all()
    w = mixer.weights(s)
    assert (w["w1"] >= 0).all() and (w["w2"] >= 0).all()


@pytest.mark.parametrize(("n_agents", "n_actions"), [(2, 2), (2, 3), (3, 2), (3, 3)])
def test_per_agent_greedy_is_the_joint_argmax_of_Q_total(n_agents: int, n_actions: int) -> None:
    """Enumerate every joint action: the best one is each agent's own argmax."""
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        mixer = QMixer(n_agents, state_dim=3, hidden=8)
        with torch.no_grad():
            for p in mixer.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        Q = torch.randn(n_agents, n_actions, generator=g)  # Q_i(o_i, a) per agent
        s = torch.randn(3, generator=g)
        joint = list(itertools.product(range(n_actions), repeat=n_agents))
        q_joint = torch.stack([Q[torch.arange(n_agents), torch.tensor(a)] for a in joint])
        Q_total = mixer(q_joint, s.expand(len(joint), -1))
        assert list(joint[int(Q_total.argmax())]) == Q.argmax(-1).tolist()


# --------------------------------------------------------------------------- the algorithm


def test_epsilon_anneals_from_start_to_end() -> None:
    torch.manual_seed(0)
    env = MatrixGame(n_envs=100, seed=0)
    algo = QMIX(env.spec, SMALL, torch.device("cpu"))
    assert algo.exploration() == ("epsilon", 1.0)
    algo.env_steps = SMALL.eps_anneal_steps // 2
    assert algo.exploration()[1] == pytest.approx((1.0 + SMALL.eps_end) / 2)
    algo.env_steps = 10 * SMALL.eps_anneal_steps
    assert algo.exploration()[1] == pytest.approx(SMALL.eps_end)


def test_solves_a_state_dependent_cooperative_matrix_game() -> None:
    algo, _ = trained_on_matrix_game(iterations=300)
    obs, state = both_states()
    greedy = algo.act(obs, state, explore=False).actions
    assert greedy.tolist() == [MatrixGame.BEST[0], MatrixGame.BEST[1]]
    # Q_total of the greedy joint action approaches the fixed point 9 + gamma * 9 + ... = 18.
    for k in (0, 1):
        assert algo.explain(obs[k : k + 1], state[k : k + 1]).Q_total == pytest.approx(
            9 / (1 - SMALL.gamma), abs=1.0
        )


def test_explain_reports_the_mixer_and_the_greedy_joint_action() -> None:
    algo, _ = trained_on_matrix_game(iterations=30)
    obs, state = both_states()
    ex = algo.explain(obs, state)
    assert isinstance(ex, QMIXExplain) and ex.gamma == SMALL.gamma
    assert len(ex.Q_i) == 2 and all(len(q) == 3 for q in ex.Q_i)
    assert ex.greedy == tuple(max(range(3), key=q.__getitem__) for q in ex.Q_i)
    assert ex.greedy_value == tuple(float(a) for a in ex.greedy)  # no levels: the index
    assert all(w >= 0 for row in ex.mixer_w1 for w in row) and min(ex.mixer_w2) >= 0
    assert len(ex.mixer_w1) == 2 and len(ex.mixer_w1[0]) == SMALL.mixer_hidden
    # Q_total is the best of all joint actions' mixed values (monotonic mixer).
    Q = torch.tensor(ex.Q_i)
    joint = torch.cartesian_prod(torch.arange(3), torch.arange(3))
    with torch.no_grad():
        mixed = algo.mixer(Q[torch.arange(2), joint], state[0].expand(len(joint), -1))
    assert ex.Q_total == pytest.approx(mixed.max().item(), abs=1e-5)
    assert ex.epsilon == algo.epsilon and isinstance(ex.y, float)


ANY_EXPLAIN = MADDPGExplain | MAPPOExplain | QMIXExplain | RandomExplain | OracleExplain


def assert_explains(algo: QMIX, ex: QMIXExplain, state: torch.Tensor) -> None:
    """ex is what algo's networks say now about copy 0 (state[0]), recomputed here."""
    spec, n, A = algo.spec, algo.spec.n_agents, algo.n_actions
    assert [len(q) for q in ex.Q_i] == [A] * n
    # a*_i = argmax_a Q_i(o_i, a), valued at its action level (fulfilment: the index).
    assert ex.greedy == tuple(max(range(A), key=q.__getitem__) for q in ex.Q_i)
    levels = spec.action_levels or tuple(float(a) for a in range(A))
    assert ex.greedy_value == tuple(float(levels[a]) for a in ex.greedy)
    # Q_total: the mixer applied to the greedy utilities reported.
    greedy_q = torch.tensor([q[a] for q, a in zip(ex.Q_i, ex.greedy, strict=True)])
    with torch.no_grad():
        assert ex.Q_total == pytest.approx(float(algo.mixer(greedy_q, state[0])), rel=1e-5, abs=1e-6)
    assert len(ex.mixer_w1) == n and len(ex.mixer_w2) == algo.hp.mixer_hidden
    assert ex.gamma == algo.hp.gamma and ex.epsilon == algo.epsilon
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(ex), type=ANY_EXPLAIN) == ex


@pytest.mark.parametrize("kind", ["pricing", "warehouse", "fulfillment"])
def test_explain_is_its_typed_struct_on_every_scenario_kind(kind: str) -> None:
    torch.manual_seed(0)
    scenario = load_scenario(kind)
    env: BatchedEnv = make_env(scenario, n_envs=8, seed=0)
    if env.spec.action_space.kind == "continuous" and needs_discrete("qmix"):
        env = DiscretisedEnv(env)  # as the trainer does: QMIX picks one of the action levels
    hp = resolve_hparams("qmix", scenario, {"learning_starts": 0, "batch_size": 8, "hidden": 16,
                                            "updates_per_step": 1})
    algo = make_algorithm("qmix", env, hp, torch.device("cpu"))
    assert isinstance(algo, QMIX)
    obs, state = env.reset(0)
    before = algo.explain(obs, state)
    assert type(before) is QMIX.explain_type is QMIXExplain
    assert before.y is None  # no update yet
    assert_explains(algo, before, state)
    out = algo.act(obs, state, explore=True)
    res = env.step(out.actions)
    algo.observe(Transition(
        obs=obs, state=state, actions=out.actions, reward=res.reward * env.spec.reward_scale,
        next_obs=res.obs, next_state=res.state, terminated=torch.zeros_like(res.done),
        truncated=res.done,
    ))
    assert algo.ready()
    algo.update()
    after = algo.explain(res.obs, res.state)
    assert isinstance(after.y, float) and after.y == algo.last_y
    assert_explains(algo, after, res.state)


def test_update_reports_the_td_quantities() -> None:
    algo, _ = trained_on_matrix_game(iterations=20)
    m = algo.update()
    for key in ("td_loss", "q_total_mean", "y_mean", "grad_norm", "epsilon", "q_i_mean"):
        assert isinstance(m[key], float)
    assert m["td_loss"] >= 0 and 0 < m["epsilon"] <= 1
    # Never a name the trainer's metrics.csv already has.
    assert not set(m) & {"env_steps", "episodes", "updates", "team_return"}
    assert not any(re.fullmatch(r"return_\d+", k) for k in m)  # return_i


def test_state_dict_round_trip_resumes_exactly() -> None:
    algo, env = trained_on_matrix_game(iterations=40, seed=1)
    blob = io.BytesIO()
    torch.save(algo.state_dict(), blob)
    blob.seek(0)
    torch.manual_seed(123)  # a different start, entirely overwritten by the load
    clone = QMIX(env.spec, SMALL, torch.device("cpu"))
    clone.load_state_dict(torch.load(blob, weights_only=True))
    obs, state = env.reset(7)
    assert torch.equal(algo.act(obs, state, False).actions, clone.act(obs, state, False).actions)
    assert torch.equal(algo.act(obs, state, True).actions, clone.act(obs, state, True).actions)
    assert algo.update() == clone.update()
    for a, b in zip(algo.Q_target.parameters(), clone.Q_target.parameters(), strict=True):
        assert torch.equal(a, b)


def test_learns_the_pricing_guide_price() -> None:
    """Smoke test on the guide's game: every store should learn to price at the cap, 10."""
    from marl_tui.train.build import build_run
    from marl_tui.train.run_config import RunConfig

    trainer = build_run(RunConfig(
        scenario=load_scenario("pricing-guide"), algo="qmix", steps=30_000, seed=0,
        overrides={"learning_starts": 2_560, "eps_anneal_steps": 15_000, "updates_per_step": 2},
    ))
    trainer.run()
    assert trainer.evaluate(episodes=1)["mean_price"] >= 9.0
