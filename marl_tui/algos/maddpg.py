"""MADDPG: deterministic actors mu_i(o_i), centralised critics Q_i(s, a_1..a_n) (guide Part 2).

Read beside the study guide's pseudocode (attributes: mu, mu_target, Q, Q_target):

    a_i = mu_i(o_i) + eps                                     (act: exploration noise)
    y_i = r_i + gamma Q_i^-(s', mu_1^-(o_1'), ..., mu_n^-(o_n'))   (td_target, target_values)
    L_i = (Q_i(s, a_1..a_n) - y_i)^2                          (critic loss)
    grad J_i = E[grad mu_i(o_i) . grad_{a_i} Q_i(s, a)|a_i = mu_i(o_i)]   (actor update)
    theta^- <- tau theta + (1 - tau) theta^-                  (soft target updates)

Every agent has its own actor and its own critic (one set of weights per agent, all
evaluated in one batched matmul by networks.AgentMLP). Critics see the global state,
every agent's observation and every agent's action (or, with critic = "mean_field", their
own observation and action and the others' mean action: guide Part 8); actions enter the
critics in unit scale [-1, 1] (continuous) or as one-hot vectors (discrete).

Continuous actions: mu_i = tanh(net_i(o_i)) mapped to [low, high], d numbers per agent (d = 1
for the bundled scenarios; an external env's vector actions have more, each dim scaled to its own
bounds); Gaussian exploration noise whose std is `noise_std` x the action range, annealed
linearly to `noise_final`. Critics see every agent's d-vector.
Discrete actions: straight-through Gumbel-softmax actors (Lowe et al. 2017): the forward
pass is a hard one-hot action, the gradient is the soft one's; acting samples the
categorical policy (Gumbel-max), plus a uniformly random action with probability epsilon
(the same `noise_std` knob). A small regulariser on the pre-tanh outputs / logits keeps
them from saturating.

Other agents' actions a_j (j != i) in agent i's actor update: classic MADDPG uses the
buffer's a_j (other_actions="buffer"); we default to the current mu_j(o_j) because agent i
should best-respond to what the others do now, while the buffer holds their old,
exploratory actions (for discrete actors: Gumbel samples plus epsilon), so its gradient
would average over contexts that no longer happen. Where agent i's right action hinges on
the others' (fulfilment: accept only if no cheaper store does), this decides: 49% vs 18%
optimal choices after 150k steps in our runs; on pricing both reach Nash. All N actor
losses are still evaluated in one batched pass.

Critics learn rewards divided by their std, measured once when learning starts
(`normalise_rewards`); everything reported (Q_i, y_i, dQ/da) is converted back to reward units.

Seeds: one learner may hold S seeds of the same run (`stack`, for `compare --batched-seeds`). Their
networks fold into the agent axis (S*N stacked agent networks, seed-major: seed s's agents are
s*N..(s+1)*N-1), so every tensor [B, N, ...] of a solo run is [B, S*N, ...] here and each critic
sees only its own seed's state, observations and joint action; a solo run is the case S = 1.
Every random draw is seed s's own generator's, in a solo run's shapes and order, and each seed
keeps its own replay buffer and reward_std, so seed s computes bit for bit what its solo run does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from marl_tui.algos.base import (
    ActOutput,
    Algorithm,
    Capabilities,
    Counterfactual,
    Explain,
    Transition,
    WhatIfValues,
    as_env_actions,
    as_vectors,
    bounds_to_unit,
    child_generator,
    counterfactual_advantage,
    floats,
    mean_metrics,
    scaled_to_bounds,
)
from marl_tui.algos.buffers import ReplayBuffer
from marl_tui.algos.masking import ActionMask
from marl_tui.algos.networks import AgentMLP, forward_in_blocks, gumbel_noise, soft_update
from marl_tui.envs.base import EnvSpec


@dataclass(frozen=True)
class MADDPGHyperparameters:
    steps: int = 300_000  # training budget: environment steps over all parallel copies
    gamma: float = 0.95  # discount
    lr: float = 1e-3  # actor learning rate (alpha_actor)
    critic_lr: float = 1e-3  # critic learning rate (alpha_crit)
    hidden: int = 64  # hidden units per layer, actors and critics
    batch_size: int = 512  # transitions per gradient step
    buffer_size: int = 200_000  # replay buffer capacity (transitions)
    tau: float = 0.01  # soft target update rate
    noise_std: float = 0.1  # continuous: Gaussian std as a fraction of the range; discrete: epsilon
    noise_final: float = 0.02  # value noise_std anneals to (linearly)
    noise_decay_steps: int = 200_000  # env steps after warm-up over which it anneals (0: constant)
    # Warm-up: env steps (over all copies) before the first update, acting uniformly at random.
    learning_starts: int = 10_000
    updates_per_step: int = 4  # gradient steps per batched environment step
    grad_clip: float = 0.5  # max gradient norm, per agent's network (actor and critic each)
    action_reg: float = 1e-3  # weight of mean(pre-tanh output^2) or mean(logits^2)
    gumbel_temperature: float = 1.0  # softness of the straight-through gradient (discrete)
    # Huber (delta 1, in critic units) instead of the squared critic loss: a switch, as in QMIX;
    # MAPPO's huber_delta is a different knob (the threshold of a value loss always Huber).
    huber: bool = False
    other_actions: Literal["current", "buffer"] = "current"  # a_j (j != i) in the actor update
    # Divide rewards by their std, measured once when learning starts: Adam's steps have a fixed
    # size, so a critic fitting rewards of 0.01 is ten times noisier than one fitting 0.1.
    normalise_rewards: bool = True
    # What critic i sees. "full": Q_i(s, o_1..o_n, a_1..a_n), input growing as N (obs, actions)
    # in each of N critics. "mean_field" (guide Part 8): Q_i(s, o_i, a_i, mean_{j != i} a_j),
    # the others' actions summarised by their mean; with one agent the two are the same critic.
    critic: Literal["full", "mean_field"] = "full"


class MADDPGExplain(Explain, kw_only=True):
    """Copy 0's greedy joint action a = mu(o), what each critic makes of it, and the last
    update's target. One entry per agent i; values in the trainer's reward units (reward x
    reward_scale). Continuous scenarios fill mu_i and dQ_da, discrete ones greedy and dQ_da_onehot.
    Vector actions (d > 1 numbers per agent): mu_i and dQ_da are those of the first number.
    """

    Q_i: tuple[float, ...]  # critic i's value Q_i(s, mu_1(o_1)..mu_n(o_n))
    gamma: float  # the discount in y_i
    # Continuous actions (None when discrete):
    mu_i: tuple[float, ...] | None = None  # the greedy action in action units (price, order size)
    dQ_da: tuple[float, ...] | None = None  # dQ_i/da_i per action unit: where the actor is pushed
    # Discrete actions (None when continuous):
    greedy: tuple[int, ...] | None = None  # argmax of mu_i's logits: the action index
    dQ_da_onehot: tuple[tuple[float, ...], ...] | None = None  # dQ_i/da_i over the one-hot entries
    # Means over the last update's batch (None before the first update):
    y_i: tuple[float, ...] | None = None  # the target y_i = r_i + gamma Q_i^-(s', mu^-(o'))
    r_i: tuple[float, ...] | None = None  # the reward r_i
    Q_next: tuple[float, ...] | None = None  # Q_i^-(s', mu^-(o')), the target critic's value


class MADDPGWhatIf(WhatIfValues, kw_only=True):
    """Each critic's Q_i(s, a_1..a_n) of copy 0's joint action as taken, with a_i replaced, and
    of the greedy joint action mu(o) (MADDPGExplain.Q_i); the trainer's reward units."""

    Q_taken: tuple[float, ...]  # Q_j(s, a) for every critic j
    Q_replaced: tuple[float, ...]  # Q_j(s, (a_-i, a'_i))
    Q_greedy: tuple[float, ...]  # Q_j(s, mu_1(o_1)..mu_n(o_n))
    # Discrete actions: COMA's advantage with critic i and the exploring policy pi_i (None when
    # continuous: the sum over a' is an integral no critic gives in closed form).
    A_taken: float | None = None  # Q_i(s, a) - sum_a' pi_i(a'|o_i) Q_i(s, (a_-i, a'))
    A_replaced: float | None = None  # the same with a'_i in place of a_i


def td_target(
    r: torch.Tensor, Q_next: torch.Tensor, gamma: float, terminated: torch.Tensor
) -> torch.Tensor:
    """y_i = r_i + gamma (1 - terminated) Q_i^-(s', mu^-(o')), with Q_next = Q_i^-(s', mu^-(o')).

    r, Q_next: [B, N]; terminated: [B] (or [B, N]). Time-limit ends are not terminations:
    the trainer passes them as truncations, so they bootstrap.
    """
    alive = 1.0 - terminated.to(r.dtype)
    if alive.dim() < r.dim():
        alive = alive.unsqueeze(-1)
    return r + gamma * alive * Q_next


def gumbel_softmax_st(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Straight-through Gumbel-softmax: a hard one-hot sample forward, the soft gradient back.

    noise: the Gumbel draws, shaped like logits (drawn from generator when None)."""
    g = gumbel_noise(logits, generator) if noise is None else noise
    soft = F.softmax((logits + g) / temperature, dim=-1)
    hard = F.one_hot(soft.argmax(-1), logits.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft


def critic_width(spec: EnvSpec, critic: str) -> int:
    """Inputs of one critic Q_i: s, then every o_j and a_j ("full") or o_i, a_i and the mean
    of the others' a_j ("mean_field"; no mean when there are no others)."""
    n, o = spec.n_agents, spec.obs_dim
    d = spec.action_space.n if spec.action_space.kind == "discrete" else spec.action_space.dims
    if critic == "mean_field":
        return spec.state_dim + o + d * (2 if n > 1 else 1)
    return spec.state_dim + n * o + n * d


def seed_blocks(x: torch.Tensor, seeds: int, dim: int) -> list[torch.Tensor]:
    """Each seed's block of x along dim (seeds side by side), as a dense copy laid out as a solo
    run's tensor is: a reduction over it sums in the solo's order. (One reduction over all seeds
    vectorises across their blocks, which changes the last bits.)"""
    return [block.clone() for block in x.chunk(seeds, dim)]


def clip_per_agent_(params: list[nn.Parameter], max_norm: float, seeds: int = 1) -> torch.Tensor:
    """Clip each agent's gradient separately (parameters stacked as [N, ...], or [S*N, ...] for
    S seeds).

    Returns the pre-clip norm of every agent, [N]. Per agent, because MADDPG gives each
    agent its own optimiser: one agent's large gradient must not shrink another's step.
    """
    per_param = torch.stack([p.grad.flatten(1).pow(2).sum(1) for p in params])
    sq = torch.cat([block.sum(0) for block in seed_blocks(per_param, seeds, 1)])
    norms = sq.sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for p in params:
        p.grad.mul_(scale.view(-1, *([1] * (p.dim() - 1))))
    return norms


def stacked_adam(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One Adam state_dict over seed-stacked parameters from the seeds' own (parameters stacked
    as [N, ...], seed after seed). Adam is elementwise, so its moments stack like the weights;
    the step counts must agree (seeds step in lockstep)."""
    first = states[0]
    stacked: dict[int, dict[str, Any]] = {}
    for i, per_param in first["state"].items():
        stacked[i] = {}
        for k, v in per_param.items():
            parts = [s["state"][i][k] for s in states]
            if isinstance(v, torch.Tensor) and v.dim() > 0:
                stacked[i][k] = torch.cat(parts)
            elif any(not torch.equal(torch.as_tensor(p), torch.as_tensor(v)) for p in parts):
                raise ValueError(f"MADDPG.stack: the solos' optimisers differ in {k}; seeds must step in lockstep")
            else:
                stacked[i][k] = v.clone() if isinstance(v, torch.Tensor) else v
    if any(len(s["state"]) != len(stacked) for s in states):
        raise ValueError("MADDPG.stack: some solos' optimisers have stepped and others not")
    return {"state": stacked, "param_groups": first["param_groups"]}


def adam_slice(state: dict[str, Any], agents: slice) -> dict[str, Any]:
    """One seed's Adam state_dict (its agents' rows, copied) from a seed-stacked one."""
    return {"state": {i: {k: (v[agents] if v.dim() > 0 else v).clone() if isinstance(v, torch.Tensor) else v
                          for k, v in per_param.items()}
                      for i, per_param in state["state"].items()},
            "param_groups": state["param_groups"]}


class MADDPG(Algorithm):
    """Multi-agent DDPG with per-agent centralised critics (Lowe et al. 2017)."""

    name = "maddpg"
    title = "MADDPG"
    capabilities = Capabilities(continuous=True, discrete=True, on_policy=False,
                                centralised_critic=True)
    exploration_field = "noise_std"
    Hyperparameters = MADDPGHyperparameters
    explain_type = MADDPGExplain
    what_if_type = MADDPGWhatIf
    supports_seed_stack: ClassVar[bool] = True
    defaults_by_kind: ClassVar[dict[str, dict[str, Any]]] = {
        # A repeated static game: today's price does not change tomorrow's demand, so gamma = 0
        # lets each store's critic be its own profit surface and the actors climb to Nash.
        "pricing": {"gamma": 0.0, "steps": 200_000},
        "warehouse": {"gamma": 0.95, "steps": 200_000},
        # Orders are i.i.d. per step: nothing to bootstrap. More gradient steps: the cost of a
        # redundant accept (1 against ~4 per order, split over N stores) is a faint signal.
        "fulfillment": {"gamma": 0.0, "steps": 350_000, "batch_size": 256, "action_reg": 1e-4},
    }

    def __init__(self, spec: EnvSpec, hp: MADDPGHyperparameters, device: torch.device, seeds: int = 1) -> None:
        """A solo learner (seeds = 1). More seeds only through stack(), which gives them the solos'
        generators and replay buffers (none are made here) and the solos' weights."""
        super().__init__(spec, hp, device)
        n, o = spec.n_agents, spec.obs_dim
        self.seeds = seeds
        self.discrete = spec.action_space.kind == "discrete"
        self.d_act = spec.action_space.n if self.discrete else spec.action_space.dims  # one agent's action
        # The trainer seeds the global RNG before building us; draw our own streams from it.
        # One generator per seed: exploration noise, epsilon, Gumbel draws.
        self.generators = [child_generator(high=2**31 - 1)] if seeds == 1 else []
        # Agents of different action sizes (masking.py): on act's rows [.., N, A], and on the
        # learning layout's stacked agents [.., S*N, A].
        self.mask = ActionMask(spec, device)
        self.mask_k = self.mask.tiled(seeds)

        # mu_i(o_i): one set of weights per agent (and seed); a small output gain starts near mid-range.
        k = seeds * n
        self.mu = AgentMLP(k, o, self.d_act, hp.hidden, out_gain=0.01).to(device)
        # Q_i(s, o_1..o_n, a_1..a_n): one critic per agent, all fed the same joint input; or
        # Q_i(s, o_i, a_i, mean of a_j) (mean_field).
        self.mean_field = hp.critic == "mean_field"
        d_critic = critic_width(spec, hp.critic)
        self.Q = AgentMLP(k, d_critic, 1, hp.hidden, activation=nn.ReLU).to(device)
        self.mu_target = AgentMLP(k, o, self.d_act, hp.hidden, out_gain=0.01).to(device)
        self.Q_target = AgentMLP(k, d_critic, 1, hp.hidden, activation=nn.ReLU).to(device)
        self.mu_target.load_state_dict(self.mu.state_dict())
        self.Q_target.load_state_dict(self.Q.state_dict())
        # Adam is elementwise: one optimiser over the S seeds' stacked weights is S solo ones.
        self.mu_opt = torch.optim.Adam(self.mu.parameters(), lr=hp.lr)
        self.Q_opt = torch.optim.Adam(self.Q.parameters(), lr=hp.critic_lr)

        # One replay buffer per seed, each sampled with its own generator.
        self.buffers: list[ReplayBuffer] = []
        if seeds == 1:
            # An index, or a continuous action: one number ([n]) or a d-vector ([n, d]) per agent.
            act_shape = (n,) if self.d_act == 1 else (n, self.d_act)
            act_field = ((n,), torch.long) if self.discrete else (act_shape, torch.float32)
            self.buffers.append(ReplayBuffer(
                hp.buffer_size,
                {
                    "obs": ((n, o), torch.float32),
                    "state": ((spec.state_dim,), torch.float32),
                    "actions": act_field,  # unit scale [-1, 1] or action index
                    "reward": ((n,), torch.float32),
                    "next_obs": ((n, o), torch.float32),
                    "next_state": ((spec.state_dim,), torch.float32),
                    "terminated": ((), torch.float32),
                },
                device,
                seed=self.generators[0].initial_seed() + 1,
            ))
        self.env_steps = 0  # transitions observed, over all copies (of one seed)
        self.updates = 0  # gradient steps taken
        self.last: dict[str, torch.Tensor] = {}  # per-agent figures [S, N] of the last update
        # Critics learn r / reward_std (one per seed); 0 stands for "measure it when learning starts".
        self.reward_stds = [0.0 if hp.normalise_rewards else 1.0] * seeds

    @property
    def buffer(self) -> ReplayBuffer:
        """A solo's replay buffer."""
        return self.buffers[0]

    @property
    def reward_std(self) -> float:
        """A solo's reward_std."""
        return self.reward_stds[0]

    # --- seeds -------------------------------------------------------------------
    @classmethod
    def stack(cls, solos: Sequence[MADDPG]) -> MADDPG:
        """One learner of S = len(solos) seeds, in the solos' state (see the module's docstring).

        It adopts each solo's generator and replay buffer (the objects: seed s draws and samples
        exactly as its solo would, and no buffer is copied) and copies everything else in."""
        if not solos:
            raise ValueError("MADDPG.stack needs at least one solo learner")
        first = solos[0]
        if any(s.seeds != 1 for s in solos):
            raise ValueError("MADDPG.stack takes solo learners (seeds = 1)")
        for what, of in (("spec", lambda a: a.spec), ("hp", lambda a: a.hp), ("device", lambda a: a.device),
                         ("env_steps", lambda a: a.env_steps), ("updates", lambda a: a.updates),
                         ("buffer size", lambda a: (a.buffer.pos, a.buffer.size)),
                         ("reward_std measured", lambda a: a.reward_std == 0.0)):
            if any(of(s) != of(first) for s in solos):
                raise ValueError(f"MADDPG.stack: the solos differ in {what}; seeds must step in lockstep")
        # The shell's own initial weights are overwritten: leave the global RNG as it was.
        with torch.random.fork_rng(devices=[]):
            stacked = cls(first.spec, first.hp, first.device, seeds=len(solos))
        stacked.generators = [s.generators[0] for s in solos]
        stacked.buffers = [s.buffer for s in solos]
        for name in ("mu", "Q", "mu_target", "Q_target"):
            parts = [getattr(s, name).state_dict() for s in solos]
            getattr(stacked, name).load_state_dict({k: torch.cat([p[k] for p in parts]) for k in parts[0]})
        for name in ("mu_opt", "Q_opt"):
            getattr(stacked, name).load_state_dict(stacked_adam([getattr(s, name).state_dict() for s in solos]))
        stacked.env_steps, stacked.updates = first.env_steps, first.updates
        stacked.reward_stds = [s.reward_std for s in solos]
        if first.last:
            stacked.last = {k: torch.cat([s.last[k] for s in solos]) for k in first.last}
        return stacked

    def write_back(self, solos: Sequence[MADDPG]) -> None:
        """Copy seed s's slice of everything into solos[s] (their buffers and generators are this
        learner's own objects already), so each acts, explains and saves as its solo run would."""
        if len(solos) != self.seeds:
            raise ValueError(f"write_back: {len(solos)} solos for {self.seeds} seeds")
        n = self.spec.n_agents
        for s, solo in enumerate(solos):
            agents = slice(s * n, (s + 1) * n)
            for name in ("mu", "Q", "mu_target", "Q_target"):
                getattr(solo, name).load_state_dict({k: v[agents] for k, v in getattr(self, name).state_dict().items()})
            for name in ("mu_opt", "Q_opt"):
                getattr(solo, name).load_state_dict(adam_slice(getattr(self, name).state_dict(), agents))
            solo.env_steps, solo.updates = self.env_steps, self.updates
            solo.reward_stds = [self.reward_stds[s]]
            solo.last = {k: v[s:s + 1].clone() for k, v in self.last.items()}

    def _solo_only(self, what: str) -> None:
        if self.seeds != 1:
            raise RuntimeError(f"a seed-stacked MADDPG has no {what} of its own: write_back(solos) and ask a solo")

    # --- helpers -----------------------------------------------------------------
    def noise(self) -> float:
        """Current exploration level: noise_std annealed linearly to noise_final after warm-up."""
        hp = self.hp
        if hp.noise_decay_steps <= 0:
            return hp.noise_std
        frac = min(1.0, max(0, self.env_steps - hp.learning_starts) / hp.noise_decay_steps)
        return hp.noise_std + frac * (hp.noise_final - hp.noise_std)

    def _draws(self, draw: Callable[[torch.Generator], torch.Tensor]) -> torch.Tensor:
        """Seeds-major rows: every seed's draw(generator) from its own generator, one after another."""
        return torch.cat([draw(g) for g in self.generators]).to(self.device)

    def _rand(self, *shape: int) -> torch.Tensor:
        """[S*b, ...] seeds-major rows: seed s's torch.rand(shape) (shape = one seed's)."""
        return self._draws(lambda g: torch.rand(shape, generator=g))

    def _gumbel(self, like: torch.Tensor, dim: int) -> torch.Tensor:
        """Gumbel draws shaped like `like`, whose dim holds the S seeds side by side: seed s's own."""
        chunks = like.chunk(self.seeds, dim)
        return torch.cat([gumbel_noise(c, g) for c, g in zip(chunks, self.generators, strict=True)], dim)

    def _mu(self, net: AgentMLP, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(greedy action in critic units [..., N, d_act], raw output for the regulariser)."""
        raw = self.mask_k.valid_scores(self._net(net, obs))
        if self.discrete:
            return F.one_hot(raw.argmax(-1), self.d_act).float(), raw
        return self.mask_k.zero_padding(torch.tanh(raw)), raw

    def _net(self, net: AgentMLP, x: torch.Tensor) -> torch.Tensor:
        """net(x) on [..., S*N, d]: every seed's block of agents on its own rows (forward_in_blocks)."""
        return forward_in_blocks(net, x, self.seeds)

    def _on_rows(self, net: AgentMLP, obs: torch.Tensor) -> torch.Tensor:
        """net on seeds-major rows [S*b, N, O] (act's layout) -> [S*b, N, d_out]."""
        s, n = self.seeds, self.spec.n_agents
        b = obs.shape[0] // s
        out = self._net(net, obs.view(s, b, n, -1).transpose(0, 1).reshape(b, s * n, -1))
        if s == 1:
            return out
        # Agent-major over every seed's copies, the memory order of a solo's output (its agents'
        # networks write agent after agent): each seed's rows, made dense (seed_batch.seed_rows),
        # are then laid out as its solo's are, and an env summing over them sums in the same order.
        return out.view(b, s, n, -1).permute(2, 1, 0, 3).contiguous().permute(1, 2, 0, 3).reshape(s * b, n, -1)

    def _critic_in(self, state: torch.Tensor, obs: torch.Tensor, joint: torch.Tensor) -> torch.Tensor:
        """[B, S*N, d_critic]: critic i's input; state [B, S*state_dim], obs [B, S*N, O], joint
        [B, S*N*d] or per critic [B, S*N, N*d] (a solo's shapes when S = 1).

        Full critics see [s, o_1..o_n, a_1..a_n]; mean-field ones [s, o_i, a_i, mean_{j != i} a_j],
        a_i and the a_j read from critic i's joint action; all of its own seed."""
        n, d, S = self.spec.n_agents, self.d_act, self.seeds
        b = obs.shape[0]
        state, obs = state.reshape(b, S, -1), obs.reshape(b, S, n, -1)
        if self.mean_field:
            if joint.dim() == 2:  # every critic sees the same joint action
                a_own = joint.reshape(b, S, n, d)
                others = a_own.sum(2, keepdim=True) - a_own
            else:  # critic i's own row: a_i on its diagonal
                rows = joint.reshape(b, S, n, n, d)
                a_own = rows.diagonal(dim1=2, dim2=3).transpose(2, 3)
                others = rows.sum(3) - a_own
            parts = [state[:, :, None].expand(-1, -1, n, -1), obs, a_own]
            if n > 1:
                parts.append(others / (n - 1))
            return torch.cat(parts, dim=-1).flatten(1, 2)
        ctx = torch.cat([state, obs.flatten(2)], dim=-1)[:, :, None].expand(-1, -1, n, -1)
        joint = (joint.reshape(b, S, 1, n * d).expand(-1, -1, n, -1) if joint.dim() == 2
                 else joint.reshape(b, S, n, n * d))
        return torch.cat([ctx, joint], dim=-1).flatten(1, 2)

    def _buffer_actions(self, a: torch.Tensor) -> torch.Tensor:
        """Stored actions in critic units: [B, N, d_act]."""
        if self.discrete:
            return F.one_hot(a, self.d_act).float()
        return self.mask_k.zero_padding(as_vectors(a, self.d_act))

    def _seed_means(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """[S]: each seed's mean of x (its N agents along dim, and everything else)."""
        return torch.stack([block.mean() for block in seed_blocks(x, self.seeds, dim)])

    # --- act ---------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, state: torch.Tensor, explore: bool) -> ActOutput:
        """a_i = mu_i(o_i) (+ noise when exploring); uniformly random during warm-up.

        Rows are seeds-major: rows s*b..(s+1)*b-1 are seed s's b copies."""
        b, n = obs.shape[0] // self.seeds, obs.shape[1]
        warm = explore and self.env_steps < self.hp.learning_starts
        if self.discrete:
            if not explore:
                return ActOutput(self.mask.valid_scores(self._on_rows(self.mu, obs)).argmax(-1))
            uniform = self.mask.index_of(self._rand(b, n))
            if warm:
                return ActOutput(uniform)
            logits = self.mask.valid_scores(self._on_rows(self.mu, obs))
            # Gumbel-max samples the categorical policy; epsilon adds uniform actions on top.
            a = (logits + self._gumbel(logits, 0)).argmax(-1)
            return ActOutput(torch.where(self._rand(b, n) < self.noise(), uniform, a))
        d = self.d_act
        if warm:
            unit = self._rand(b, n, d) * 2.0 - 1.0
        else:
            unit = torch.tanh(self._on_rows(self.mu, obs))
            if explore:
                # noise_std is a fraction of the range; the range is 2 in unit scale.
                eps = self._draws(lambda g: torch.randn((b, n, d), generator=g))
                unit = (unit + 2.0 * self.noise() * eps).clamp(-1.0, 1.0)
        low, high = self.spec.action_space.bounds(self.device)
        return ActOutput(as_env_actions(scaled_to_bounds(unit, low, high), d))

    # --- observe -----------------------------------------------------------------
    def observe(self, transition: Transition) -> None:
        """Store (o, s, a, r, o', s') in B (seed s's rows in its own); continuous actions in unit scale."""
        space = self.spec.action_space
        a = transition.actions.long() if self.discrete else bounds_to_unit(
            transition.actions.float(), *space.bounds(self.device))
        b = transition.obs.shape[0] // self.seeds
        for s, buffer in enumerate(self.buffers):
            rows = slice(s * b, (s + 1) * b)
            buffer.add({
                "obs": transition.obs[rows],
                "state": transition.state[rows],
                "actions": a[rows],
                "reward": transition.reward[rows],
                "next_obs": transition.next_obs[rows],
                "next_state": transition.next_state[rows],
                "terminated": transition.terminated[rows],
            })
        self.env_steps += b

    def ready(self) -> bool:
        return self.env_steps >= self.hp.learning_starts and len(self.buffers[0]) >= self.hp.batch_size

    # --- update ------------------------------------------------------------------
    def target_values(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(y_i [B, S*N], Q_next = Q_i^-(s', mu^-(o')) [B, S*N]) from mu_target and Q_target.

        Both in critic units: rewards divided by their seed's reward_std. terminated: [B] or [B, S].
        """
        b, S = batch["reward"].shape[0], self.seeds
        with torch.no_grad():
            a_next, _ = self._mu(self.mu_target, batch["next_obs"])
            x_next = self._critic_in(batch["next_state"], batch["next_obs"], a_next.flatten(1))
            Q_next = self._net(self.Q_target, x_next).squeeze(-1)
            sigma = torch.tensor(self.reward_stds, dtype=batch["reward"].dtype, device=self.device)[:, None]
            r = batch["reward"].view(b, S, -1) / sigma
            y_i = td_target(r, Q_next.view(b, S, -1), self.hp.gamma, batch["terminated"].view(b, S))
        return y_i.flatten(1), Q_next

    def update(self) -> dict[str, float]:
        """`updates_per_step` rounds of: critic step, actor step, soft target updates.

        Losses are in critic units (rewards / reward_std); Q, y and rewards in reward units.
        """
        if self.seeds != 1:
            raise RuntimeError(f"a MADDPG of {self.seeds} seeds updates through update_seeds()")
        return self.update_seeds()[0]

    def update_seeds(self) -> list[dict[str, float]]:
        """update() of every seed: element s is what seed s's solo update() returns."""
        # Every metric of a gradient step is an [S] tensor, so each mean is a list of S floats.
        means = cast(dict[str, list[float]], mean_metrics(self.hp.updates_per_step, self._gradient_step))
        noise, steps = self.noise(), float(self.updates)  # not "updates": the trainer's column
        return [{**{k: v[s] for k, v in means.items()}, "noise": noise, "gradient_steps": steps}
                for s in range(self.seeds)]

    def _sample(self) -> dict[str, torch.Tensor]:
        """A batch of every seed from its own buffer: [B, S*N, ...] (state [B, S*state_dim],
        terminated [B, S]): a solo's shapes when S = 1."""
        samples = [buffer.sample(self.hp.batch_size) for buffer in self.buffers]
        batch = {k: torch.stack([s[k] for s in samples], 1) for k in samples[0]}
        return {k: v if k == "terminated" else v.flatten(1, 2) for k, v in batch.items()}

    def _gradient_step(self) -> dict[str, torch.Tensor]:
        hp, n = self.hp, self.spec.n_agents
        if not self.reward_stds[0]:  # every seed measures at the same step (lockstep)
            stds = [float(buffer.data["reward"][: len(buffer)].std()) for buffer in self.buffers]
            self.reward_stds = [std if std > 1e-8 else 1.0 for std in stds]  # nan (one reward) fails too
        batch = self._sample()
        obs, state = batch["obs"], batch["state"]
        a_buf = self._buffer_actions(batch["actions"])  # [B, S*N, d]

        # -- critic update: L_i = (Q_i(s, a) - y_i)^2, each critic its own mean --
        y_i, Q_next = self.target_values(batch)
        Q_i = self._net(self.Q, self._critic_in(state, obs, a_buf.flatten(1))).squeeze(-1)  # [B, S*N]
        td = F.huber_loss(Q_i, y_i, reduction="none") if hp.huber else (Q_i - y_i).pow(2)
        critic_loss = td.mean(0).sum()  # a sum over seeds too: each seed's gradient is its solo's
        self.Q_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        critic_norm = clip_per_agent_(list(self.Q.parameters()), hp.grad_clip, self.seeds)
        self.Q_opt.step()

        # -- actor update: ascend Q_i at a_i = mu_i(o_i); a_j from the current actors or B --
        raw = self._net(self.mu, obs)
        logits = self.mask_k.valid_scores(raw)
        a_mu = (gumbel_softmax_st(logits, hp.gumbel_temperature, noise=self._gumbel(logits, 1))
                if self.discrete else self.mask_k.zero_padding(torch.tanh(raw)))
        if hp.other_actions == "buffer":
            a_other = a_buf
        elif self.discrete:  # greedy mu_j(o_j): the one-hot argmax, not a Gumbel sample
            a_other = F.one_hot(logits.detach().argmax(-1), self.d_act).float()
        else:
            a_other = a_mu.detach()
        b, S = obs.shape[0], self.seeds
        own = torch.eye(n, dtype=torch.bool, device=self.device)[None, None, :, :, None]
        # joint[b, s, i, j] = a_mu[b, s, j] if j == i else a_other[b, s, j]: critic i's input.
        joint = torch.where(own, a_mu.view(b, S, 1, n, -1), a_other.view(b, S, 1, n, -1)).flatten(3)
        # Q_i(s, a | a_i = mu_i(o_i)):
        Q_mu = self._net(self.Q, self._critic_in(state, obs, joint.flatten(1, 2))).squeeze(-1)
        actor_loss = -Q_mu.mean(0).sum() + hp.action_reg * self.mask_k.zero_padding(raw).pow(2).mean(0).sum()
        # Gradients w.r.t. mu's parameters only: the chain rule still runs through Q_i's
        # input (dQ_i/da_i), but Q's own weight gradients, unused here, are never computed.
        mu_params = list(self.mu.parameters())
        for p, g in zip(mu_params, torch.autograd.grad(actor_loss, mu_params), strict=True):
            p.grad = g
        actor_norm = clip_per_agent_(mu_params, hp.grad_clip, self.seeds)
        self.mu_opt.step()

        # -- target updates: theta^- <- tau theta + (1 - tau) theta^- --
        soft_update(self.mu_target, self.mu, hp.tau)
        soft_update(self.Q_target, self.Q, hp.tau)
        self.updates += 1

        # Reported in reward units (the trainer's scaled reward), not critic units; kept on the
        # device (update() reads every metric of its gradient steps back at once). One per seed.
        sigma = torch.tensor(self.reward_stds, dtype=torch.float64, device=self.device)
        sigma32 = sigma.float()[:, None]
        last = {k: torch.stack([block.mean(0) for block in seed_blocks(v, S, 1)])
                for k, v in (("y_i", y_i), ("r_i", batch["reward"]), ("Q_next", Q_next))}
        self.last = {"y_i": last["y_i"] * sigma32, "r_i": last["r_i"], "Q_next": last["Q_next"] * sigma32}
        return {
            "critic_loss": self._seed_means(td.detach()),
            "actor_loss": -self._seed_means(Q_mu.detach()),
            "q_mean": self._seed_means(Q_i.detach()).double() * sigma,
            "y_mean": self._seed_means(y_i).double() * sigma,
            "q_next_mean": self._seed_means(Q_next).double() * sigma,
            "reward_mean": self._seed_means(batch["reward"]),
            "reward_std": sigma,
            "critic_grad_norm": self._seed_means(critic_norm, 0),
            "actor_grad_norm": self._seed_means(actor_norm, 0),
        }

    def exploration(self) -> tuple[str, float]:
        return ("epsilon" if self.discrete else "noise", self.noise())

    # --- explain -----------------------------------------------------------------
    def explain(self, obs: torch.Tensor, state: torch.Tensor) -> MADDPGExplain:
        """Copy 0's greedy actions, each critic's Q_i and slope dQ_i/da_i, the last y_i (see
        MADDPGExplain). For discrete actions the slope is over the one-hot action."""
        self._solo_only("explain")
        n = self.spec.n_agents
        o, s = obs[:1].to(self.device), state[:1].to(self.device)
        with torch.no_grad():
            a_mu, raw = self._mu(self.mu, o)  # [1, N, d]
        # One leaf per critic so grad_{a_i} Q_i is read off without mixing agents.
        a = a_mu[:, None].expand(-1, n, -1, -1).clone().requires_grad_(True)  # [1, N, N, d]
        Q_i = self.Q(self._critic_in(s, o, a.flatten(2))).squeeze(-1)  # [1, N]
        (grad,) = torch.autograd.grad(Q_i.sum(), a)
        sigma = self.reward_std or 1.0  # critic units -> reward units
        dq = grad[0, torch.arange(n), torch.arange(n)] * sigma  # [N, d]: critic i w.r.t. a_i
        mu_i = dQ_da = greedy = dQ_da_onehot = None  # one pair is filled: see MADDPGExplain
        if self.discrete:
            greedy, dQ_da_onehot = tuple(raw[0].argmax(-1).tolist()), self.mask.own_rows(dq)
        else:
            low, high = self.spec.action_space.dim_range(0)  # vector actions: the first number's
            mu_i = floats(scaled_to_bounds(a_mu[0, :, 0], low, high))
            # Unit scale [-1, 1] spans (high - low) action units: per action unit, x 2 / range.
            dQ_da = floats(dq[:, 0] * 2.0 / (high - low))
        last = {k: floats(v[0]) for k, v in self.last.items()}  # empty before the first update
        return MADDPGExplain(
            Q_i=floats(Q_i[0].detach() * sigma), gamma=self.hp.gamma,
            mu_i=mu_i, dQ_da=dQ_da, greedy=greedy, dQ_da_onehot=dQ_da_onehot,
            y_i=last.get("y_i"), r_i=last.get("r_i"), Q_next=last.get("Q_next"),
        )

    # --- checkpoints ---------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        self._solo_only("state_dict")
        return {
            "mu": self.mu.state_dict(),
            "Q": self.Q.state_dict(),
            "mu_target": self.mu_target.state_dict(),
            "Q_target": self.Q_target.state_dict(),
            "mu_opt": self.mu_opt.state_dict(),
            "Q_opt": self.Q_opt.state_dict(),
            "buffer": self.buffer.state_dict(),
            "generator": self.generators[0].get_state(),
            "env_steps": self.env_steps,
            "updates": self.updates,
            "last": {k: v[0].tolist() for k, v in self.last.items()},
            "reward_std": self.reward_std,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._solo_only("load_state_dict")
        self.mu.load_state_dict(state["mu"])
        self.Q.load_state_dict(state["Q"])
        self.mu_target.load_state_dict(state["mu_target"])
        self.Q_target.load_state_dict(state["Q_target"])
        self.mu_opt.load_state_dict(state["mu_opt"])
        self.Q_opt.load_state_dict(state["Q_opt"])
        self.buffer.load_state_dict(state["buffer"])
        self.generators[0].set_state(state["generator"])
        self.env_steps = int(state["env_steps"])
        self.updates = int(state["updates"])
        self.last = {k: torch.tensor(v, device=self.device)[None] for k, v in state["last"].items()}
        self.reward_stds = [float(state["reward_std"])]

    # --- what-if -------------------------------------------------------------------
    @torch.no_grad()
    def what_if(self, cf: Counterfactual) -> MADDPGWhatIf:
        """Every critic on the joint action as taken and with agent i's replaced (see MADDPGWhatIf)."""
        self._solo_only("what_if")
        i = cf.agent
        o, s = cf.obs.to(self.device), cf.state.to(self.device)
        sigma = self.reward_std or 1.0  # critic units -> reward units

        def Q(joint: torch.Tensor) -> torch.Tensor:  # [K, N*d] critic-unit joint actions -> [K, N]
            k = joint.shape[0]
            return self.Q(self._critic_in(s.expand(k, -1), o.expand(k, -1, -1), joint)).squeeze(-1) * sigma

        def critic_units(a: torch.Tensor) -> torch.Tensor:  # actions as act() returns them
            if self.discrete:
                return self._buffer_actions(a.long()).flatten(1)
            space = self.spec.action_space
            return bounds_to_unit(a.float(), space.low, space.high)

        Q_rows = Q(critic_units(cf.joint.to(self.device)))
        a_mu, raw = self._mu(self.mu, o)
        Q_greedy = Q(a_mu.flatten(1))
        A_taken = A_replaced = None
        if self.discrete:
            each = cf.joint[:1].to(self.device).repeat(self.d_act, 1)
            each[:, i] = torch.arange(self.d_act, device=self.device)
            Q_each = Q(critic_units(each))[:, i]
            # The exploring policy of act(): epsilon uniform, else a sample of softmax(logits).
            eps = self.noise()
            pi_i = (1 - eps) * F.softmax(raw[0, i], -1) + eps / self.d_act
            A_taken = counterfactual_advantage(Q_rows[0, i], Q_each, pi_i)
            A_replaced = counterfactual_advantage(Q_rows[1, i], Q_each, pi_i)
        return MADDPGWhatIf(Q_taken=floats(Q_rows[0]), Q_replaced=floats(Q_rows[1]),
                            Q_greedy=floats(Q_greedy[0]), A_taken=A_taken, A_replaced=A_replaced)
