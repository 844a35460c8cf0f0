"""The why panel renders each algorithm's Explain struct: its numbers, and equations that never
break inside a symbol."""

from __future__ import annotations

import pytest
import torch
from rich.cells import cell_len
from rich.console import Console

from marl_tui.algos.base import Explain, Transition
from marl_tui.algos.baselines import OracleExplain, RandomExplain
from marl_tui.algos.maddpg import MADDPGExplain
from marl_tui.algos.mappo import MAPPOExplain
from marl_tui.algos.qmix import QMIXExplain
from marl_tui.algos.registry import make_algorithm, needs_discrete, resolve_hparams
from marl_tui.config import load_scenario
from marl_tui.envs.base import BatchedEnv, DiscretisedEnv, make_env
from marl_tui.tui.fmt import break_equation, num
from marl_tui.tui.widgets.why import WhyData, why_text

# Small learners that update after a step or two.
SMALL = {
    "maddpg": {"learning_starts": 0, "batch_size": 8, "hidden": 16, "updates_per_step": 1},
    "mappo": {"rollout_length": 2, "hidden": 16},
    "qmix": {"learning_starts": 0, "batch_size": 8, "hidden": 16, "updates_per_step": 1},
    "random": {},
    "oracle": {},
}


def explained(algo_name: str, kind: str, steps: int = 2) -> tuple[Explain, WhyData]:
    """Play `steps` steps of the bundled scenario (learning when ready), then explain copy 0."""
    torch.manual_seed(0)
    scenario = load_scenario(kind)
    env: BatchedEnv = make_env(scenario, n_envs=8, seed=0)
    if env.spec.action_space.kind == "continuous" and needs_discrete(algo_name):
        env = DiscretisedEnv(env)
    algo = make_algorithm(algo_name, env, resolve_hparams(algo_name, scenario, SMALL[algo_name]),
                          torch.device("cpu"))
    obs, state = env.reset(0)
    for _ in range(steps):
        out = algo.act(obs, state, explore=True)
        res = env.step(out.actions)
        algo.observe(Transition(
            obs=obs, state=state, actions=out.actions, reward=res.reward * env.spec.reward_scale,
            next_obs=res.obs, next_state=res.state, terminated=torch.zeros_like(res.done),
            truncated=res.done, extras=out.extras,
        ))
        if algo.ready():
            algo.update()
        obs, state = res.obs, res.state
    ex = algo.explain(obs, state)
    return ex, WhyData(ex, algo_name, tuple(env.spec.agent_names), kind, step=steps,
                       reward_scale=env.spec.reward_scale)


def expected_numbers(ex: Explain) -> list[str]:
    """Numbers of ex the panel must show, formatted as it formats them."""
    match ex:
        case MADDPGExplain():
            assert ex.y_i is not None and ex.r_i is not None and ex.Q_next is not None
            return [f"{num(ex.y_i[0], 3)} = {num(ex.r_i[0], 3)} + {num(ex.gamma, 3)} × "
                    f"{num(ex.Q_next[0], 3)}", num(ex.Q_i[-1], 3)]
        case MAPPOExplain():
            assert ex.ratio is not None and ex.L_clip is not None and ex.A_hat is not None
            return [f"r = {num(ex.ratio, 4)}", f"= {num(ex.L_clip, 4)}", f"Â = {num(ex.A_hat, 4, signed=True)}"]
        case QMIXExplain():
            assert ex.y is not None
            return [f"Q_total(greedy joint action) = {num(ex.Q_total, 4)}", f"y = {num(ex.y, 4)}",
                    f"ε = {num(ex.epsilon, 3)}"]
        case OracleExplain():
            return [ex.summary]
        case RandomExplain():
            return ["Random baseline"]
    pytest.fail(f"no expectations for {type(ex).__name__}")


CASES = [(a, k) for a in ("maddpg", "mappo", "qmix") for k in ("pricing", "fulfillment")] + [
    ("random", "warehouse"), ("oracle", "warehouse")]


@pytest.mark.parametrize(("algo", "kind"), CASES)
def test_the_panel_shows_the_numbers_of_the_explain(algo: str, kind: str) -> None:
    ex, data = explained(algo, kind)
    text = why_text(data, 100).plain
    for piece in expected_numbers(ex):
        assert piece in text, (piece, text)
    assert "other numbers" not in text


@pytest.mark.parametrize(("algo", "kind"), CASES)
def test_at_width_50_no_equation_is_wrapped_inside_a_symbol(algo: str, kind: str) -> None:
    _, data = explained(algo, kind)
    text = why_text(data, 50)
    for line in text.plain.split("\n"):
        if " = " in line or line.lstrip().startswith(("= ", "+ ")):
            assert cell_len(line) <= 50, line  # fits: the terminal leaves it whole
    # What the panel does with it (Panel.draw): wrapping only ever breaks between words.
    words = text.plain.split()
    wrapped = [w for line in text.wrap(Console(width=50), 50) for w in line.plain.split()]
    assert wrapped == words


def test_before_the_first_update_the_panel_says_what_is_missing() -> None:
    for algo, missing in (("maddpg", "no update yet"), ("mappo", "no update yet"), ("qmix", "y = —")):
        _, data = explained(algo, "pricing", steps=0)
        assert missing in why_text(data, 80).plain
    assert "no numbers yet" in why_text(WhyData(None, "mappo"), 80).plain
    assert why_text(WhyData(None, "mappo", note="explain() failed"), 80).plain == "explain() failed"


def test_a_long_equation_breaks_only_between_top_level_terms() -> None:
    eq = "y = r + γ·Q_total⁻(s′, argmax Q_i(o_i′,·))"
    assert break_equation(eq, 60) == [eq]
    # " + " inside the brackets is no break point, however narrow the panel.
    assert break_equation(eq, 20) == ["y = r", "    + γ·Q_total⁻(s′, argmax Q_i(o_i′,·))"]
    # A parameter set apart by a gap goes to its own line first.
    assert break_equation("y_i = r_i + γ·Q_i⁻(s′, μ⁻(o′))   γ = 0.95", 40) == [
        "y_i = r_i + γ·Q_i⁻(s′, μ⁻(o′))", "    γ = 0.95"]
    assert break_equation("L = −min(-240, -240) = 240", 22) == ["L = −min(-240, -240)", "    = 240"]


def test_qmix_marks_the_agents_whose_action_was_not_greedy() -> None:
    """The actions taken in the step against a*_i: those that differ were ε-greedy exploring."""
    import dataclasses

    ex, data = explained("qmix", "fulfillment")
    greedy = list(ex.greedy_value)
    taken = [*greedy]
    taken[1], taken[3] = 1 - taken[1], 1 - taken[3]  # agents B and D took the other choice
    text = why_text(dataclasses.replace(data, actions=tuple(taken)), 100).plain
    marked = [line.split()[0] for line in text.splitlines() if "✱ took" in line]
    assert marked == ["B", "D"]
    assert "2 of 10 not a*" in text
    unmarked = why_text(dataclasses.replace(data, actions=tuple(greedy)), 100).plain
    assert "✱" not in unmarked
    as_greedy_view = why_text(dataclasses.replace(data, actions=tuple(taken), greedy=True), 100).plain
    assert "✱" not in as_greedy_view
