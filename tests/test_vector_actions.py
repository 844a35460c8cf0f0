"""Continuous actions of d > 1 numbers per agent (MPE's and VMAS's forces): the learners' shapes,
the adapters, the frames and the panels. One-number actions are covered, unchanged, by the
tests of each scenario (byte-exact resume included)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from marl_tui.algos.base import Transition
from marl_tui.algos.maddpg import MADDPG, MADDPGExplain, MADDPGHyperparameters
from marl_tui.algos.mappo import MAPPO, MAPPOExplain, MAPPOHyperparameters
from marl_tui.config import load_scenario
from marl_tui.envs.base import ActionSpace, EnvSpec, continuous_space
from marl_tui.train.build import build_run
from marl_tui.train.framing import scenes
from marl_tui.train.loop import StepOutcome
from marl_tui.train.run_config import RunConfig
from tests.test_cli_bad_inputs import assert_refused
from tests.test_external import NAVIGATION, SPREAD, needs_mpe, needs_vmas

B, N, OBS, D = 6, 2, 4, 3
# Per-dim bounds that differ: every dim must land in its own.
SPACE = continuous_space([0.0, -1.0, 10.0], [1.0, 1.0, 20.0])
SPEC = EnvSpec(n_agents=N, agent_names=("a", "b"), obs_dim=OBS, state_dim=N * OBS, action_space=SPACE,
               episode_length=5)


def test_a_box_of_shared_bounds_is_one_range_and_per_dim_bounds_are_kept() -> None:
    same = continuous_space([-1.0, -1.0], [1.0, 1.0])
    assert same == ActionSpace("continuous", low=-1.0, high=1.0, dims=2)
    assert same.bounds() == (-1.0, 1.0) and same.describe() == "continuous[-1, 1]^2"
    low, high = SPACE.bounds()
    assert low.tolist() == [0.0, -1.0, 10.0] and high.tolist() == [1.0, 1.0, 20.0]
    assert SPACE.dim_range(2) == (10.0, 20.0) and "× [10, 20]" in SPACE.describe()


def _within_bounds(a: torch.Tensor) -> bool:
    low, high = SPACE.bounds()
    return bool(((a >= low) & (a <= high)).all())


def _drive(algo: MADDPG | MAPPO, steps: int) -> list[dict[str, float]]:
    """Act, observe and update on random observations; the updates' metrics."""
    torch.manual_seed(0)
    obs, state = torch.randn(B, N, OBS), torch.randn(B, N * OBS)
    metrics = []
    for _ in range(steps):
        out = algo.act(obs, state, explore=True)
        assert out.actions.shape == (B, N, D) and _within_bounds(out.actions)
        next_obs, next_state = torch.randn(B, N, OBS), torch.randn(B, N * OBS)
        algo.observe(Transition(obs=obs, state=state, actions=out.actions, reward=-out.actions[..., 0] ** 2,
                                next_obs=next_obs, next_state=next_state, terminated=torch.zeros(B),
                                truncated=torch.zeros(B, dtype=torch.bool), extras=out.extras))
        if algo.ready():
            metrics.append(algo.update())
        obs, state = next_obs, next_state
    greedy = algo.act(obs, state, explore=False).actions
    assert greedy.shape == (B, N, D) and _within_bounds(greedy)
    return metrics


def test_maddpg_acts_learns_and_explains_with_vector_actions() -> None:
    torch.manual_seed(0)
    algo = MADDPG(SPEC, MADDPGHyperparameters(learning_starts=12, batch_size=8, updates_per_step=1),
                  torch.device("cpu"))
    # Critic i sees s, every o_j and every agent's d-vector.
    assert algo.Q_target(torch.zeros(1, N, N * OBS + N * OBS + N * D)).shape == (1, N, 1)
    metrics = _drive(algo, 8)
    assert metrics and all(math.isfinite(m["critic_loss"]) for m in metrics)
    ex = algo.explain(torch.randn(1, N, OBS), torch.randn(1, N * OBS))
    assert isinstance(ex, MADDPGExplain) and len(ex.mu_i) == N and len(ex.dQ_da) == N
    assert all(0.0 <= m <= 1.0 for m in ex.mu_i)  # the first number's bounds


def test_mappo_is_a_diagonal_gaussian_whose_log_prob_sums_the_dims() -> None:
    torch.manual_seed(0)
    algo = MAPPO(SPEC, MAPPOHyperparameters(rollout_length=4, minibatches=1, epochs=1), torch.device("cpu"))
    assert algo.policy.log_std.shape == (N, D)
    obs = torch.randn(B, N, OBS)
    out = algo.act(obs, torch.randn(B, N * OBS), explore=True)
    u = out.extras["u"]
    assert u.shape == (B, N, D) and out.extras["log_prob"].shape == (B, N)
    log_prob, entropy = algo.policy.log_prob_entropy(obs, u)
    mu, sigma = algo.policy(obs), algo.policy.log_std.exp()
    by_dim = torch.distributions.Normal(mu, sigma).log_prob(u).sum(-1)
    assert torch.allclose(log_prob, by_dim, atol=1e-5) and torch.allclose(out.extras["log_prob"], by_dim, atol=1e-5)
    assert torch.allclose(entropy, torch.distributions.Normal(mu, sigma).entropy().sum(-1), atol=1e-5)
    metrics = _drive(algo, 8)
    assert len(metrics) == 2 and all(math.isfinite(m["policy_loss"]) for m in metrics)
    assert metrics[-1]["action_std"] > 0
    ex = algo.explain(obs, torch.randn(B, N * OBS))
    assert isinstance(ex, MAPPOExplain) and len(ex.mean) == N and len(ex.std) == N
    assert all(0.0 <= m <= 1.0 for m in ex.mean)  # the first number's bounds


def test_frames_keep_every_agents_vector_and_its_first_number() -> None:
    acts = torch.tensor([[[0.1, 0.2, 15.0], [0.3, -0.4, 11.0]]])
    step = StepOutcome(obs=torch.zeros(1, N, OBS), state=torch.zeros(1, N * OBS), actions=acts, native_actions=acts,
                       reward=torch.zeros(1, N), info={"team_reward": torch.zeros(1)}, step=1, env_steps=1,
                       episode=0, t=1)
    (scene,) = scenes([step])
    assert scene.actions == pytest.approx((0.1, 0.3))
    assert [list(v) for v in scene.action_vectors] == [pytest.approx([0.1, 0.2, 15.0]),
                                                       pytest.approx([0.3, -0.4, 11.0])]


def test_the_panels_show_vector_actions_without_crashing() -> None:
    from marl_tui.stream.frames import StepScene
    from marl_tui.tui.widgets.external import ExternalPanel
    from marl_tui.tui.widgets.scene import SceneData
    from marl_tui.tui.widgets.why import WhyData, why_text

    steps = tuple(StepScene(step=k, env_steps=k, episode=0, t=k, actions=(0.3, 0.0), reward=(-1.0, -1.0),
                            info={"obs": (0.0, 1.0)}, action_vectors=((0.3, 0.4, 0.0), (0.0, 0.0, 0.1 * k)))
                  for k in range(1, 4))
    text = ExternalPanel().lines(SceneData(record=steps[-1], recent=steps, agent_names=("a", "b"),
                                           episode_length=10, kpis={}), 60).plain
    assert "‖a‖" in text and "0.5" in text  # agent a's norm: sqrt(0.3² + 0.4²)
    assert "3 numbers per agent" in text and "+0.30 +0.40 +0.00" in text
    assert "action norms ‖a‖ over the last 3 steps" in text
    torch.manual_seed(0)
    algo = MADDPG(SPEC, MADDPGHyperparameters(), torch.device("cpu"))
    why = why_text(WhyData(explain=algo.explain(torch.randn(1, N, OBS), torch.randn(1, N * OBS)), algo="maddpg",
                           agent_names=("a", "b"), actions=steps[-1].actions, action_dims=D), 60).plain
    assert f"actions are {D} numbers per agent: figures show the first one" in why


# --------------------------------------------------------------------------- on the real envs

# The external tests' files, with the envs' own continuous actions: vectors (MPE 5 numbers, VMAS 2).
SPREAD_CONTINUOUS = SPREAD + "\n[model]\ncontinuous_actions = true\n"
NAVIGATION_CONTINUOUS = NAVIGATION.replace("continuous_actions = false", "continuous_actions = true")
SHORT = {"maddpg": {"learning_starts": 400, "batch_size": 64, "updates_per_step": 1},
         "mappo": {"rollout_length": 16}}


def _short_run(text: str, algo: str, tmp_path: Path, steps: int) -> tuple[object, dict[str, float]]:
    f = tmp_path / "vec.toml"
    f.write_text(text)
    trainer = build_run(RunConfig(scenario=load_scenario(str(f)), algo=algo, steps=steps, n_envs=8, seed=1,
                                  overrides=SHORT[algo]))
    stats = trainer.run()
    assert stats.status == "finished" and stats.updates > 0
    kpis = trainer.evaluate(episodes=2)
    assert kpis is not None
    return trainer, kpis


@needs_mpe
@pytest.mark.parametrize("algo", ["maddpg", "mappo"])
def test_short_training_on_continuous_simple_spread(algo: str, tmp_path: Path) -> None:
    trainer, kpis = _short_run(SPREAD_CONTINUOUS, algo, tmp_path, 2_000)
    assert trainer.env.spec.action_space == ActionSpace("continuous", low=0.0, high=1.0, dims=5)
    assert -500 < kpis["team_return"] < 0  # distances to landmarks: negative
    last = trainer.loop.recent[-1]
    assert last.native_actions.shape == (8, 3, 5)
    # Same seed, same numbers (CPU).
    _, again = _short_run(SPREAD_CONTINUOUS, algo, tmp_path, 2_000)
    assert again == kpis


@needs_vmas
@pytest.mark.parametrize("algo", ["maddpg", "mappo"])
def test_short_training_on_vmas_navigation_with_continuous_forces(algo: str, tmp_path: Path) -> None:
    trainer, kpis = _short_run(NAVIGATION_CONTINUOUS, algo, tmp_path, 1_600)
    assert trainer.env.spec.action_space == ActionSpace("continuous", low=-1.0, high=1.0, dims=2)
    assert math.isfinite(kpis["team_return"])
    assert trainer.loop.recent[-1].native_actions.shape == (8, 2, 2)


@needs_mpe
def test_qmix_refuses_vector_actions_in_one_line(cli, tmp_path: Path) -> None:
    f = tmp_path / "vec.toml"
    f.write_text(SPREAD_CONTINUOUS)
    assert_refused(cli("train", f, "--algo", "qmix", "--steps", "100", "--out", tmp_path / "out"),
                   "QMIX needs discrete actions", "use mappo or maddpg")


def test_one_number_actions_keep_their_shapes_and_float_storage() -> None:
    """d = 1 (the bundled scenarios): [B, N] actions, and the replay buffer stores floats (an
    integer buffer would round every price)."""
    one = EnvSpec(n_agents=N, agent_names=("a", "b"), obs_dim=OBS, state_dim=N * OBS,
                  action_space=ActionSpace("continuous", low=1.0, high=60.0), episode_length=5)
    torch.manual_seed(0)
    algo = MADDPG(one, MADDPGHyperparameters(), torch.device("cpu"))
    assert algo.buffer.data["actions"].shape[1:] == (N,) and algo.buffer.data["actions"].dtype == torch.float32
    assert algo.act(torch.randn(B, N, OBS), torch.randn(B, N * OBS), explore=True).actions.shape == (B, N)
    mappo = MAPPO(one, MAPPOHyperparameters(), torch.device("cpu"))
    assert mappo.policy.log_std.shape == (N,)
    assert mappo.act(torch.randn(B, N, OBS), torch.randn(B, N * OBS), explore=True).actions.shape == (B, N)
