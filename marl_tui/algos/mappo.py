"""MAPPO: PPO for every agent with one centralised value function (study guide, Part 3).

Read it beside the guide's pseudocode:

    COLLECTION   a_i ~ pi_i(.|o_i; theta)             act(), observe()
    ADVANTAGE    A_hat_i = GAE over V^cen(s)          gae(); the network is self.V
    TRAINING     K epochs of minibatches:             update()
                   r_i = pi_i(a_i|o_i) / pi_i_old(a_i|o_i)
                   L_i = -min(r_i A_hat_i, clip(r_i, 1-eps, 1+eps) A_hat_i)
                   L_V = Huber(V^cen(s) - G)

What makes it learn (REFERENCE.md §5): one policy network shared by all agents
with a one-hot agent id; ReLU hidden units (the MAPPO paper's default; tanh costs
several times more on a CPU); orthogonal init (sqrt 2 hidden, 0.01 policy head, 1
value head); GAE(lambda) that bootstraps from V(s') when an episode ends by time
limit; advantage normalisation; returns normalised by running statistics; an
entropy bonus; Adam eps 1e-5; gradient-norm clipping.

act() keeps log pi_old(a_i | o_i) of each sample (nearly free there). The old
values V(s_t) and V(s_{t+1}) are computed in one batched pass at the start of
update(): V does not change during a rollout, so this gives the same
numbers as storing them step by step, without a V call per step.

Seeds stacked (MAPPO.stack, for `compare --batched-seeds`): one learner holds S seeds, each
with its own networks (their parameters alias rows of [S, ...] tensors), Adam state, value
statistics, generator and rollout columns, and computes exactly what its solo run computes
(tests/test_seed_stack_mappo.py checks it bitwise). The seeds' networks run one after another:
S seeds cost what S solo runs cost, since MAPPO's cost is its matmuls' arithmetic.
"""

from __future__ import annotations

import copy
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any, ClassVar, Self, TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.adam import adam

from marl_tui.algos.base import (
    ActOutput,
    Algorithm,
    Capabilities,
    Counterfactual,
    Explain,
    Transition,
    WhatIfValues,
    bounds_to_unit,
    child_generator,
    floats,
    scaled_to_bounds,
)
from marl_tui.algos.masking import ActionMask
from marl_tui.algos.networks import AgentMLP, gumbel_noise, mlp
from marl_tui.envs.base import EnvSpec

_T = TypeVar("_T", torch.Tensor, float)

# --------------------------------------------------------------------------- hyperparameters


@dataclass(frozen=True)
class MAPPOHyperparameters:
    steps: int = 1_000_000  # training budget: environment steps over all parallel copies
    gamma: float = 0.99  # discount
    lr: float = 2e-3  # Adam step size; large because each minibatch holds thousands of samples
    hidden: int = 64  # units in each of the two hidden layers
    rollout_length: int = 32  # batched steps collected before each update
    epochs: int = 4  # K: passes over the rollout per update
    minibatches: int = 2  # minibatches per epoch
    gae_lambda: float = 0.95  # GAE lambda
    clip_eps: float = 0.2  # eps in clip(r, 1 - eps, 1 + eps)
    entropy_coef: float = 0.01  # weight of the entropy bonus (the exploration knob)
    value_coef: float = 0.5  # weight of the value loss
    # The value loss is always Huber; this is its threshold, on normalised returns (unit std).
    # With 10 (many stds) it is effectively 1/2 * MSE: the linear tail only caps rare outliers.
    # (MADDPG's and QMIX's `huber` is a different knob: a switch to Huber with delta 1.)
    huber_delta: float = 10.0
    grad_clip: float = 10.0  # max gradient norm, applied to policy and value separately
    team_reward: bool = False  # learn from the team's mean reward even if each agent is paid its own
    init_log_std: float = -0.5  # continuous actions: initial log sigma in the unit space [-1, 1]


class MAPPOExplain(Explain, kw_only=True):
    """Copy 0's policy pi_i and value V^cen(s), and the last update's clipped surrogate.

    Per-agent tuples hold one entry per agent i. Continuous scenarios fill mean and std,
    discrete ones probs. Vector actions (d > 1 numbers per agent): mean and std of the first number.
    """

    V: tuple[float, ...]  # V^cen(s) of copy 0's state, scaled reward units (a team value: repeated)
    eps: float  # eps in clip(r, 1 - eps, 1 + eps)
    # Continuous actions (None when discrete), in action units (price, order size):
    mean: tuple[float, ...] | None = None  # the Gaussian's mean, clipped to the bounds: the greedy action
    std: tuple[float, ...] | None = None  # its sigma
    # Discrete actions (None when continuous):
    probs: tuple[tuple[float, ...], ...] | None = None  # pi_i(a | o_i) for every action a
    # The last update (None before the first). One sample, agent 0 of the last minibatch's first row:
    ratio: float | None = None  # r = pi_i(a|o_i) / pi_i_old(a|o_i)
    clipped_ratio: float | None = None  # clip(r, 1 - eps, 1 + eps)
    A_hat: float | None = None  # its GAE advantage, normalised over the rollout (unitless)
    L_clip: float | None = None  # -min(r A_hat, clip(r) A_hat): its surrogate loss
    ratio_mean: float | None = None  # mean r over the last minibatch
    A_hat_mean: float | None = None  # mean A_hat over the last minibatch
    # Means over the update's minibatches:
    clip_fraction: float | None = None  # share of samples with |r - 1| > eps
    approx_kl: float | None = None  # approximate KL(pi_old || pi), nats
    entropy: float | None = None  # policy entropy, nats


class MAPPOWhatIf(WhatIfValues, kw_only=True):
    """Agent i's policy on copy 0's action as taken and as replaced, V^cen(s), and the one-step
    advantage each would have earned; trainer's reward units."""

    # Continuous: the Gaussian's log density in the unit space [-1, 1]; an action the env clipped
    # to a bound is scored at the bound (the raw sample u is not kept with the step).
    log_pi_taken: float  # log pi_i(a_i | o_i)
    log_pi_replaced: float  # log pi_i(a'_i | o_i)
    ratio: float  # pi_i(a'_i | o_i) / pi_i(a_i | o_i): how much likelier the policy finds a'_i
    V: float  # V^cen(s) (agent i's, or the team's)
    gamma: float
    # One-step estimate of A_hat: r + gamma V(s') - V(s), with r and s' what each action led to
    # (the team's mean reward where V is a team value). GAE sums these over the rollout.
    A_taken: float
    A_replaced: float
    V_next_taken: float  # V(s') after the action as taken
    V_next_replaced: float


# --------------------------------------------------------------------------- pure functions


def clipped_surrogate_loss(ratio: torch.Tensor, A_hat: torch.Tensor, eps: float) -> torch.Tensor:
    """L = -min(r A_hat, clip(r, 1 - eps, 1 + eps) A_hat), elementwise (take the mean yourself).

    The guide's example: r = 0.8, A_hat = -300, eps = 0.2 gives L = 240.
    """
    return -torch.min(ratio * A_hat, ratio.clamp(1.0 - eps, 1.0 + eps) * A_hat)


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    gamma: float,
    lam: float,
    terminated: torch.Tensor | None = None,
    truncated: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over a rollout; returns (A_hat, returns = A_hat + V).

    All tensors are [T, ...] (terminated/truncated broadcastable to rewards).
    next_values[t] = V(s_{t+1}) of the state the step actually reached, so at a
    time-limit end (truncated) the last reward is bootstrapped with V(s_T) and only
    the lambda-trace is cut; a real end (terminated) also drops the bootstrap.
        delta_t = r_t + gamma V(s_{t+1}) (1 - terminated_t) - V(s_t)
        A_hat_t = delta_t + gamma lam (1 - end_t) A_hat_{t+1},  end = terminated or truncated
    """
    zeros = torch.zeros_like(rewards)
    term = zeros if terminated is None else zeros + terminated.to(rewards.dtype)
    end = term if truncated is None else torch.maximum(term, zeros + truncated.to(rewards.dtype))
    delta = rewards + gamma * next_values * (1.0 - term) - values
    carry = gamma * lam * (1.0 - end)
    A_hat = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = delta[t] + carry[t] * running
        A_hat[t] = running
    return A_hat, A_hat + values


def gaussian_log_prob(z: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(u; mu, sigma^2) written with z = (u - mu) / sigma: -z^2/2 - log sigma - log(2 pi)/2."""
    return -0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)


def gaussian_entropy(log_std: _T) -> _T:
    """Entropy of N(mu, sigma^2): log sigma + (1 + log(2 pi))/2."""
    return log_std + 0.5 * (1.0 + math.log(2 * math.pi))


# --------------------------------------------------------------------------- networks


class ValueNorm(nn.Module):
    """Running mean/std of the returns G (per value output): V predicts (G - mean) / std.

    Stats merge each rollout exactly (Chan et al.'s parallel variance), so they
    are the mean and variance of every return seen so far.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("var", torch.ones(size))
        self.register_buffer("count", torch.tensor(1e-4))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1])
        n = x.shape[0]
        mean, var = x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = mean - self.mean
        self.var.copy_((self.var * self.count + var * n + delta**2 * self.count * n / total) / total)
        self.mean.add_(delta * n / total)
        self.count.copy_(total)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.var.clamp_min(1e-8).sqrt()

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.var.clamp_min(1e-8).sqrt() + self.mean


class Policy(nn.Module):
    """pi_i(a | o_i): one network for all agents (agent id appended to o_i).

    Continuous: a Gaussian N(mu_i(o_i), sigma_i^2) in the unit space [-1, 1] with a
    learned, state-independent log sigma per agent; for actions of d > 1 numbers a diagonal
    Gaussian (one mu and one log sigma per dim, log pi the sum over dims). Discrete: a
    categorical over the n actions.
    """

    def __init__(self, spec: EnvSpec, hidden: int, init_log_std: float) -> None:
        super().__init__()
        self.continuous = spec.action_space.kind == "continuous"
        self.dims = spec.action_space.dims if self.continuous else 1
        d_out = self.dims if self.continuous else spec.action_space.n
        self.net = AgentMLP(spec.n_agents, spec.obs_dim, d_out, hidden, shared=True, out_gain=0.01,
                            activation=nn.ReLU)
        per_agent = (spec.n_agents,) if self.dims == 1 else (spec.n_agents, self.dims)
        self.log_std = nn.Parameter(torch.full(per_agent, init_log_std))
        self.mask = ActionMask(spec)  # agents of different action sizes: see masking.py

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """mu_i in unit space [..., N] (continuous; [..., N, d] for d > 1) or logits [..., N, n]."""
        out = self.mask.valid_scores(self.net(obs))
        return out.squeeze(-1) if self.continuous and self.dims == 1 else out

    def joint_over_dims(self, x: torch.Tensor) -> torch.Tensor:
        """Per-dim log densities or entropies [..., N, d] -> per agent [..., N]: a diagonal
        Gaussian's dims are independent, so they add (one-dim actions pass as they are)."""
        return x if self.dims == 1 else self.mask.zero_padding(x).sum(-1)

    def log_prob_entropy(
        self, obs: torch.Tensor, a: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log pi_i(a_i | o_i) and the entropy of pi_i, both [..., N].

        Continuous a is the raw Gaussian sample u (before clipping to [-1, 1]).
        """
        out = self(obs)
        if self.continuous:
            log_std = self.log_std.expand_as(out)
            z = (a - out) * torch.exp(-log_std)
            return self.joint_over_dims(gaussian_log_prob(z, log_std)), self.joint_over_dims(gaussian_entropy(log_std))
        log_p = F.log_softmax(out, -1)
        log_prob = log_p.gather(-1, a.long().unsqueeze(-1)).squeeze(-1)
        return log_prob, -(log_p.exp() * log_p).sum(-1)


# --------------------------------------------------------------------------- seeds stacked


def clip_grad_norm(grads: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """nn.utils.clip_grad_norm_ on gradient tensors instead of parameters (its arithmetic, so a
    solo's numbers are unchanged; a stacked learner passes one seed's slices): scales the grads
    in place to a total 2-norm <= max_norm and returns the norm before clipping."""
    total = nn.utils.get_total_norm(grads, 2.0)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef)
    return total


def _solo_parameters(algo: MAPPO) -> list[torch.Tensor]:
    """A solo's parameters in its Adam's order: the policy's, then V's."""
    return [*algo.policy.parameters(), *algo.V.parameters()]


@dataclass
class SeedStack:
    """What a stacked learner (MAPPO.stack) holds for S seeds in place of one Adam: every
    parameter and its Adam moments as [S, ...] tensors, and each seed's Adam step counts. Seed s
    has its own copies of the networks whose parameters alias row s of the stacked tensors, so
    each seed gets its own gradients and its updates land in the stacked tensors.

    The seeds' networks run one after another, and Adam steps each seed's rows as the tensors
    they are: a batched matmul over seeds is not bitwise a solo's (bmm vs mm differ on one-column
    outputs and small batches) nor is one Adam step over [S, ...] tensors (it differs at S = 5),
    and MAPPO's update is bound by its matmuls' arithmetic, which batching would not reduce."""

    policies: list[Policy]  # seed s's pi
    Vs: list[nn.Sequential]  # seed s's V^cen
    theta: list[torch.Tensor]  # [S, *shape]: the policy's parameters, then V's
    exp_avg: list[torch.Tensor]  # Adam's first moments, [S, *shape]
    exp_avg_sq: list[torch.Tensor]  # and second
    steps: list[list[torch.Tensor]]  # [seed][parameter]: Adam's step count (0: not stepped yet)
    adam: dict[str, Any]  # the solos' Adam settings (lr, betas, eps)

    @classmethod
    def of(cls, solos: Sequence[MAPPO]) -> SeedStack:
        policies = [copy.deepcopy(solo.policy) for solo in solos]
        Vs = [copy.deepcopy(solo.V) for solo in solos]
        per_seed = [_solo_parameters(solo) for solo in solos]
        states = [[solo.optimizer.state.get(p, {}) for p in params]
                  for solo, params in zip(solos, per_seed, strict=True)]

        def stacked(of: Callable[[int, int], torch.Tensor]) -> list[torch.Tensor]:
            return [torch.stack([of(s, i) for s in range(len(solos))]) for i in range(len(per_seed[0]))]

        def moment(key: str) -> Callable[[int, int], torch.Tensor]:
            return lambda s, i: states[s][i][key] if states[s][i] else torch.zeros_like(per_seed[s][i])

        theta = stacked(lambda s, i: per_seed[s][i].detach())
        for s, (policy, V) in enumerate(zip(policies, Vs, strict=True)):
            for i, p in enumerate([*policy.parameters(), *V.parameters()]):
                p.data, p.grad = theta[i][s], None  # the copy's parameter now aliases row s
        group = solos[0].optimizer.param_groups[0]
        return cls(
            policies=policies, Vs=Vs, theta=theta,
            exp_avg=stacked(moment("exp_avg")), exp_avg_sq=stacked(moment("exp_avg_sq")),
            steps=[[st["step"].clone() if st else torch.zeros((), dtype=torch.float32, device=p.device)
                    for st, p in zip(seed_states, params, strict=True)]
                   for seed_states, params in zip(states, per_seed, strict=True)],
            adam={"lr": group["lr"], "beta1": group["betas"][0], "beta2": group["betas"][1],
                  "eps": group["eps"], "weight_decay": group["weight_decay"]},
        )

    def parameters(self, s: int) -> list[torch.Tensor]:
        """Seed s's parameters in a solo's Adam order."""
        return [*self.policies[s].parameters(), *self.Vs[s].parameters()]

    def zero_grad(self) -> None:
        for s in range(len(self.steps)):
            for p in self.parameters(s):
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One Adam step of every seed: the fused kernel a solo's Adam runs, on each seed's rows.
        Like Adam, it skips a parameter with no gradient (log sigma, in a discrete scenario)."""
        stepped = [(s, i, p) for s in range(len(self.steps)) for i, p in enumerate(self.parameters(s))
                   if p.grad is not None]
        adam([p for _, _, p in stepped], [p.grad for _, _, p in stepped],
             [self.exp_avg[i][s] for s, i, _ in stepped], [self.exp_avg_sq[i][s] for s, i, _ in stepped],
             [], [self.steps[s][i] for s, i, _ in stepped],
             fused=True, amsgrad=False, maximize=False, **self.adam)

    @torch.no_grad()
    def write_back(self, solos: Sequence[MAPPO]) -> None:
        """Seed s's parameters and Adam state into solos[s] (a seed not stepped yet: no state)."""
        for s, solo in enumerate(solos):
            for i, p in enumerate(_solo_parameters(solo)):
                p.copy_(self.theta[i][s])
                if float(self.steps[s][i]) > 0:
                    solo.optimizer.state[p] = {"step": self.steps[s][i].clone(),
                                               "exp_avg": self.exp_avg[i][s].clone(),
                                               "exp_avg_sq": self.exp_avg_sq[i][s].clone()}
                else:
                    solo.optimizer.state.pop(p, None)


@dataclass
class SeedRollout:
    """One seed's rollout flattened for the epochs, with its advantages and normalised returns
    (M = T x B samples)."""

    obs: torch.Tensor  # [M, N, O]
    a: torch.Tensor  # [M, N] (or [M, N, d]): indices, or the raw Gaussian samples u
    state: torch.Tensor  # [M, state_dim]
    log_prob_old: torch.Tensor  # [M, N] log pi_i_old(a_i | o_i), from act()
    A_hat: torch.Tensor  # [M, N] normalised advantages
    G_norm: torch.Tensor  # [M, K] returns, normalised by the running statistics
    values: torch.Tensor  # [T, B, K] V(s_t) before the update
    returns: torch.Tensor  # [T, B, K]
    explained_var: torch.Tensor


@dataclass
class MinibatchLoss:
    """One seed's loss on one minibatch and the figures reported from it."""

    loss: torch.Tensor
    row: list[torch.Tensor]  # the per-minibatch metrics before the grad norms (see update_seeds)
    ratio: torch.Tensor  # r_i on the minibatch
    A_hat: torch.Tensor  # A_hat_i on the minibatch


# --------------------------------------------------------------------------- the algorithm


class MAPPO(Algorithm):
    """Multi-agent PPO with parameter sharing and a centralised value V^cen(s).

    One learner holds S >= 1 seeds (a solo run: S = 1). Batches are seeds-major (rows
    s*B:(s+1)*B are seed s's copies); seed s draws from its own generator and keeps its own
    statistics, so it follows its solo run bitwise. A stacked learner (MAPPO.stack) keeps its
    seeds' parameters in a SeedStack; a solo keeps them in its modules and Adam."""

    name = "mappo"
    title = "MAPPO"
    capabilities = Capabilities(continuous=True, discrete=True, on_policy=True,
                                centralised_critic=True)
    exploration_field = "entropy_coef"
    Hyperparameters = MAPPOHyperparameters
    explain_type = MAPPOExplain
    what_if_type = MAPPOWhatIf
    supports_seed_stack: ClassVar[bool] = True
    defaults_by_kind: ClassVar[dict[str, dict[str, Any]]] = {
        # A one-shot game each day: small networks learn it, and a rollout holds 8192 days x 3
        # stores, so 2 epochs of 2 minibatches (4 Adam steps) suffice. Both cut the update's
        # cost ~3x, which the 100k steps/s target on 2 CPU cores needs.
        "pricing": {"hidden": 32, "epochs": 2},
        # Warehouses are judged as a team, and a shared truck couples them: on their own
        # rewards they race for truck space (94% of the optimum), on the team's they share it.
        "warehouse": {"lr": 1e-3, "steps": 1_500_000, "team_reward": True},
        # Orders, stocks and loads are drawn afresh every step: actions do not shape the
        # future, so a short horizon removes noise from the returns without changing the answer.
        "fulfillment": {"gamma": 0.5, "steps": 600_000},
    }

    def __init__(self, spec: EnvSpec, hp: MAPPOHyperparameters, device: torch.device) -> None:
        self._configure(spec, hp, device)
        self.policy = Policy(spec, hp.hidden, hp.init_log_std).to(device)
        # V^cen(s): the centralised value, predicting normalised returns (see ValueNorm).
        self.V = mlp(spec.state_dim, self.n_values, hp.hidden, out_gain=1.0,
                     activation=nn.ReLU).to(device)
        self.value_norm = ValueNorm(self.n_values).to(device)
        # One per seed (a solo: its own; a stack: each seed's copies, see SeedStack).
        self.policies, self.Vs, self.value_norms = [self.policy], [self.V], [self.value_norm]
        self.optimizer = torch.optim.Adam(
            [*self.policy.parameters(), *self.V.parameters()], lr=hp.lr, eps=1e-5, fused=True
        )
        # Own CPU generator (seeded from the trainer-seeded global RNG) so resume is exact;
        # samples are drawn on the CPU and moved, so a GPU run's checkpoint loads anywhere.
        self.generator = child_generator()
        self.generators = [self.generator]  # one per seed
        with torch.no_grad():  # before any update: entropy of the initial policy
            entropy = (
                self.policy.dims * float(gaussian_entropy(float(self.policy.log_std.mean())))
                if self.continuous else math.log(spec.action_space.n)  # 0.01 head: ~uniform
            )
        self.entropies = [entropy]  # per seed: mean policy entropy at the last update
        self.lasts: list[dict[str, float]] = [{}]  # per seed: the last update's numbers, for explain()

    def _configure(self, spec: EnvSpec, hp: MAPPOHyperparameters, device: torch.device) -> None:
        """What a solo and a stack share, drawing nothing from any RNG."""
        super().__init__(spec, hp, device)
        self.continuous = spec.action_space.kind == "continuous"
        # A team reward (cooperative scenarios, or team_reward): one V(s) on the agents' mean
        # reward. Otherwise V(s) has one output per agent (V_i(s)): their returns differ.
        self.n_values = 1 if spec.cooperative or hp.team_reward else spec.n_agents
        self.seeds: SeedStack | None = None  # set on a stacked learner
        self.buffer: dict[str, torch.Tensor] = {}  # [T, S*B, ...]: seeds-major like the batches
        self.pos = 0  # batched steps stored in the current rollout
        self.updates = 0

    @property
    def n_seeds(self) -> int:
        return len(self.generators)

    # ------------------------------------------------------------------ seeds stacked

    @classmethod
    def stack(cls, solos: Sequence[Self]) -> Self:
        """One learner holding len(solos) seeds, with the solos' whole state (see SeedStack);
        seed s draws from solos[s]'s own generator."""
        if not solos:
            raise ValueError("MAPPO.stack needs at least one solo learner")
        first = solos[0]
        for solo in solos:
            if solo.seeds is not None:
                raise ValueError("MAPPO.stack takes solo learners, not stacks")
            if (solo.spec, solo.hp, solo.device) != (first.spec, first.hp, first.device):
                raise ValueError("MAPPO.stack: the solos differ in scenario, hyperparameters or device")
            if (solo.pos, solo.updates, set(solo.buffer)) != (first.pos, first.updates, set(first.buffer)):
                raise ValueError("MAPPO.stack: the solos are not at the same step (rollout position, "
                                 "updates): seeds stack only in lockstep")
        stacked = cls.__new__(cls)
        stacked._configure(first.spec, first.hp, first.device)
        stacked.seeds = SeedStack.of(solos)
        stacked.policies, stacked.Vs = stacked.seeds.policies, stacked.seeds.Vs
        stacked.value_norms = [copy.deepcopy(solo.value_norm) for solo in solos]
        stacked.generators = [solo.generator for solo in solos]  # shared objects, not copies
        stacked.buffer = {k: torch.cat([solo.buffer[k] for solo in solos], 1) for k in first.buffer}
        stacked.pos, stacked.updates = first.pos, first.updates
        stacked.entropies = [solo.entropies[0] for solo in solos]
        stacked.lasts = [dict(solo.lasts[0]) for solo in solos]
        return stacked

    def write_back(self, solos: Sequence[Self]) -> None:
        """Seed s's state into solos[s]: its state_dict() is then what its solo run would hold."""
        seeds = self._stacked("write_back")
        if len(solos) != self.n_seeds:
            raise ValueError(f"write_back: {len(solos)} solos for {self.n_seeds} seeds")
        seeds.write_back(solos)
        for s, solo in enumerate(solos):
            solo.value_norm.load_state_dict(self.value_norms[s].state_dict())
            solo.buffer = {k: v[:, self._rows(s, v.shape[1])].clone() for k, v in self.buffer.items()}
            solo.pos, solo.updates = self.pos, self.updates
            solo.entropies, solo.lasts = [self.entropies[s]], [dict(self.lasts[s])]

    def _stacked(self, what: str) -> SeedStack:
        if self.seeds is None:
            raise ValueError(f"{what} is for a stacked learner (MAPPO.stack)")
        return self.seeds

    def _solo(self, what: str) -> None:
        if self.seeds is not None:
            raise ValueError(f"{what} is not defined on a seed stack: write_back(solos) and ask "
                             "the solos")

    def _rows(self, s: int, rows: int) -> slice:
        """Seed s's rows of a seeds-major batch of `rows` rows."""
        B = rows // self.n_seeds
        return slice(s * B, (s + 1) * B)

    def _grads(self, s: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Seed s's policy and value gradients."""
        return ([p.grad for p in self.policies[s].parameters() if p.grad is not None],
                [p.grad for p in self.Vs[s].parameters() if p.grad is not None])

    # ------------------------------------------------------------------ acting

    def _to_env(self, u: torch.Tensor) -> torch.Tensor:
        """Unit-space action -> env units. Only the action sent to the env is clipped: the
        Gaussian stays unbounded, so log pi(u) of the stored raw sample u is exact (a tanh
        squash would need a Jacobian term and saturates at the bounds, where pricing-guide's
        answer lies)."""
        low, high = self.spec.action_space.bounds(self.device)
        return scaled_to_bounds(u.clamp(-1.0, 1.0), low, high)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, state: torch.Tensor, explore: bool) -> ActOutput:
        parts = [self._act_seed(s, obs[self._rows(s, obs.shape[0])], explore) for s in range(self.n_seeds)]
        if len(parts) == 1:
            return parts[0]
        return ActOutput(torch.cat([p.actions for p in parts]),
                         {k: torch.cat([p.extras[k] for p in parts]) for k in parts[0].extras})

    def _act_seed(self, s: int, obs: torch.Tensor, explore: bool) -> ActOutput:
        policy = self.policies[s]
        out = policy(obs)
        if not explore:
            return ActOutput(self._to_env(out) if self.continuous else out.argmax(-1))
        if self.continuous:
            # u = mu + sigma z: log pi(u) is known from z, with no density call.
            z = torch.randn(out.shape, generator=self.generators[s]).to(self.device)
            log_std = policy.log_std
            u = out + log_std.exp() * z
            log_prob = policy.joint_over_dims(gaussian_log_prob(z, log_std))
            return ActOutput(self._to_env(u), {"u": u, "log_prob": log_prob})
        # Gumbel-max: argmax(logits + Gumbel noise) is a sample of the categorical.
        a = (out + gumbel_noise(out, self.generators[s])).argmax(-1)
        log_prob = F.log_softmax(out, -1).gather(-1, a.unsqueeze(-1)).squeeze(-1)
        return ActOutput(a, {"log_prob": log_prob})

    # ------------------------------------------------------------------ rollout storage

    def observe(self, transition: Transition) -> None:
        tr = transition
        a = tr.extras["u"] if self.continuous else tr.actions
        step = {
            "obs": tr.obs, "state": tr.state, "a": a, "log_prob": tr.extras["log_prob"],
            "reward": tr.reward,
            "next_state": tr.next_state, "terminated": tr.terminated, "truncated": tr.truncated,
        }
        if not self.buffer:
            T = self.hp.rollout_length
            self.buffer = {
                k: torch.zeros((T, *v.shape), dtype=v.dtype, device=self.device)
                for k, v in step.items()
            }
        for k, v in step.items():
            self.buffer[k][self.pos] = v
        self.pos += 1

    def ready(self) -> bool:
        return self.pos >= self.hp.rollout_length

    # ------------------------------------------------------------------ learning

    def update(self) -> dict[str, float]:
        if self.n_seeds > 1:
            raise ValueError(f"update() on a stack of {self.n_seeds} seeds: call update_seeds()")
        return self.update_seeds()[0]

    def update_seeds(self) -> list[dict[str, float]]:
        """One update of every seed; element s: seed s's metrics, as its solo update() returns."""
        hp, S = self.hp, self.n_seeds
        rollouts = [
            self._advantages(s, {k: v[:, self._rows(s, v.shape[1])].contiguous() for k, v in self.buffer.items()})
            for s in range(S)
        ]

        # -- TRAINING (K epochs of minibatches) --
        M = rollouts[0].obs.shape[0]
        mb_size = max(1, M // hp.minibatches)
        rows: list[list[torch.Tensor]] = [[] for _ in range(S)]
        for _ in range(hp.epochs):
            # Each seed's permutation from its own generator, in its solo's order.
            splits = [torch.randperm(M, generator=g).to(self.device)[: mb_size * hp.minibatches].split(mb_size)
                      for g in self.generators]
            for k in range(hp.minibatches):
                terms = [self._minibatch_loss(s, rollouts[s], splits[s][k]) for s in range(S)]
                self._zero_grad()
                # A sum over seeds: each seed's gradient is its solo's.
                reduce(operator.add, [t.loss for t in terms]).backward()
                for s, t in enumerate(terms):
                    policy_grads, value_grads = self._grads(s)
                    # Clipped separately so a large value gradient does not shrink the policy's step.
                    grad_norm = clip_grad_norm(policy_grads, hp.grad_clip)
                    critic_grad_norm = clip_grad_norm(value_grads, hp.grad_clip)
                    with torch.no_grad():
                        rows[s].append(torch.stack([
                            *t.row, grad_norm, critic_grad_norm, t.ratio.mean(),
                        ]).detach())
                self._step()
        self.pos = 0
        self.updates += 1
        return [self._metrics(s, rollouts[s], rows[s], terms[s]) for s in range(S)]

    def _zero_grad(self) -> None:
        if self.seeds is None:
            self.optimizer.zero_grad(set_to_none=True)
        else:
            self.seeds.zero_grad()

    def _step(self) -> None:
        if self.seeds is None:
            self.optimizer.step()
        else:
            self.seeds.step()

    @torch.no_grad()
    def _advantages(self, s: int, buf: dict[str, torch.Tensor]) -> SeedRollout:
        """ADVANTAGE COMPUTATION (old policy, old V^cen) of seed s's rollout buf ([T, B, ...])."""
        hp = self.hp
        T, B, N = buf["log_prob"].shape
        K = self.n_values
        value_norm = self.value_norms[s]
        v_all = value_norm.denormalise(self.Vs[s](torch.cat([buf["state"], buf["next_state"]])))
        values, next_values = v_all[:T], v_all[T:]  # [T, B, K]
        reward = buf["reward"].mean(-1, keepdim=True) if K == 1 else buf["reward"]
        A_hat, returns = gae(
            reward, values, next_values, hp.gamma, hp.gae_lambda,
            terminated=buf["terminated"].unsqueeze(-1), truncated=buf["truncated"].unsqueeze(-1),
        )
        explained_var = 1.0 - (returns - values).var() / returns.var().clamp_min(1e-8)
        value_norm.update(returns)
        G_norm = value_norm.normalise(returns)
        A_hat = (A_hat - A_hat.mean()) / (A_hat.std() + 1e-8)
        M = T * B
        return SeedRollout(
            obs=buf["obs"].reshape(M, N, -1), a=buf["a"].reshape(M, N, *buf["a"].shape[3:]),
            state=buf["state"].reshape(M, -1), log_prob_old=buf["log_prob"].reshape(M, N),
            A_hat=A_hat.reshape(M, K).expand(M, N), G_norm=G_norm.reshape(M, K),
            values=values, returns=returns, explained_var=explained_var,
        )

    def _minibatch_loss(self, s: int, ro: SeedRollout, idx: torch.Tensor) -> MinibatchLoss:
        """Seed s's PPO loss on the minibatch idx of its rollout."""
        hp = self.hp
        log_prob, entropy = self.policies[s].log_prob_entropy(ro.obs[idx], ro.a[idx])
        log_ratio = log_prob - ro.log_prob_old[idx]
        ratio = log_ratio.exp()  # r_i = pi_i / pi_i_old
        A_hat = ro.A_hat[idx]
        L_clip = clipped_surrogate_loss(ratio, A_hat, hp.clip_eps)
        policy_loss, entropy = L_clip.mean(), entropy.mean()
        V = self.Vs[s](ro.state[idx])
        value_loss = F.huber_loss(V, ro.G_norm[idx], delta=hp.huber_delta)
        loss = policy_loss - hp.entropy_coef * entropy + hp.value_coef * value_loss
        with torch.no_grad():
            row = [policy_loss, value_loss, entropy,
                   ((ratio - 1.0) - log_ratio).mean(),  # approx KL(old || new)
                   ((ratio - 1.0).abs() > hp.clip_eps).float().mean()]
        return MinibatchLoss(loss=loss, row=row, ratio=ratio, A_hat=A_hat)

    def _metrics(self, s: int, ro: SeedRollout, rows: list[torch.Tensor], last: MinibatchLoss) -> dict[str, float]:
        """Seed s's update metrics; also keeps its entropy and the numbers explain() shows."""
        hp = self.hp
        # One sample of the last minibatch, to show the guide's equation with real numbers.
        r0, A0 = last.ratio[0, 0].detach(), last.A_hat[0, 0]
        sample = torch.stack([
            r0, r0.clamp(1 - hp.clip_eps, 1 + hp.clip_eps), A0,
            clipped_surrogate_loss(r0, A0, hp.clip_eps), last.A_hat.mean(), last.ratio.mean().detach(),
        ]).tolist()
        keys = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
                "grad_norm", "critic_grad_norm", "ratio_mean")
        metrics = dict(zip(keys, torch.stack(rows).mean(0).tolist(), strict=True))
        metrics["explained_variance"] = float(ro.explained_var)
        metrics["V_mean"] = float(ro.values.mean())
        metrics["return_mean"] = float(ro.returns.mean())
        if self.continuous:  # sigma in action units, so it reads like a price or an order size
            low, high = self.spec.action_space.bounds(self.device)
            sigma, half_range = self.policies[s].log_std.detach().exp(), (high - low) / 2
            # Per-dim bounds: each dim's sigma in its own units, then the mean.
            metrics["action_std"] = float((sigma * half_range).mean() if torch.is_tensor(half_range)
                                          else sigma.mean() * half_range)
        self.entropies[s] = metrics["entropy"]
        self.lasts[s] = {
            "ratio": sample[0], "clipped_ratio": sample[1], "A_hat": sample[2],
            "L_clip": sample[3], "A_hat_mean": sample[4], "ratio_mean": sample[5],
            "clip_fraction": metrics["clip_fraction"],
            "approx_kl": metrics["approx_kl"], "entropy": metrics["entropy"],
        }
        return metrics

    # ------------------------------------------------------------------ views

    def exploration(self) -> tuple[str, float]:
        """Mean policy entropy at the last update (the entropy bonus keeps it from collapsing).
        A stack reports its first seed's (each seed's is in its update_seeds() metrics)."""
        return ("entropy", self.entropies[0])

    @torch.no_grad()
    def explain(self, obs: torch.Tensor, state: torch.Tensor) -> MAPPOExplain:
        """Copy 0's policy and value, and the last update's PPO numbers (see MAPPOExplain)."""
        self._solo("explain")
        out = self.policy(obs[:1])[0]
        mean = std = probs = None  # mean and std, or probs: see MAPPOExplain
        if self.continuous:  # vector actions: the first number's
            low, high = self.spec.action_space.dim_range(0)
            first = out if self.policy.dims == 1 else out[:, 0]
            log_std = self.policy.log_std if self.policy.dims == 1 else self.policy.log_std[:, 0]
            mean = floats(scaled_to_bounds(first.clamp(-1.0, 1.0), low, high))
            std = floats(log_std.exp() * (high - low) / 2)
        else:
            probs = self.policy.mask.own_rows(torch.softmax(out, -1))
        V = self.value_norm.denormalise(self.V(state[:1]))[0]
        last = self.lasts[0]  # empty before the first update
        return MAPPOExplain(
            V=floats(V.expand(self.spec.n_agents)), eps=self.hp.clip_eps,
            mean=mean, std=std, probs=probs,
            ratio=last.get("ratio"), clipped_ratio=last.get("clipped_ratio"),
            A_hat=last.get("A_hat"), L_clip=last.get("L_clip"),
            ratio_mean=last.get("ratio_mean"), A_hat_mean=last.get("A_hat_mean"),
            clip_fraction=last.get("clip_fraction"), approx_kl=last.get("approx_kl"),
            entropy=last.get("entropy"),
        )

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        self._solo("state_dict")
        return {
            "policy": self.policy.state_dict(),
            "V": self.V.state_dict(),
            "value_norm": self.value_norm.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "buffer": {k: v[: self.pos].clone() for k, v in self.buffer.items()},
            "buffer_shapes": {k: list(v.shape) for k, v in self.buffer.items()},
            "pos": self.pos,
            "updates": self.updates,
            "entropy": self.entropies[0],
            "last": dict(self.lasts[0]),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._solo("load_state_dict")
        self.policy.load_state_dict(state["policy"])
        self.V.load_state_dict(state["V"])
        self.value_norm.load_state_dict(state["value_norm"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.pos, self.updates = int(state["pos"]), int(state["updates"])
        self.entropies, self.lasts = [float(state["entropy"])], [dict(state["last"])]
        self.buffer = {}
        for k, shape in state["buffer_shapes"].items():
            stored = state["buffer"][k]
            self.buffer[k] = torch.zeros(shape, dtype=stored.dtype, device=self.device)
            self.buffer[k][: self.pos] = stored.to(self.device)

    # ------------------------------------------------------------------ what-if

    @torch.no_grad()
    def what_if(self, cf: Counterfactual) -> MAPPOWhatIf:
        """pi_i, V(s) and the one-step advantage of the action as taken and as replaced."""
        self._solo("what_if")
        i = cf.agent
        a = cf.joint.to(self.device)
        if self.continuous:  # the policy is a Gaussian over the unit space; env actions are clipped
            space = self.spec.action_space
            a = bounds_to_unit(a.float(), space.low, space.high)
        obs = cf.obs.to(self.device).expand(2, -1, -1)
        log_pi = self.policy.log_prob_entropy(obs, a)[0][:, i]  # [2]
        k = 0 if self.n_values == 1 else i
        V = self.value_norm.denormalise(self.V(cf.state.to(self.device)))[0, k]
        V_next = self.value_norm.denormalise(self.V(cf.next_state.to(self.device)))[:, k]
        r = cf.reward.to(self.device)
        r = r.mean(-1) if self.n_values == 1 else r[:, i]
        A = r + self.hp.gamma * V_next - V
        return MAPPOWhatIf(
            log_pi_taken=float(log_pi[0]), log_pi_replaced=float(log_pi[1]),
            ratio=float((log_pi[1] - log_pi[0]).exp()), V=float(V), gamma=self.hp.gamma,
            A_taken=float(A[0]), A_replaced=float(A[1]),
            V_next_taken=float(V_next[0]), V_next_replaced=float(V_next[1]),
        )
