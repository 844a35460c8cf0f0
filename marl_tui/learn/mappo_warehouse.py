"""Lesson: the guide's MAPPO worked example (Part 3), restocking a warehouse, through the real code.

The reward is the bundled `warehouse-guide` scenario's (revenue 1 per unit sold, 5 per unit
ordered, no penalty), computed by the env's own `settle`; its storage cap is raised to 100 so
the guide's 50 units on hand plus 42 ordered fit. The real MAPPO is built on that env's spec
with a fixed seed; its policy's output bias and log sigma are set to the guide's N(35, 8^2) and
its value normaliser to the guide's V(s) = 500. The advantage comes from the real `gae`, the
ratio from the real Policy's log-probabilities, the loss from the real `clipped_surrogate_loss`,
and the direction of the update from autograd through both.
"""

from __future__ import annotations

import dataclasses
import math

import msgspec
import torch

from marl_tui.algos.base import bounds_to_unit
from marl_tui.algos.mappo import MAPPO, clipped_surrogate_loss, gae, gaussian_entropy
from marl_tui.algos.registry import resolve_hparams
from marl_tui.config import load_scenario
from marl_tui.envs.warehouse import WarehouseEnv, settle
from marl_tui.learn.lesson import Lesson, Step, Watch
from marl_tui.train.run_config import seed_everything

SEED = 0
ON_HAND, RECENT_DEMAND, DEMAND = 50.0, 40.0, 45.0
MEAN, SIGMA, SAMPLE = 35.0, 8.0, 42.0  # pi_1_old = N(35, 8^2), a_1 = 42
V_S, G_T = 500.0, 200.0  # the guide's V(s) and G_t
NEW_MEAN = 32.0  # the guide's mu'_1(o_1)
GUIDE_RATIO = 0.8


class WarehouseExample(msgspec.Struct, frozen=True, kw_only=True):
    """Every number of the lesson (warehouse 1; the guide's units: unscaled reward)."""

    obs_1: tuple[float, ...]  # o_1 from the env
    mean: float  # the policy's mean, from MAPPO.explain
    std: float  # its sigma, from MAPPO.explain
    entropy: float  # entropy of the Gaussian in the policy's unit space, nats
    log_prob_old: float  # log pi_old(42 | o_1), in the unit space
    sold: float
    order_cost: float
    reward: float  # r_1 from settle
    V: float  # V(s) from MAPPO.explain
    next_value: float  # gamma V(s_{t+1}) that makes G_t the guide's 200
    gamma: float
    G: float  # returns from gae (lambda = 1)
    A_hat: float  # advantage from gae
    ratio_new_mean: float  # pi_new(42) / pi_old(42) with the guide's new mean 32
    mean_for_guide_ratio: float  # the new mean that gives the guide's ratio 0.8
    eps: float
    L_guide: float  # clipped_surrogate_loss(0.8, -300, eps)
    L_new_mean: float  # clipped_surrogate_loss(ratio_new_mean, -300, eps)
    dL_dmean: float  # dL/d mu_1 at the old policy (r = 1), per unit ordered


def _set_policy(algo: MAPPO, obs: torch.Tensor, mean: float, sigma: float) -> None:
    """Shift the shared policy's output bias so that agent 0's mean is `mean` (order units)."""
    space = algo.spec.action_space
    with torch.no_grad():
        out = algo.policy(obs)[0, 0]
        algo.policy.net.body[-1].bias += bounds_to_unit(torch.tensor(mean), space.low, space.high) - out
        algo.policy.log_std[0] = math.log(sigma * 2 / (space.high - space.low))


def example() -> WarehouseExample:
    scenario = load_scenario("warehouse-guide")
    # The guide holds 50 units and orders 42: raise the cap (45 in the scenario) so they fit.
    scenario = scenario.with_overrides(model=dataclasses.replace(scenario.model, capacity=100))
    env = WarehouseEnv(scenario, n_envs=1, seed=SEED)
    env.reset()
    state = env.get_state()
    state["on_hand"][0, 0] = ON_HAND
    state["history"][0, 0] = RECENT_DEMAND
    env.set_state(state)
    obs, s = env._observe()

    seed_everything(SEED)
    algo = MAPPO(env.spec, resolve_hparams("mappo", scenario), torch.device("cpu"))
    space, hp = env.spec.action_space, algo.hp
    _set_policy(algo, obs, MEAN, SIGMA)
    with torch.no_grad():  # V(s) = 500 through the real value normaliser
        v = algo.V(s)[0, 0]
        algo.value_norm.mean.fill_(V_S - float(v) * float(algo.value_norm.var[0].sqrt()))
    ex = algo.explain(obs, s)

    u = bounds_to_unit(torch.full((1, env.spec.n_agents), SAMPLE), space.low, space.high)
    with torch.no_grad():
        log_prob_old = algo.policy.log_prob_entropy(obs, u)[0][0, 0]

    m = scenario.model
    out = settle(torch.tensor(ON_HAND + SAMPLE), torch.tensor(SAMPLE), torch.tensor(DEMAND), m)
    reward = float(out["reward"])

    gamma = hp.gamma
    next_value = (G_T - reward) / gamma
    A_hat, G = gae(torch.tensor([[reward]]), torch.tensor([[ex.V[0]]]),
                   torch.tensor([[next_value]]), gamma, lam=1.0)

    # The direction of the update: dL/d mu at the old policy (r = 1), through the real Policy.
    logits_bias = algo.policy.net.body[-1].bias
    log_prob = algo.policy.log_prob_entropy(obs, u)[0][0, 0]
    L = clipped_surrogate_loss(torch.exp(log_prob - log_prob_old), A_hat[0, 0], hp.clip_eps)
    (grad,) = torch.autograd.grad(L, logits_bias)
    dL_dmean = float(grad[0]) * 2 / (space.high - space.low)  # per unit of the order

    _set_policy(algo, obs, NEW_MEAN, SIGMA)
    with torch.no_grad():
        ratio_new = torch.exp(algo.policy.log_prob_entropy(obs, u)[0][0, 0] - log_prob_old)
    # The mean that gives ratio 0.8 at sigma 8: (42 - m)^2 = (42 - 35)^2 + 2 sigma^2 ln(1 / 0.8).
    mean_08 = SAMPLE - math.sqrt((SAMPLE - MEAN) ** 2 + 2 * SIGMA**2 * math.log(1 / GUIDE_RATIO))
    A = A_hat[0, 0]
    return WarehouseExample(
        obs_1=tuple(obs[0, 0].tolist()), mean=ex.mean[0], std=ex.std[0],
        entropy=gaussian_entropy(float(algo.policy.log_std[0].detach())),
        log_prob_old=float(log_prob_old), sold=float(out["sold"]),
        order_cost=m.order_cost * SAMPLE, reward=reward, V=ex.V[0], next_value=next_value,
        gamma=gamma, G=float(G[0, 0]), A_hat=float(A), ratio_new_mean=float(ratio_new),
        mean_for_guide_ratio=mean_08, eps=hp.clip_eps,
        L_guide=float(clipped_surrogate_loss(torch.tensor(GUIDE_RATIO), A, hp.clip_eps)),
        L_new_mean=float(clipped_surrogate_loss(ratio_new, A, hp.clip_eps)), dL_dmean=dL_dmean,
    )


def lesson() -> Lesson:
    e = example()
    unit_sigma = SIGMA * 2 / 45
    steps = (
        Step(title="The reward, as the guide writes it",
             equation="r_i = items_sold − restock_cost·a_i − penalty·max(0, demand − inventory)",
             numbers=("scenario warehouse-guide: revenue 1 per unit sold, cost 5 per unit ordered, "
                      "penalty 0",),
             note="As written, every unit ordered costs 5 and sells for at most 1: the optimal policy "
                  "never restocks. marl-tui keeps this as the warehouse-guide scenario (and its "
                  "`warehouse` scenario pays 10 per unit sold, so ordering pays)."),
        Step(title="Warehouse 1's observation",
             equation="o_1 = (on-hand / cap, last demands / 15, sin and cos of the season phase)",
             numbers=(f"inventory {ON_HAND:g}, recent demand {RECENT_DEMAND:g}, season phase 0 "
                      "(the guide's 'winter')",
                      "o_1 = (" + ", ".join(f"{x:.3f}" for x in e.obs_1) + ")"),
             note="From WarehouseEnv's own observation code. The guide's 50 units on hand plus 42 "
                  "ordered exceed the scenario's storage cap of 45, so this lesson raises the cap "
                  "to 100."),
        Step(title="The policy: a Gaussian",
             equation="π_1(a_1|o_1) = N(μ_1(o_1), σ_1²)",
             numbers=(f"π_1 = N({e.mean:.1f}, {e.std:.1f}²)   (MAPPO.explain)",
                      f"entropy = log σ + ½(1 + log 2π) = log {unit_sigma:.4f} + 1.4189 = "
                      f"{e.entropy:.4f} nats"),
             note="The real MAPPO policy (seed 0) with its output bias and log σ set to the guide's "
                  "mean 35 and σ 8. It lives in a unit space where the order range 0..45 is −1..1, "
                  f"so σ 8 is {unit_sigma:.4f} there; its entropy turns negative once σ < 0.242 "
                  f"({0.242 * 8 / unit_sigma:.2f} units): a Gaussian's entropy is a density's, not a count "
                  "of choices."),
        Step(title="Sample an action",
             equation="a_1 ~ N(35, 8²)",
             numbers=(f"a_1 = {SAMPLE:g}   (z = (42 − 35)/8 = {(SAMPLE - MEAN) / SIGMA:.3f})",
                      f"log π_old(42|o_1) = {e.log_prob_old:.4f}   (unit space; kept for the ratio)"),
             note="The guide's draw, 42 units: 0.875 σ above the mean."),
        Step(title="The reward, from the env's own settle()",
             equation="r_1 = 1·min(demand, inventory + a_1) − 5·a_1 − 0·lost",
             numbers=(f"r_1 = {e.sold:g} − {e.order_cost:g} − 0 = {e.reward:g}",),
             note="Demand 45, inventory 50, restock 42: 45 sold, 210 paid. The guide's −165 is right."),
        Step(title="Return and centralised value",
             equation="G_t = Σ_k γ^k r_{t+k},   V^cen(s) = expected G from s",
             numbers=(f"V(s) = {e.V:g}   (MAPPO.explain, value normaliser set to the guide's 500)",
                      f"G_t = {e.reward:g} + {e.gamma:g} × {e.next_value:.2f} = {e.G:g}"),
             note="The guide's '−165 + … = 200': the rest of the episode is worth 365 after "
                  "discounting (γ = 0.99, MAPPO's default for warehouses). In a live run rewards are "
                  "× reward_scale 0.02 first, so the why panel's V(s) is in those units."),
        Step(title="Advantage",
             equation="Â_1 = G_t − V(s)   (GAE with λ = 1)",
             numbers=(f"Â_1 = {e.G:g} − {e.V:g} = {e.A_hat:g}   (mappo.gae)",),
             note="Worse than expected: restocking 42 was a poor action. marl-tui's MAPPO uses GAE "
                  "with λ = 0.95 and normalises Â over each rollout, so live Â are unitless."),
        Step(title="The probability ratio",
             equation="r_t = π_new(a_1|o_1) / π_old(a_1|o_1)",
             numbers=(f"with the guide's new mean 32 (σ 8): r = {e.ratio_new_mean:.4f}",
                      f"the guide's r ≈ 0.8 needs a new mean of {e.mean_for_guide_ratio:.2f}"),
             note="A slip in the guide: moving the mean from 35 to 32 at σ = 8 makes 42 a third less "
                  f"likely (r = {e.ratio_new_mean:.3f}), not 0.8. The lesson goes on with the guide's 0.8."),
        Step(title="The clipped surrogate loss",
             equation="L = −min(r·Â, clip(r, 1−ε, 1+ε)·Â)   ε = 0.2",
             numbers=(f"L = −min(0.8 × ({e.A_hat:g}), clip(0.8, 0.8, 1.2) × ({e.A_hat:g})) = "
                      f"−min(−240, −240) = {e.L_guide:g}",
                      f"with r = {e.ratio_new_mean:.4f}: −min({e.ratio_new_mean * e.A_hat:.1f}, "
                      f"0.8 × ({e.A_hat:g})) = {e.L_new_mean:g}"),
             note="mappo.clipped_surrogate_loss, the function MAPPO.update trains with. With the "
                  "ratio the guide's numbers really give, 0.671, the clip binds: L is still 240, "
                  "but the clipped term has no gradient — PPO stops pushing this sample once it is 20 % less likely."),
        Step(title="The direction of the update",
             equation="∂L/∂μ_1 = −Â·∂r/∂μ_1 = −Â·(a_1 − μ_1)/σ²   at r = 1",
             numbers=(f"∂L/∂μ_1 = {e.dL_dmean:+.2f} per unit ordered   (autograd through the real "
                      "policy)",
                      "gradient descent lowers μ_1: restock less"),
             note="300 × 7 / 64 = 32.81: the sample lay above the mean and did badly, so the new "
                  "policy makes high restocks less likely."),
        Step(title="Now watch it learn",
             equation="on warehouse-guide the best policy orders nothing",
             numbers=("marl-tui run warehouse-guide --algo mappo",),
             note="Press Enter to start MAPPO on the guide's reward: watch the orders fall towards 0 "
                  "and the why panel's π_i, V(s), r, Â and L for each update."),
    )
    return Lesson(name="mappo-warehouse", title="MAPPO: restocking a warehouse",
                  guide_part="Part 3, worked example: warehouse inventory", steps=steps,
                  watch=Watch("warehouse-guide", "mappo"))
