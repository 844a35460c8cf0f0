"""Lesson: the guide's MADDPG worked example (Part 2), three stores pricing, through the real code.

The guide's game is the bundled `pricing-guide` scenario (a = 100, b = 2, g = 0.5, c = 0,
prices 1..10). The real MADDPG is built on that env's spec with a fixed seed; its actors'
output biases are set so that mu_i(o_i) gives the guide's prices (5.2, 4.8, 6.1); the real
env step turns them into demand and profit; the real critics, target networks and one real
update (MADDPG._gradient_step via update()) give Q_i, y_i, dQ_i/da_i and the actor's push.
"""

from __future__ import annotations

import msgspec
import torch

from marl_tui.algos.base import Transition, bounds_to_unit, scaled_to_bounds
from marl_tui.algos.maddpg import MADDPG
from marl_tui.algos.registry import resolve_hparams
from marl_tui.config import load_scenario
from marl_tui.envs.pricing import PricingEnv, profits
from marl_tui.learn.lesson import Lesson, Step, Watch
from marl_tui.train.run_config import seed_everything

SEED = 0
PRICES = (5.2, 4.8, 6.1)  # the guide's mu_1(o_1), mu_2(o_2), mu_3(o_3)
GUIDE_DEMAND = (95.3, 99.2, 91.0)  # as printed in the guide (arithmetic slips)
GUIDE_PROFIT = (496.0, 477.0, 555.0)
GAMMA = 0.99  # the guide's discount


class PricingExample(msgspec.Struct, frozen=True, kw_only=True):
    """Every number of the lesson; per-store tuples in store order. Q, y and slopes are in
    critic units (profit x reward_scale); prices and profits in money."""

    reward_scale: float
    obs_1: tuple[float, ...]  # store 1's observation o_1
    prices: tuple[float, ...]  # mu_i(o_i) after setting the actors' output biases
    demand: tuple[float, ...]  # D_i from PricingEnv.step
    profit: tuple[float, ...]  # r_i = p_i D_i from PricingEnv.step
    Q: tuple[float, ...]  # Q_i(s, a_1..a_3) by the (untrained) critics
    next_prices: tuple[float, ...]  # mu_i^-(o_i'): the target actors' prices tomorrow
    Q_next: tuple[float, ...]  # Q_i^-(s', mu^-(o'))
    y: tuple[float, ...]  # y_i = r_i + gamma Q_i^-(...)
    critic_loss: tuple[float, ...]  # (Q_i - y_i)^2
    update_critic_loss: float  # what the real update reported (their mean)
    slope: tuple[float, ...]  # dQ_i/da_i per unit of price, by autograd through the critic
    true_slope: tuple[float, ...]  # dr_i/dp_i x reward_scale, by autograd through the env's profit
    new_prices: tuple[float, ...]  # mu_i(o_i) after one real update (critic step, actor step)


def _floats(x: torch.Tensor) -> tuple[float, ...]:
    return tuple(float(v) for v in x.flatten().tolist())


def _set_actor_output(algo: MADDPG, obs: torch.Tensor, prices: torch.Tensor) -> None:
    """Shift each actor's last bias so that mu_i(o_i) = prices[i] exactly (and copy to mu^-)."""
    space = algo.spec.action_space
    want = torch.atanh(bounds_to_unit(prices, space.low, space.high))  # pre-tanh output wanted
    with torch.no_grad():
        raw = algo.mu(obs)[0, :, 0]
        algo.mu.body[-1].bias[:, 0] += want[0] - raw
    algo.mu_target.load_state_dict(algo.mu.state_dict())


def example() -> PricingExample:
    scenario = load_scenario("pricing-guide")
    env = PricingEnv(scenario, n_envs=1, seed=SEED)
    obs, state = env.reset()
    seed_everything(SEED)
    # What the example needs: the guide's gamma, and one transition learned at once, as is.
    hp = resolve_hparams("maddpg", scenario, {
        "gamma": GAMMA, "batch_size": 1, "learning_starts": 0, "updates_per_step": 1,
        "normalise_rewards": False,
    })
    algo = MADDPG(env.spec, hp, torch.device("cpu"))
    space, n, scale = env.spec.action_space, env.spec.n_agents, env.spec.reward_scale
    _set_actor_output(algo, obs, torch.tensor([PRICES]))

    a = algo.act(obs, state, explore=False).actions  # [1, N] prices
    res = env.step(a)
    reward = res.reward * scale

    # Critic i at the joint action, and its slope in its own action (one leaf per critic).
    a_unit = bounds_to_unit(a, space.low, space.high)[..., None]  # [1, N, 1]
    leaf = a_unit[:, None].expand(-1, n, -1, -1).clone().requires_grad_(True)  # [1, N, N, 1]
    Q = algo.Q(algo._critic_in(state, obs, leaf.flatten(2))).squeeze(-1)  # [1, N]
    (grad,) = torch.autograd.grad(Q.sum(), leaf)
    slope = grad[0, torch.arange(n), torch.arange(n), 0] * 2.0 / (space.high - space.low)

    # The env's own profit function, differentiated: the slope a perfect critic would have.
    jac = torch.autograd.functional.jacobian(lambda x: profits(x, scenario.model), a.double())
    true_slope = jac[0, :, 0, :].diagonal() * scale  # dr_i/dp_i = D_i - b p_i, x reward_scale

    batch = {"next_obs": res.obs, "next_state": res.state, "reward": reward,
             "terminated": torch.zeros(1)}
    y, Q_next = algo.target_values(batch)
    with torch.no_grad():
        next_unit, _ = algo._mu(algo.mu_target, res.obs)
    next_prices = scaled_to_bounds(next_unit[0, :, 0], space.low, space.high)

    algo.observe(Transition(obs=obs, state=state, actions=a, reward=reward, next_obs=res.obs,
                            next_state=res.state, terminated=torch.zeros(1, dtype=torch.bool),
                            truncated=torch.zeros(1, dtype=torch.bool)))
    metrics = algo.update()
    new_prices = algo.act(obs, state, explore=False).actions
    Q_d = Q.detach()[0]
    return PricingExample(
        reward_scale=scale, obs_1=_floats(obs[0, 0]), prices=_floats(a),
        demand=_floats(res.info["demand"]), profit=_floats(res.info["profit"]), Q=_floats(Q_d),
        next_prices=_floats(next_prices), Q_next=_floats(Q_next), y=_floats(y),
        critic_loss=_floats((Q_d - y[0]) ** 2), update_critic_loss=metrics["critic_loss"],
        slope=_floats(slope), true_slope=_floats(true_slope), new_prices=_floats(new_prices),
    )


def _row(label: str, values: tuple[float, ...], fmt: str = ".2f") -> str:
    return f"{label}: " + " · ".join(f"store {i + 1} {v:{fmt}}" for i, v in enumerate(values))


def lesson() -> Lesson:
    e = example()
    p, D, r, s = e.prices, e.demand, e.profit, e.reward_scale
    money = round(1 / s)
    push = ["raise" if new > old else "lower" for new, old in zip(e.new_prices, p, strict=True)]
    steps = (
        Step(title="The game: the guide's three stores",
             equation="D_i = a − b·p_i + g·Σ_{j≠i} p_j,   r_i = p_i·D_i   (a = 100, b = 2, g = 0.5, c = 0)",
             numbers=("scenario pricing-guide: prices 1..10, 3 stores, reward_scale 0.001",),
             note="marl-tui's pricing-guide scenario is this game exactly as the guide writes it. "
                  "Learners see profit × reward_scale (0.001): profits in money would swamp a network."),
        Step(title="Each actor μ_i(o_i) sets a price",
             equation="a_i = μ_i(o_i)   o_i = (yesterday's prices scaled to [0, 1], own first; own profit × 0.001)",
             numbers=("o_1 = (" + ", ".join(f"{x:.3f}" for x in e.obs_1) + ")",
                      _row("μ_i(o_i)", p)),
             note="The real MADDPG actors (seed 0), with each actor's output bias set so that it "
                  "prices as in the guide: 5.2, 4.8 and 6.1."),
        Step(title="Demand, from the real env step",
             equation="D_i = 100 − 2·p_i + 0.5·(p_j + p_k)",
             numbers=(f"D_1 = 100 − 2·{p[0]:.1f} + 0.5·({p[1]:.1f} + {p[2]:.1f}) = {D[0]:.2f}",
                      f"D_2 = 100 − 2·{p[1]:.1f} + 0.5·({p[0]:.1f} + {p[2]:.1f}) = {D[1]:.2f}",
                      f"D_3 = 100 − 2·{p[2]:.1f} + 0.5·({p[0]:.1f} + {p[1]:.1f}) = {D[2]:.2f}"),
             note="The guide prints 95.3, 99.2 and 91.0: arithmetic slips. Its own formula gives "
                  f"{D[0]:.2f}, {D[1]:.2f} and {D[2]:.2f}, which is what PricingEnv.step returns."),
        Step(title="Profit r_i = p_i·D_i",
             equation="r_i = p_i·D_i",
             numbers=tuple(f"r_{i + 1} = {p[i]:.1f} × {D[i]:.2f} = {r[i]:.2f}" for i in range(3)),
             note=f"The guide's 496, 477 and 555 follow from its slipped demands; the right profits "
                  f"are {r[0]:.2f}, {r[1]:.2f} and {r[2]:.2f} (critics see them × 0.001)."),
        Step(title="Each centralised critic values the joint action",
             equation="Q_i(s, a_1, a_2, a_3)   (critic i sees the state, every observation, every price)",
             numbers=(_row("Q_i", e.Q, ".4f"),
                      f"in money: Q_1 = {e.Q[0] * money:.1f}, against a profit of {r[0]:.2f} today"),
             note="These critics are untrained (their initial weights): their values are near 0 "
                  "and mean nothing yet. Training makes Q_i approach the discounted sum of store "
                  "i's profits."),
        Step(title="The target y_i",
             equation="y_i = r_i + γ·Q_i⁻(s′, μ_1⁻(o_1′), μ_2⁻(o_2′), μ_3⁻(o_3′))   γ = 0.99",
             numbers=(_row("μ_i⁻(o_i′)", e.next_prices),
                      *(f"y_{i + 1} = {r[i] * s:.4f} + 0.99 × {e.Q_next[i]:.4f} = {e.y[i]:.4f}"
                        for i in range(3))),
             note="MADDPG.target_values with the target actors and critics. The guide's γ = 0.99; "
                  "marl-tui's default for MADDPG on pricing is γ = 0: today's price does not move "
                  "tomorrow's demand (a repeated static game), so each critic can be its own "
                  "profit surface and nothing is bootstrapped."),
        Step(title="The critic's loss",
             equation="L_i = (Q_i(s, a) − y_i)²",
             numbers=(*(f"L_{i + 1} = ({e.Q[i]:.4f} − {e.y[i]:.4f})² = {e.critic_loss[i]:.4f}"
                        for i in range(3)),
                      f"the real update reports critic_loss {e.update_critic_loss:.4f}: "
                      "their mean"),
             note="The critic step moves Q_i towards y_i; the target networks (⁻) move only by "
                  "τ = 0.01 per step, so the target does not run away from the critic chasing it."),
        Step(title="The critic's slope ∂Q_i/∂a_i",
             equation="∂Q_i/∂a_i at a = μ(o)   (per unit of price, critic units)",
             numbers=(_row("critic", e.slope, "+.4f"),
                      _row("true ∂r_i/∂p_i × 0.001", e.true_slope, "+.4f")),
             note="The true slope is D_i − 2·p_i (from the env's profit, differentiated): every "
                  "store should raise its price — in the guide's game the best reply is always the "
                  "cap, 10. An untrained critic's slope is whatever its initial weights say; "
                  "learning makes it match the env's."),
        Step(title="The actor's push",
             equation="∇θ J_i = E[∇θ μ_i(o_i)·∂Q_i/∂a_i |a=μ(o)]",
             numbers=(*(f"store {i + 1}: μ_{i + 1} {p[i]:.4f} → {e.new_prices[i]:.4f}  ({push[i]})"
                        for i in range(3)),),
             note="One real MADDPG update on this one transition (critic step, then actor step). "
                  "Each actor moves its price the way its critic's slope points: if the critic says "
                  "'increase p_i', the actor increases μ_i. Right now that is only as good as the "
                  "critic — which is why the critic must learn first."),
        Step(title="Now watch it learn",
             equation="every store should learn p = 10 (Nash = collusion = the cap here)",
             numbers=("marl-tui run pricing-guide --algo maddpg",),
             note="Press Enter to start MADDPG on this game. The why panel shows these same "
                  "equations with the live numbers of each step."),
    )
    return Lesson(name="maddpg-pricing", title="MADDPG: three stores set prices",
                  guide_part="Part 2, worked example: 3-store pricing", steps=steps,
                  watch=Watch("pricing-guide", "maddpg"))
