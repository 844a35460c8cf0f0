"""Agents whose actions differ in size (MPE simple_speaker_listener: a speaker with Discrete(3) or
Box(3) beside a listener with Discrete(5) or Box(5)): padding to the largest with a mask. The
mask's contents; no learner ever picks a padded action; the padding cannot change anything a
learner computes; the env receives each agent's own numbers; short runs through the CLI; the
generic panel and the why panel show each agent's own actions."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from marl_tui.algos.base import Algorithm, Transition
from marl_tui.algos.baselines import BaselineHyperparameters, RandomPolicy
from marl_tui.algos.maddpg import MADDPG, MADDPGHyperparameters
from marl_tui.algos.mappo import MAPPO, MAPPOHyperparameters
from marl_tui.algos.qmix import QMIX, QMIXHyperparameters
from marl_tui.config import load_scenario, parse_scenario
from marl_tui.envs.base import ActionSpace, EnvSpec, continuous_space
from marl_tui.envs.external.common import joint_action_space
from marl_tui.errors import UserError
from tests.test_external import EXAMPLES, needs_mpe, needs_vmas

SPEAKER_LISTENER = EXAMPLES / "speaker-listener.toml"
CONTINUOUS_TEXT = SPEAKER_LISTENER.read_text().replace("continuous_actions = false", "continuous_actions = true")
B, N, OBS = 8, 2, 6
DISCRETE = ActionSpace("discrete", n=5, per_agent=(3, 5))
CONTINUOUS = dataclasses.replace(continuous_space([0.0] * 5, [1.0] * 5), per_agent=(3, 5))
OWN = torch.tensor([[True, True, True, False, False], [True] * 5])  # speaker 3, listener 5


def spec_of(space: ActionSpace) -> EnvSpec:
    return EnvSpec(n_agents=N, agent_names=("speaker_0", "listener_0"), obs_dim=OBS, state_dim=N * OBS,
                   action_space=space, episode_length=25, cooperative=True)


# --------------------------------------------------------------------------- the space and its mask


def test_agents_of_different_sizes_share_the_largest_space_with_a_mask() -> None:
    space = joint_action_space([ActionSpace("discrete", n=3), ActionSpace("discrete", n=5)], "x")
    assert space == DISCRETE and space.size(0) == 3 and space.own(0) == ActionSpace("discrete", n=3)
    assert space.describe() == "discrete(3) | discrete(5)"
    assert torch.equal(spec_of(space).action_mask(), OWN)
    box = joint_action_space([continuous_space([0.0] * 3, [1.0] * 3), continuous_space([0.0] * 5, [1.0] * 5)], "x")
    assert box == CONTINUOUS and box.dims == 5 and box.own(0).dims == 3
    assert box.describe() == "continuous[0, 1]^3 | continuous[0, 1]^5"
    assert torch.equal(spec_of(box).action_mask(), OWN)


def test_one_shared_space_stays_as_it_was() -> None:
    shared = ActionSpace("discrete", n=5)
    assert joint_action_space([shared, shared, shared], "x") is shared and shared.per_agent == ()
    spec = dataclasses.replace(spec_of(shared), n_agents=3)
    assert spec.action_mask().shape == (3, 5) and bool(spec.action_mask().all())


@pytest.mark.parametrize(("spaces", "words"), [
    ([ActionSpace("discrete", n=3), continuous_space([0.0] * 5, [1.0] * 5)],
     ["agent 1 acts in continuous[0, 1]^5 but agent 0 in discrete(3)", "all discrete or all continuous"]),
    ([continuous_space([0.0] * 3, [1.0] * 3), continuous_space([-1.0] * 5, [1.0] * 5)],
     ["number 0 of agent 1's action lies in [-1, 1] but agent 0's in [0, 1]", "give them the same bounds"]),
])
def test_what_cannot_be_padded_is_refused_in_one_line(spaces: list[ActionSpace], words: list[str]) -> None:
    with pytest.raises(UserError) as exc:
        joint_action_space(spaces, "where.toml")
    text = str(exc.value)
    assert "\n" not in text and text.startswith("where.toml: ") and all(w in text for w in words)


# --------------------------------------------------------------------------- the learners

SHORT: dict[str, Any] = {
    "maddpg": (MADDPG, MADDPGHyperparameters(learning_starts=4 * B, batch_size=16, updates_per_step=1,
                                              noise_std=0.5, noise_final=0.5)),
    "mappo": (MAPPO, MAPPOHyperparameters(rollout_length=4, minibatches=2, epochs=1)),
    "qmix": (QMIX, QMIXHyperparameters(learning_starts=4 * B, batch_size=16, updates_per_step=1,
                                        eps_start=0.5, eps_end=0.5)),
}
# The nets whose outputs score or are actions: a bump on their padded outputs must change nothing.
NETS = {"maddpg": ("mu", "mu_target"), "mappo": ("policy.net",), "qmix": ("Q", "Q_target")}


def build(algo: str, space: ActionSpace, bump: float) -> Algorithm:
    """A learner for the speaker and listener whose nets add `bump` to every padded output (what
    an untrained or diverged net might put there), so a padded action would win any unmasked
    argmax or softmax."""
    cls, hp = SHORT[algo]
    torch.manual_seed(0)
    learner = cls(spec_of(space), hp, torch.device("cpu"))
    for path in NETS[algo]:
        net = learner
        for attr in path.split("."):
            net = getattr(net, attr)
        forward = net.forward
        net.forward = lambda x, forward=forward: forward(x) + bump * (~OWN).float()  # type: ignore[method-assign]
    return learner


def drive(learner: Algorithm, steps: int) -> tuple[list[torch.Tensor], list[dict[str, float]]]:
    """Act (exploring, then greedily), observe and update on random observations."""
    gen = torch.Generator().manual_seed(1)
    obs, state = torch.randn(B, N, OBS, generator=gen), torch.randn(B, N * OBS, generator=gen)
    actions, metrics = [], []
    for _ in range(steps):
        out = learner.act(obs, state, explore=True)
        actions += [out.actions, learner.act(obs, state, explore=False).actions]
        next_obs, next_state = torch.randn(B, N, OBS, generator=gen), torch.randn(B, N * OBS, generator=gen)
        learner.observe(Transition(obs=obs, state=state, actions=out.actions, reward=torch.randn(B, N, generator=gen),
                                   next_obs=next_obs, next_state=next_state, terminated=torch.zeros(B),
                                   truncated=torch.zeros(B, dtype=torch.bool), extras=out.extras))
        if learner.ready():
            metrics.append(learner.update())
        obs, state = next_obs, next_state
    return actions, metrics


@pytest.mark.parametrize("algo", ["maddpg", "mappo", "qmix"])
def test_no_learner_ever_picks_a_padded_discrete_action(algo: str) -> None:
    actions, metrics = drive(build(algo, DISCRETE, bump=50.0), 40)
    assert metrics  # it learned, so the greedy and exploring actions after updates are covered too
    taken = torch.stack(actions)  # [2 x steps, B, N]
    assert taken[..., 0].max() <= 2 and taken[..., 1].max() <= 4 and taken.min() >= 0
    assert set(taken[..., 0].unique().tolist()) == {0, 1, 2}  # the speaker still uses all its own


@pytest.mark.parametrize(("algo", "space"), [(a, DISCRETE) for a in ("maddpg", "mappo", "qmix")]
                         + [(a, CONTINUOUS) for a in ("maddpg", "mappo")])
def test_the_padding_cannot_change_what_a_learner_does_or_learns(algo: str, space: ActionSpace) -> None:
    """Same seed, same data: the nets' padded outputs at 0 or at 50 give the same actions (each
    agent's own entries), the same losses, targets and entropies, to the bit."""
    plain, bumped = (drive(build(algo, space, bump), 30) for bump in (0.0, 50.0))
    for a, b in zip(plain[0], bumped[0], strict=True):
        if space.kind == "discrete":
            assert torch.equal(a, b)
        else:
            assert torch.equal(a[..., 1, :], b[..., 1, :]) and torch.equal(a[..., 0, :3], b[..., 0, :3])
    assert plain[1] and plain[1] == bumped[1]


def test_the_random_baseline_draws_each_agents_own_actions_uniformly() -> None:
    torch.manual_seed(0)
    policy = RandomPolicy(spec_of(DISCRETE), BaselineHyperparameters(), torch.device("cpu"))
    a = torch.cat([policy.act(torch.zeros(500, N, OBS), torch.zeros(500, N * OBS), explore=e).actions
                   for e in (True, False)])
    assert torch.bincount(a[:, 0], minlength=5)[3:].sum() == 0
    assert torch.bincount(a[:, 0]).min() > 250 and torch.bincount(a[:, 1]).min() > 150  # ~333 and ~200 each


@pytest.mark.parametrize("algo", ["maddpg", "mappo", "qmix"])
def test_the_why_numbers_hold_each_agents_own_actions(algo: str) -> None:
    learner = build(algo, DISCRETE, bump=50.0)
    drive(learner, 12)
    ex = learner.explain(torch.randn(1, N, OBS), torch.randn(1, N * OBS))
    rows = {"maddpg": "dQ_da_onehot", "mappo": "probs", "qmix": "Q_i"}[algo]
    assert [len(r) for r in getattr(ex, rows)] == [3, 5]
    if algo == "mappo":
        assert all(abs(sum(p) - 1) < 1e-5 for p in ex.probs)  # a distribution over its own actions
    else:
        assert ex.greedy[0] < 3


# --------------------------------------------------------------------------- the env


@needs_mpe
@pytest.mark.parametrize("continuous", [False, True])
def test_the_env_gets_each_agents_own_action(continuous: bool) -> None:
    from mpe2 import simple_speaker_listener_v4

    from marl_tui.envs.external.pettingzoo import PettingZooBatched

    received: list[dict[str, Any]] = []

    def make() -> Any:
        env = simple_speaker_listener_v4.parallel_env(continuous_actions=continuous)
        step = env.step

        def recording(actions: dict[str, Any]) -> Any:
            received.append(actions)
            return step(actions)

        env.step = recording  # type: ignore[method-assign]
        return env

    env = PettingZooBatched(make, n_envs=2, seed=0)
    assert env.spec.action_space == (CONTINUOUS if continuous else DISCRETE)
    assert env.spec.obs_dim == 11  # the speaker's 3 numbers zero-padded to the listener's 11
    env.reset()
    if continuous:
        a = torch.rand(2, N, 5, generator=torch.Generator().manual_seed(0))
    else:
        a = torch.tensor([[2, 4], [0, 3]])
    env.step(a)
    assert len(received) == 2
    for b, acts in enumerate(received):
        if continuous:
            assert np.asarray(acts["speaker_0"]).shape == (3,) and np.asarray(acts["listener_0"]).shape == (5,)
            assert np.allclose(acts["speaker_0"], a[b, 0, :3].numpy()) and np.allclose(acts["listener_0"], a[b, 1])
        else:
            assert (acts["speaker_0"], acts["listener_0"]) == tuple(a[b].tolist())


VMAS_SPEAKER_LISTENER = """name = "vmas-speaker-listener"
kind = "vmas"
scenario = "simple_speaker_listener"
description = "test"
agents = 2
episode_length = 10
parallel_envs = 3
seed = 0

[model]
continuous_actions = true
"""


@needs_vmas
def test_vmas_gets_each_agents_own_numbers() -> None:
    """VMAS's speaker moves and speaks (5 numbers: 2 forces in [-1, 1], 3 words in [0, 1]); its
    listener only moves (2 forces): the listener's 3 padded numbers never reach VMAS."""
    from marl_tui.envs.base import make_env

    env = make_env(parse_scenario(VMAS_SPEAKER_LISTENER, "vmas.toml"))
    space = env.spec.action_space
    assert space.per_agent == (5, 2) and space.dim_range(0) == (-1.0, 1.0) and space.dim_range(4) == (0.0, 1.0)
    received: list[list[torch.Tensor]] = []
    step = env.env.step
    env.env.step = lambda actions: received.append(actions) or step(actions)
    env.reset()
    a = torch.rand(3, N, 5, generator=torch.Generator().manual_seed(0))
    res = env.step(a)
    (per_agent,) = received
    assert [t.shape for t in per_agent] == [(3, 5), (3, 2)]
    assert torch.equal(per_agent[0], a[:, 0]) and torch.equal(per_agent[1], a[:, 1, :2])
    assert res.reward.shape == (3, N)


@needs_mpe
@pytest.mark.parametrize("continuous", [False, True])
def test_the_wrapped_env_passes_pettingzoos_parallel_api_test(continuous: bool) -> None:
    """Our batched speaker-listener seen again as a ParallelEnv: each agent's own space, unpadded."""
    from pettingzoo.test import parallel_api_test

    from marl_tui.envs.external.pettingzoo import ScenarioParallelEnv

    text = CONTINUOUS_TEXT if continuous else SPEAKER_LISTENER.read_text()
    env = ScenarioParallelEnv(parse_scenario(text, "speaker-listener.toml"))
    sizes = [env.action_space(a).shape[0] if continuous else env.action_space(a).n for a in env.possible_agents]
    assert sizes == [3, 5]
    parallel_api_test(env, num_cycles=30)


# --------------------------------------------------------------------------- end to end

SHORT_TRAIN = """
[train.maddpg]
learning_starts = 400
batch_size = 64
[train.qmix]
learning_starts = 400
batch_size = 64
[train.mappo]
rollout_length = 16
"""


@needs_mpe
@pytest.mark.parametrize(("algo", "continuous"), [("mappo", False), ("maddpg", False), ("qmix", False),
                                                  ("random", False), ("mappo", True), ("maddpg", True)])
def test_a_short_run_on_speaker_listener_through_the_cli(algo: str, continuous: bool, cli, tmp_path: Path) -> None:
    f = tmp_path / "speaker-listener.toml"
    f.write_text((CONTINUOUS_TEXT if continuous else SPEAKER_LISTENER.read_text()) + SHORT_TRAIN)
    out = tmp_path / "run"
    code, _, err = cli("train", f, "--algo", algo, "--steps", "1200", "--envs", "4", "--out", out)
    assert code == 0, err
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"
    last = list(csv.DictReader((out / "metrics.csv").open()))[-1]
    assert algo == "random" or int(last["updates"]) > 0


@needs_mpe
def test_qmix_refuses_continuous_speaker_listener_in_one_line(cli, tmp_path: Path) -> None:
    from tests.test_cli_bad_inputs import assert_refused

    f = tmp_path / "speaker-listener.toml"
    f.write_text(CONTINUOUS_TEXT)
    assert_refused(cli("train", f, "--algo", "qmix", "--steps", "100", "--out", tmp_path / "out"),
                   "QMIX needs discrete actions")


def test_the_example_file_parses() -> None:
    sc = load_scenario(str(SPEAKER_LISTENER))
    assert sc.kind == "pettingzoo" and sc.agents == 2
    assert sc.model.target == "mpe2.simple_speaker_listener_v4:parallel_env"


# --------------------------------------------------------------------------- the panels


def test_the_generic_panel_shows_each_agents_own_actions() -> None:
    from marl_tui.stream.frames import StepScene
    from marl_tui.tui.widgets.external import ExternalPanel
    from marl_tui.tui.widgets.scene import SceneData
    from marl_tui.tui.widgets.why import WhyData, why_text

    names = ("speaker_0", "listener_0")
    discrete = tuple(StepScene(step=k, env_steps=k, episode=0, t=k, actions=(k % 3, 4.0), reward=(-1.0, -1.0),
                               info={"obs": (0.0,) * 22}) for k in range(1, 7))
    text = ExternalPanel().lines(SceneData(record=discrete[-1], recent=discrete, agent_names=names,
                                           episode_length=25, discrete_actions=5, action_sizes=(3, 5)), 60).plain
    rows = {line.split()[0]: line for line in text.splitlines() if "▁" in line or "█" in line or "·" in line}
    assert "3" not in rows["speaker_0"].split(maxsplit=1)[1]  # the speaker's histogram: 0 1 2 only
    assert rows["listener_0"].rstrip().endswith("4█")
    # Continuous: the speaker's 3 numbers, the listener's 5; the padding is in no figure.
    vec = tuple(StepScene(step=k, env_steps=k, episode=0, t=k, actions=(0.3, 0.0), reward=(-1.0, -1.0),
                          info={"obs": (0.0,) * 22}, action_vectors=((0.3, 0.4, 0.0, 9.0, 9.0), (0.0,) * 5))
                for k in range(1, 4))
    text = ExternalPanel().lines(SceneData(record=vec[-1], recent=vec, agent_names=names, episode_length=25,
                                           action_sizes=(3, 5)), 70).plain
    assert "actions: 3 | 5 numbers per agent" in text
    assert "+0.30 +0.40 +0.00\n" in text and "+9.00" not in text
    assert " 0.5 " in text  # the speaker's ‖a‖ over its own 3 numbers (with the padding: 12.7)
    why = why_text(WhyData(explain=None, algo="mappo", agent_names=names, action_dims=5, action_sizes=(3, 5)), 60)
    assert "actions are 3 | 5 numbers per agent" in why.plain


def test_maddpgs_slope_rows_fit_the_why_panel_with_long_agent_names() -> None:
    """At 120×40 the why panel is 46 columns: 'speaker_0'/'listener_0' and a push towards one of
    5 actions fit on one line each (they used to wrap the push onto a line of its own)."""
    from rich.cells import cell_len

    from marl_tui.tui.widgets.why import WhyData, why_text

    learner = build("maddpg", DISCRETE, bump=0.0)
    drive(learner, 12)
    ex = learner.explain(torch.randn(1, N, OBS), torch.randn(1, N * OBS))
    text = why_text(WhyData(explain=ex, algo="maddpg", agent_names=("speaker_0", "listener_0"), kind="pettingzoo",
                            action_sizes=(3, 5)), 46).plain
    rows = [line for line in text.splitlines() if "→" in line or line.rstrip().endswith("push")]
    assert len(rows) == 3 and all(cell_len(line) <= 46 for line in rows), rows
