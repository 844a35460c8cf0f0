"""External environments as scenarios: PettingZoo (mpe2's simple_spread) and VMAS (navigation).

CI installs mpe2 and vmas (.ci/run), so nothing here is skipped there; on a machine without
them the tests that need a package skip, and the missing-extra errors are still checked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from marl_tui.catalogue import find_scenario
from marl_tui.config import EXTERNAL_COPIES, has_oracle, load_scenario
from marl_tui.envs.base import make_env
from marl_tui.errors import UserError
from marl_tui.train.build import build_run
from marl_tui.train.run_config import RunConfig
from tests.test_cli_bad_inputs import assert_refused

EXAMPLES = Path(__file__).resolve().parent.parent / "scenarios" / "external"


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


needs_mpe = pytest.mark.skipif(not _installed("mpe2"), reason="mpe2 is not installed")
needs_vmas = pytest.mark.skipif(not _installed("vmas"), reason="vmas is not installed")

SPREAD = """name = "spread"
kind = "pettingzoo"
env = "mpe2.simple_spread_v3:parallel_env"
description = "test"
agents = 3
episode_length = 25
parallel_envs = 4
seed = 0
"""
NAVIGATION = """name = "nav"
kind = "vmas"
scenario = "navigation"
description = "test"
agents = 2
episode_length = 20
parallel_envs = 4
seed = 0

[model]
n_agents = 2
continuous_actions = false
"""


# --------------------------------------------------------------------------- the schema


def test_external_files_parse_without_importing_their_packages() -> None:
    sc = load_scenario(str(EXAMPLES / "simple-spread.toml"))
    assert sc.kind == "pettingzoo" and sc.model.target == "mpe2.simple_spread_v3:parallel_env"
    assert sc.model.kwargs["N"] == 3 and not has_oracle(sc.kind)
    nav = load_scenario(str(EXAMPLES / "vmas-navigation.toml"))
    assert nav.kind == "vmas" and nav.model.target == "navigation"
    assert nav.model.kwargs == {"n_agents": 3, "continuous_actions": False}


@needs_mpe
def test_shorthand_reads_agents_and_horizon_from_the_env() -> None:
    sc = find_scenario("pettingzoo:mpe2.simple_spread_v3")
    assert (sc.agents, sc.episode_length, sc.parallel_envs) == (3, 25, EXTERNAL_COPIES)
    assert sc.model.target == "mpe2.simple_spread_v3:parallel_env"
    assert find_scenario(sc.source).text == sc.text  # the same scenario every time


def test_info_on_a_shorthand_has_no_file_to_rename(cli) -> None:
    """The name-differs-from-the-file note is for copied files; a shorthand names no file."""
    code, out, _ = cli("info", "pettingzoo:mpe2.simple_spread_v3", "--json")
    assert code == 0 and len(json.loads(out)["agents"]) == 3 and "note" not in json.loads(out)


@needs_vmas
def test_vmas_shorthand_uses_discrete_actions() -> None:
    sc = find_scenario("vmas:navigation")
    env = make_env(sc, n_envs=2)
    assert env.spec.action_space.kind == "discrete" and env.spec.n_agents == sc.agents


# --------------------------------------------------------------------------- the adapters


@needs_vmas
def test_vmas_is_batched_deterministic_and_leaves_the_global_generator_alone(tmp_path: Path) -> None:
    f = tmp_path / "nav.toml"
    f.write_text(NAVIGATION)
    sc = load_scenario(str(f))
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        before = torch.get_rng_state()
        env = make_env(sc, n_envs=3, seed=5)
        obs, state = env.reset()
        assert torch.equal(torch.get_rng_state(), before)  # VMAS drew from its own stream
        res = env.step(torch.randint(0, env.spec.action_space.n, (3, 2), generator=torch.Generator().manual_seed(0)))
        runs.append((obs, res.obs, res.reward))
        assert obs.shape == (3, 2, env.spec.obs_dim) and state.shape == (3, env.spec.state_dim)
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))
    other = make_env(sc, n_envs=3, seed=6)
    assert not torch.equal(other.reset()[0], runs[0][0])


@needs_vmas
def test_vmas_copies_that_finish_early_wait_with_zero_reward(tmp_path: Path) -> None:
    f = tmp_path / "nav.toml"
    f.write_text(NAVIGATION)
    env = make_env(load_scenario(str(f)), n_envs=2, seed=0)
    env.reset()
    env._over[0] = True  # copy 0 ended (every agent at its goal)
    before = env._obs[0].clone()
    res = env.step(torch.zeros(2, 2, dtype=torch.long))
    assert torch.equal(res.reward[0], torch.zeros(2)) and torch.equal(res.obs[0], before)


@needs_mpe
def test_pettingzoo_agents_with_different_observation_sizes_are_padded() -> None:
    simple_adversary = pytest.importorskip("mpe2.simple_adversary_v3")
    from marl_tui.envs.external.pettingzoo import PettingZooBatched

    env = PettingZooBatched(simple_adversary.parallel_env, n_envs=2, seed=0)
    sizes = [simple_adversary.parallel_env().observation_space(a).shape[0] for a in env.agent_ids]
    assert len(set(sizes)) > 1 and env.spec.obs_dim == max(sizes)
    obs, _ = env.reset()
    small = sizes.index(min(sizes))
    assert torch.all(obs[:, small, min(sizes):] == 0)


@needs_mpe
def test_continuous_simple_spread_seen_as_a_parallel_env_passes_the_api_test() -> None:
    """Our batched env back behind PettingZoo's API: each agent's Box of 5 forces goes through whole."""
    from pettingzoo.test import parallel_api_test

    from marl_tui.config import parse_scenario
    from marl_tui.envs.external.pettingzoo import ScenarioParallelEnv

    env = ScenarioParallelEnv(parse_scenario(SPREAD + "\n[model]\ncontinuous_actions = true\n", "spread.toml"))
    assert all(env.action_space(a).shape == (5,) for a in env.possible_agents)
    parallel_api_test(env, num_cycles=30)


# --------------------------------------------------------------------------- training, end to end


@needs_mpe
@pytest.mark.parametrize("algo", ["qmix", "maddpg"])
def test_short_training_on_simple_spread(algo: str) -> None:
    sc = load_scenario(str(EXAMPLES / "simple-spread.toml"))
    trainer = build_run(RunConfig(scenario=sc, algo=algo, steps=3_000, n_envs=8, seed=1,
                                  overrides={"learning_starts": 500, "batch_size": 64}))
    stats = trainer.run()
    assert stats.status == "finished" and stats.updates > 0
    kpis = trainer.evaluate(episodes=3)
    assert kpis is not None and -500 < kpis["team_return"] < 0  # distances to landmarks: negative


@needs_vmas
def test_short_training_on_vmas_navigation(tmp_path: Path) -> None:
    f = tmp_path / "nav.toml"
    f.write_text(NAVIGATION)
    trainer = build_run(RunConfig(scenario=load_scenario(str(f)), algo="mappo", steps=3_200, n_envs=8, seed=1))
    stats = trainer.run()
    assert stats.status == "finished" and stats.updates > 0


@needs_mpe
def test_train_resume_eval_on_an_external_env_through_the_cli(cli, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, stdout, err = cli("train", "pettingzoo:mpe2.simple_spread_v3", "--algo", "mappo", "--steps", "1600",
                            "--envs", "4", "--out", out)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["oracle_team_return"] is None and not summary["has_oracle"]
    code, stdout, err = cli("resume", out, "--steps", "2400")
    assert code == 0, err
    code, stdout, err = cli("eval", out, "--episodes", "6")
    assert code == 0, err
    result = json.loads((out / "eval.json").read_text())
    assert result["episodes"] == 6 and result["copies"] == 3  # 2 rounds of 3 copies: exactly 6
    code, stdout, err = cli("info", "pettingzoo:mpe2.simple_spread_v3", "--json")
    assert code == 0 and json.loads(stdout)["has_oracle"] is False


# --------------------------------------------------------------------------- bad input


BAD = [
    (SPREAD.replace("mpe2.simple_spread_v3:parallel_env", "nosuchpackage.envs:parallel_env"),
     ["no module named 'nosuchpackage'"], None),
    (SPREAD.replace(":parallel_env", ":paralel_env"), ["has no 'paralel_env' (did you mean 'parallel_env'?)"], "mpe2"),
    (SPREAD.replace(":parallel_env", ":env"), ["not a PettingZoo ParallelEnv"], "mpe2"),
    (SPREAD + "\n[model]\nbogus = 1\n", ["raised TypeError", "check [model]"], "mpe2"),
    (SPREAD.replace("agents = 3", "agents = 4"), ["has 3 agents", "set agents = 3"], "mpe2"),
    (SPREAD.replace('env = "mpe2.simple_spread_v3:parallel_env"', 'env = "mpe2"'),
     ["'module:function'"], None),
    (SPREAD.replace('env = "mpe2.simple_spread_v3:parallel_env"\n', ""), ["missing key 'env'"], None),
    (SPREAD.replace('env = "mpe2', 'scenario = "x"\nenv = "mpe2'), ["unknown key 'scenario'"], None),
    (NAVIGATION.replace('scenario = "navigation"', 'scenario = "navigaton"'),
     ["no VMAS scenario named 'navigaton' (did you mean 'navigation'?)"], "vmas"),
    (NAVIGATION + "num_envs = 3\n", ["model.num_envs is set by marl-tui", "parallel_envs"], "vmas"),
]


@pytest.mark.parametrize(("text", "words", "package"), BAD, ids=range(len(BAD)))
def test_bad_external_scenario(text: str, words: list[str], package: str | None, cli, tmp_path: Path) -> None:
    if package and not _installed(package):
        pytest.skip(f"{package} is not installed")
    f = tmp_path / "bad.toml"
    f.write_text(text)
    assert_refused(cli("train", f, "--steps", "100", "--out", tmp_path / "out"), *words)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("shorthand", "words"), [
    ("pettingzoo:nosuchpackage", ["no module named 'nosuchpackage'"]),
    ("pettingzoo:mpe2.simple_spread_v3:nope", ["has no 'nope'"]),
    ("pettingzoo:not a module", ["'module:function'"]),
    ("vmas:nosuch", ["no VMAS scenario named 'nosuch'"]),
])
def test_bad_shorthand(shorthand: str, words: list[str], cli) -> None:
    if "vmas" in shorthand and not _installed("vmas"):
        pytest.skip("vmas is not installed")
    assert_refused(cli("info", shorthand), *words)


@pytest.mark.parametrize(("kind", "package"), [("vmas", "vmas"), ("pettingzoo", "pettingzoo")])
def test_a_missing_extra_names_it(kind: str, package: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # import now fails as if not installed
    for name in [m for m in sys.modules if m.startswith("marl_tui.envs.external.")]:
        monkeypatch.delitem(sys.modules, name)
    text = NAVIGATION if kind == "vmas" else SPREAD
    from marl_tui.config import parse_scenario

    with pytest.raises(UserError, match=rf"pip install 'marl-tui\[{kind}\]'"):
        make_env(parse_scenario(text, "x.toml"), n_envs=1)


# --------------------------------------------------------------------------- the app


@needs_mpe
@pytest.mark.parametrize("algo", ["qmix", "maddpg", "mappo"])
async def test_the_app_draws_an_external_env_with_its_generic_panel(algo: str) -> None:
    """One step, paused: the generic scene panel and the why panel draw it (no error line)."""
    from marl_tui.tui.app import MarlApp
    from marl_tui.tui.session import RunRequest, no_run_dir
    from marl_tui.tui.widgets.external import ExternalPanel
    from marl_tui.tui.widgets.why import why_text
    from tests.test_tui import shown_step, started, until

    request = RunRequest(scenario=load_scenario(str(EXAMPLES / "simple-spread.toml")), algo=algo, seed=0,
                         n_envs=4, steps=None, overrides={})
    app = MarlApp(request=request, start_paused=True, run_dir=no_run_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await started(pilot)
        await pilot.press("n")
        await until(pilot, lambda: shown_step(screen) == 1, what="the first step")
        assert isinstance(screen.scene, ExternalPanel)
        scene = screen.scene.safe_lines(screen.scene.data, 70).plain
        assert "agent_2" in scene and "observations: 18 numbers per agent" in scene and "cannot draw" not in scene
        assert "no oracle" in scene
        why = why_text(screen.query_one("#why").data, 46).plain
        assert "failed" not in why and "agent_0" in why
        await pilot.press("q")


def test_the_generic_panel_shows_continuous_actions_as_a_trace_and_discrete_as_a_histogram() -> None:
    from marl_tui.stream.frames import StepScene
    from marl_tui.tui.widgets.external import ExternalPanel, histogram, sparkline
    from marl_tui.tui.widgets.scene import SceneData

    steps = tuple(StepScene(step=k, env_steps=4 * k, episode=0, t=k, actions=(0.1 * k, 1.0 - 0.1 * k),
                            reward=(-1.0, -2.0), info={"obs": (0.0, 1.0, 2.0, 3.0)}) for k in range(1, 6))
    data = SceneData(record=steps[-1], recent=steps, agent_names=("a", "b"), episode_length=10, kpis={})
    text = ExternalPanel().lines(data, 60).plain
    assert "(oldest first)" in text  # continuous: each agent's values over time
    assert "-5" in text and "-10" in text  # each agent's reward summed over the episode so far
    assert "observations: 2 numbers per agent" in text
    assert sparkline([0.0, 1.0, 2.0], 10) == " ▄█" and sparkline([3.0, 3.0], 10) == "  "
    assert histogram([0, 2, 4]) == "0· 1▄ 2█"
    discrete = ExternalPanel().lines(SceneData(record=steps[-1], recent=steps, agent_names=("a", "b"),
                                               episode_length=10, discrete_actions=3), 60).plain
    assert "actions over the last 5 steps:" in discrete
