"""QMIX: per-agent Q_i mixed monotonically into Q_total (study guide Part 4, REFERENCE §5).

Read beside the guide's pseudocode:

    a_i = epsilon-greedy on Q_i(o_i, .)                     act()
    store (o, s, a, r_team, o', s') in B                    observe()
    Q_total = M([Q_1(o_1, a_1), ..., Q_n(o_n, a_n)], s)     update()
    a'_i = argmax Q_i(o'_i, .)      (double Q: online picks, target evaluates)
    y = r_team + gamma * M^-([Q_1^-(o'_1, a'_1), ...], s')
    L = (Q_total - y)^2
    psi, xi <- Adam step;  psi^-, xi^- <- hard copy or tau-soft update

The mixer keeps dQ_total/dQ_i >= 0 by passing its hypernetwork weights through abs(),
so each agent's own argmax is the joint argmax of Q_total: decentralised execution.
QMIX is cooperative: it maximises r_team = sum_i r_i. On a general-sum game (pricing)
that is the stores' joint profit, i.e. the collusive price, not the Nash price.

Seeds: one instance learns S seeds at once (QMIX.stack). Learning is written with a seed axis
in front ([S, M, ...]); a solo run is S = 1, its plain networks treating that axis as a batch
axis, and a stack holds seed-stacked networks (networks.seed_stacked) in which seed s computes
exactly what its solo would. Batches in and out of act/observe are seeds-major ([S*B, ...]).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

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
    child_generator,
    child_seed,
    counterfactual_advantage,
    float_rows,
    floats,
    mean_metrics,
)
from marl_tui.algos.buffers import ReplayBuffer, SeedReplay
from marl_tui.algos.masking import ActionMask
from marl_tui.algos.networks import (
    AgentMLP,
    SeedAgentMLP,
    seed_slice,
    seed_stacked,
    soft_update,
)
from marl_tui.envs.base import EnvSpec

# --------------------------------------------------------------------------- hyperparameters


@dataclass(frozen=True)
class QMIXHyperparameters:
    steps: int = 300_000  # environment steps, counted over all parallel copies
    gamma: float = 0.99  # discount; episodes end only by time limit, so we always bootstrap
    lr: float = 1e-3  # Adam, agent networks and mixer together
    hidden: int = 64  # agent network width
    mixer_hidden: int = 32  # mixer embedding / hypernetwork width
    shared: bool = True  # one Q network for all agents, one-hot agent id appended
    batch_size: int = 256  # transitions per gradient step
    buffer_size: int = 100_000  # replay capacity in transitions (one per copy per step)
    learning_starts: int = 5_000  # warm-up: transitions in the buffer before the first update
    updates_per_step: int = 4  # gradient steps per batched environment step
    eps_start: float = 1.0  # epsilon-greedy exploration...
    eps_end: float = 0.05  # ...annealed linearly to this...
    eps_anneal_steps: int = 50_000  # ...over this many environment steps (over copies)
    target_update_interval: int = 100  # hard copy Q^-, M^- every this many updates; 0: soft
    tau: float = 0.01  # soft target step when target_update_interval = 0
    grad_clip: float = 10.0  # max gradient norm, over agent networks and mixer together
    # Huber (delta 1) instead of the squared TD error: a switch, as in MADDPG; MAPPO's
    # huber_delta is a different knob (the threshold of a value loss always Huber).
    huber: bool = False


class QMIXExplain(Explain, kw_only=True):
    """Copy 0's utilities Q_i, the greedy joint action, the mixer that values it, the last target.

    Per-agent tuples hold one entry per agent i; values in the trainer's reward units (reward x
    reward_scale), summed over agents (QMIX learns the team reward r_team = sum_i r_i).
    """

    Q_i: tuple[tuple[float, ...], ...]  # Q_i(o_i, a) for every action a
    greedy: tuple[int, ...]  # a*_i = argmax_a Q_i(o_i, a), the action index
    greedy_value: tuple[float, ...]  # a*_i in action units (price, order size), else the index
    Q_total: float  # M([Q_i(o_i, a*_i)], s): the mixer's value of the greedy joint action
    mixer_w1: tuple[tuple[float, ...], ...]  # |W1(s)|: per agent, its H hidden-unit weights (>= 0)
    mixer_w2: tuple[float, ...]  # |W2(s)|: the H output weights (>= 0)
    mixer_bias: float  # V(s), the mixer's state-dependent bias
    gamma: float  # the discount in y
    epsilon: float  # current epsilon-greedy exploration rate
    y: float | None = None  # mean target r_team + gamma Q_total^- over the last update's batch


class QMIXWhatIf(WhatIfValues, kw_only=True):
    """Agent i's utility and the mixer's Q_total for copy 0's joint action as taken and with a_i
    replaced, against the greedy joint action (QMIXExplain.Q_total); trainer's reward units."""

    Q_i_taken: float  # Q_i(o_i, a_i)
    Q_i_replaced: float  # Q_i(o_i, a'_i)
    Q_total_taken: float  # M([Q_j(o_j, a_j)], s)
    Q_total_replaced: float  # M with Q_i(o_i, a'_i) in place of Q_i(o_i, a_i)
    Q_total_greedy: float  # M([Q_j(o_j, a*_j)], s)
    greedy: tuple[int, ...]  # a*_j = argmax_a Q_j(o_j, a)
    dQtot_dQi: float  # the mixer's slope in Q_i at the replaced joint action (>= 0: monotonic)
    # COMA's advantage with Q_total as the critic and the epsilon-greedy pi_i of act().
    A_taken: float  # Q_total(s, a) - sum_a' pi_i(a'|o_i) Q_total(s, (a_-i, a'))
    A_replaced: float


# --------------------------------------------------------------------------- networks


class QMixer(nn.Module):
    """Q_total = ELU(Q . w1 + b1) . w2 + V(s), with w1 = |W1(s)|, w2 = |W2(s)|.

    Hypernetworks read the global state s and write the mixing weights. abs() keeps every
    weight >= 0 and ELU is increasing, so dQ_total/dQ_i >= 0 (the monotonicity constraint).
    V(s) is a state-dependent bias that needs no sign constraint.
    """

    def __init__(self, n_agents: int, state_dim: int, hidden: int) -> None:
        super().__init__()
        self.n_agents, self.hidden = n_agents, hidden
        self.hyper_w1 = nn.Sequential(
            nn.Linear(state_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_agents * hidden)
        )
        self.hyper_b1 = nn.Linear(state_dim, hidden)
        self.hyper_w2 = nn.Sequential(nn.Linear(state_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.V = nn.Sequential(nn.Linear(state_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def weights(self, state: torch.Tensor) -> dict[str, torch.Tensor]:
        """The mixing weights for `state` [..., S]: w1 [..., N, H], b1 [..., H], w2 [..., H], V [...]."""
        return {
            "w1": self.hyper_w1(state).abs().unflatten(-1, (self.n_agents, self.hidden)),
            "b1": self.hyper_b1(state),
            "w2": self.hyper_w2(state).abs(),
            "V": self.V(state).squeeze(-1),
        }

    def forward(self, q_values: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """q_values [..., N], state [..., S] -> Q_total [...]."""
        w = self.weights(state)
        # ELU as in the paper; any increasing activation keeps dQ_total/dQ_i >= 0.
        h = F.elu(torch.einsum("...n,...nh->...h", q_values, w["w1"]) + w["b1"])
        return (h * w["w2"]).sum(-1) + w["V"]


# --------------------------------------------------------------------------- algorithm


class QMIX(Algorithm):
    """Cooperative value factorisation over discrete actions (continuous scenarios arrive
    discretised: the trainer wraps them in DiscretisedEnv, spec.action_levels the values)."""

    name = "qmix"
    title = "QMIX"
    capabilities = Capabilities(continuous=False, discrete=True, on_policy=False,
                                centralised_critic=True)
    Hyperparameters = QMIXHyperparameters
    explain_type = QMIXExplain
    what_if_type = QMIXWhatIf
    supports_seed_stack: ClassVar[bool] = True
    exploration_field = "eps_end"
    # Targets r_team / (1 - gamma) must be learnt before the greedy policy settles, so gamma
    # is as low as each scenario allows without changing its optimal policy.
    defaults_by_kind: ClassVar[dict[str, dict[str, Any]]] = {
        # Today's profit depends only on today's prices: any gamma gives the same optimum.
        "pricing": {"steps": 300_000, "gamma": 0.5},
        # Leftover stock carries over (saving next period's order cost): look ahead.
        "warehouse": {"steps": 300_000, "gamma": 0.9},
        # Orders, stock and loads are drawn afresh each step: no action changes the future.
        "fulfillment": {"steps": 400_000, "gamma": 0.5, "buffer_size": 50_000},
    }

    def __init__(self, spec: EnvSpec, hp: QMIXHyperparameters, device: torch.device) -> None:
        super().__init__(spec, hp, device)
        if spec.action_space.kind != "discrete":
            raise ValueError("QMIX needs discrete actions: wrap the scenario in DiscretisedEnv")
        N, S, A = spec.n_agents, spec.state_dim, spec.action_space.n
        self.n_actions = A
        self.n_seeds = 1
        self.stacked = False  # True for an instance made by stack()
        self.mask = ActionMask(spec, device)  # agents of different action sizes: see masking.py
        # Feed-forward Q_i(o_i, .): every scenario's observation describes its situation fully
        # (prices, stock and season, the order's costs), so no recurrent history is needed.
        self.Q = AgentMLP(N, spec.obs_dim, A, hp.hidden, shared=hp.shared, activation=nn.ReLU)
        self.Q.to(device)
        self.mixer = QMixer(N, S, hp.mixer_hidden).to(device)
        self._hold_networks()
        # Seeds drawn from the global RNG the trainer seeded: same seed, same run.
        self.generator = child_generator()
        self.generators = [self.generator]  # seed s's epsilon draws (one per seed)
        self.buffer: ReplayBuffer | SeedReplay = ReplayBuffer(
            hp.buffer_size,
            {
                "obs": ((N, spec.obs_dim), torch.float32),
                "state": ((S,), torch.float32),
                "actions": ((N,), torch.long),
                "r_team": ((), torch.float32),
                "next_obs": ((N, spec.obs_dim), torch.float32),
                "next_state": ((S,), torch.float32),
                "terminated": ((), torch.float32),
            },
            device,
            seed=child_seed(),
        )
        self.env_steps = 0  # transitions seen, over all copies (of one seed)
        self.n_updates = 0
        self.last_y = torch.zeros(1, device=device)  # per seed: mean y over the last update's batch

    def _hold_networks(self) -> None:
        """Targets, parameter list and optimiser for the online networks self.Q, self.mixer."""
        self.Q_target = copy.deepcopy(self.Q).requires_grad_(False)
        self.mixer_target = copy.deepcopy(self.mixer).requires_grad_(False)
        self.params = [*self.Q.parameters(), *self.mixer.parameters()]
        self.optimizer = torch.optim.Adam(self.params, lr=self.hp.lr)

    # ------------------------------------------------------------------ seeds

    @classmethod
    def stack(cls, solos: Sequence[Self]) -> Self:
        """One learner for S = len(solos) seeds, holding a copy of every solo's state and
        drawing from the solos' own generators (see the module docstring)."""
        first = solos[0]
        counters = {(q.env_steps, q.n_updates) for q in solos}
        if len(counters) != 1 or any(q.stacked or q.hp != first.hp for q in solos):
            raise ValueError("QMIX.stack: the solos must be plain runs of one hp, in lockstep")
        self = cls.__new__(cls)
        Algorithm.__init__(self, first.spec, first.hp, first.device)
        self.n_actions, self.n_seeds, self.stacked = first.n_actions, len(solos), True
        self.mask = first.mask
        self.Q = SeedAgentMLP([q.Q for q in solos])
        self.mixer = seed_stacked([q.mixer for q in solos])
        self._hold_networks()
        self.Q_target.load_state_dict(SeedAgentMLP([q.Q_target for q in solos]).state_dict())
        self.mixer_target.load_state_dict(seed_stacked([q.mixer_target for q in solos]).state_dict())
        solo_states = [q.optimizer.state_dict()["state"] for q in solos]
        self.optimizer.load_state_dict({
            "state": {k: {name: v.clone() if v.dim() == 0 else torch.stack([st[k][name] for st in solo_states])
                          for name, v in per_param.items()}
                      for k, per_param in solo_states[0].items()},
            "param_groups": first.optimizer.state_dict()["param_groups"],
        })
        self.generators = [q.generator for q in solos]
        self.buffer = SeedReplay([q.buffer for q in solos])
        self.env_steps, self.n_updates = first.env_steps, first.n_updates
        self.last_y = torch.cat([q.last_y for q in solos])
        return self

    def write_back(self, solos: Sequence[Self]) -> None:
        """Seed s's state into solos[s]: what a solo run of seed s would hold now."""
        assert isinstance(self.buffer, SeedReplay)
        self.buffer.write_back([q.buffer for q in solos])
        stacked_opt = self.optimizer.state_dict()
        for s, q in enumerate(solos):
            q.Q.load_state_dict(seed_slice(self.Q.state_dict(), s))
            q.mixer.load_state_dict(seed_slice(self.mixer.state_dict(), s))
            q.Q_target.load_state_dict(seed_slice(self.Q_target.state_dict(), s))
            q.mixer_target.load_state_dict(seed_slice(self.mixer_target.state_dict(), s))
            q.optimizer.load_state_dict({
                "state": {k: {name: v.clone() if v.dim() == 0 else v[s].clone() for name, v in per_param.items()}
                          for k, per_param in stacked_opt["state"].items()},
                "param_groups": stacked_opt["param_groups"],
            })
            q.env_steps, q.n_updates = self.env_steps, self.n_updates
            q.last_y = self.last_y[s:s + 1].clone()

    def _seed_grads(self) -> list[list[torch.Tensor]]:
        """Each seed's gradients: the stack's seed slices, or a solo's own tensors."""
        grads = [p.grad for p in self.params if p.grad is not None]
        if not self.stacked:
            return [grads]
        return [list(per_seed) for per_seed in zip(*(g.unbind(0) for g in grads), strict=True)]

    def _solo_only(self, what: str) -> None:
        if self.stacked:
            raise RuntimeError(f"QMIX.{what} on a stack of seeds: write_back to the solos and ask them")

    # ------------------------------------------------------------------ act

    @property
    def epsilon(self) -> float:
        hp = self.hp
        frac = min(1.0, self.env_steps / max(1, hp.eps_anneal_steps))
        return hp.eps_start + frac * (hp.eps_end - hp.eps_start)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, state: torch.Tensor, explore: bool) -> ActOutput:
        """a_i = argmax_a Q_i(o_i, a), or with probability epsilon a uniform action."""
        greedy = self.mask.valid_scores(self.Q(obs.unflatten(0, (self.n_seeds, -1)))).argmax(-1)  # [S, B, N]
        if not explore:
            return ActOutput(greedy.flatten(0, 1))
        shape, eps = greedy.shape[1:], self.epsilon
        masks, randoms = [], []
        for g in self.generators:  # seed s's draws, in a solo run's order
            masks.append(torch.rand(shape, generator=g) < eps)
            randoms.append(self.mask.random_index(shape, g))
        explore_mask, random_a = torch.stack(masks).to(self.device), torch.stack(randoms).to(self.device)
        return ActOutput(torch.where(explore_mask, random_a, greedy).flatten(0, 1))

    # ------------------------------------------------------------------ observe

    def observe(self, transition: Transition) -> None:
        """Store the transition with the team reward r_team = sum_i r_i (already scaled)."""
        tr = transition
        self.buffer.add({
            "obs": tr.obs, "state": tr.state, "actions": tr.actions,
            "r_team": tr.reward.sum(-1), "next_obs": tr.next_obs, "next_state": tr.next_state,
            # Truncation (time limit) is not an end: bootstrap from next_obs.
            "terminated": tr.terminated.float(),
        })
        self.env_steps += tr.obs.shape[0] // self.n_seeds

    def ready(self) -> bool:
        return len(self.buffer) >= max(self.hp.learning_starts, self.hp.batch_size)

    # ------------------------------------------------------------------ update

    def update(self) -> dict[str, float]:
        """updates_per_step gradient steps on L = (Q_total - y)^2; metrics averaged over them."""
        if self.n_seeds != 1:
            raise RuntimeError("QMIX.update on a stack of seeds: call update_seeds")
        return self.update_seeds()[0]

    def update_seeds(self) -> list[dict[str, float]]:
        """One update() of every seed; element s is seed s's metrics."""
        # Each metric of a step is one value per seed ([S]): mean_metrics averages them as vectors.
        per_seed: dict[str, Any] = mean_metrics(self.hp.updates_per_step, self._update_once)
        epsilon = self.epsilon
        return [{**{k: v[s] for k, v in per_seed.items()}, "epsilon": epsilon} for s in range(self.n_seeds)]

    def _update_once(self) -> dict[str, torch.Tensor]:
        hp = self.hp
        b = {k: v.unflatten(0, (self.n_seeds, -1)) for k, v in self.buffer.sample(hp.batch_size).items()}
        Q_all = self.Q(b["obs"])  # [S, M, N, A]
        Q_i = Q_all.gather(-1, b["actions"].unsqueeze(-1)).squeeze(-1)  # [S, M, N]
        Q_total = self.mixer(Q_i, b["state"])  # [S, M]
        with torch.no_grad():
            # double Q: online argmax (over each agent's own actions)...
            a_next = self.mask.valid_scores(self.Q(b["next_obs"])).argmax(-1, keepdim=True)
            Q_i_next = self.Q_target(b["next_obs"]).gather(-1, a_next).squeeze(-1)  # ...target value
            Q_total_next = self.mixer_target(Q_i_next, b["next_state"])
            y = b["r_team"] + hp.gamma * (1.0 - b["terminated"]) * Q_total_next
        loss_fn = F.smooth_l1_loss if hp.huber else F.mse_loss
        td_loss = loss_fn(Q_total, y, reduction="none").mean(-1)  # [S]: each seed's own loss
        self.optimizer.zero_grad()
        td_loss.sum().backward()  # a sum, so each seed's gradient is its solo gradient
        grad_norm = clip_per_seed_(self._seed_grads(), hp.grad_clip)  # the pre-clip norms
        self.optimizer.step()
        self.n_updates += 1
        if hp.target_update_interval > 0:
            if self.n_updates % hp.target_update_interval == 0:
                self.Q_target.load_state_dict(self.Q.state_dict())
                self.mixer_target.load_state_dict(self.mixer.state_dict())
        else:
            soft_update(self.Q_target, self.Q, hp.tau)
            soft_update(self.mixer_target, self.mixer, hp.tau)
        self.last_y = y.mean(-1)
        return {
            "td_loss": td_loss.detach(),
            "q_total_mean": Q_total.detach().mean(-1),
            "y_mean": self.last_y,
            "q_i_mean": Q_i.detach().flatten(1).mean(-1),
            "grad_norm": grad_norm,
        }

    # ------------------------------------------------------------------ views

    def exploration(self) -> tuple[str, float]:
        return ("epsilon", self.epsilon)

    @torch.no_grad()
    def explain(self, obs: torch.Tensor, state: torch.Tensor) -> QMIXExplain:
        """The numbers behind QMIX's equations for copy 0 (see QMIXExplain)."""
        self._solo_only("explain")
        o, s = obs[:1], state[:1]
        Q_all = self.mask.valid_scores(self.Q(o))[0]  # [N, A]
        greedy = Q_all.argmax(-1)
        Q_total = self.mixer(Q_all.gather(-1, greedy.unsqueeze(-1)).squeeze(-1), s[0])
        w = self.mixer.weights(s[0])
        levels = self.spec.action_levels
        return QMIXExplain(
            Q_i=self.mask.own_rows(Q_all),
            greedy=tuple(greedy.tolist()),
            greedy_value=tuple(float(levels[a]) if levels else float(a) for a in greedy.tolist()),
            Q_total=float(Q_total),
            mixer_w1=float_rows(w["w1"]),
            mixer_w2=floats(w["w2"]),
            mixer_bias=float(w["V"]),
            gamma=self.hp.gamma,
            epsilon=self.epsilon,
            y=float(self.last_y[0]) if self.n_updates else None,
        )

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        self._solo_only("state_dict")
        return {
            "Q": self.Q.state_dict(),
            "mixer": self.mixer.state_dict(),
            "Q_target": self.Q_target.state_dict(),
            "mixer_target": self.mixer_target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "buffer": self.buffer.state_dict(),
            "generator": self.generator.get_state(),
            "env_steps": self.env_steps,
            "n_updates": self.n_updates,
            "last_y": float(self.last_y[0]),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._solo_only("load_state_dict")
        self.Q.load_state_dict(state["Q"])
        self.mixer.load_state_dict(state["mixer"])
        self.Q_target.load_state_dict(state["Q_target"])
        self.mixer_target.load_state_dict(state["mixer_target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.buffer.load_state_dict(state["buffer"])
        self.generator.set_state(state["generator"])
        self.env_steps = int(state["env_steps"])
        self.n_updates = int(state["n_updates"])
        self.last_y = torch.tensor([float(state["last_y"])], device=self.device)

    # ------------------------------------------------------------------ what-if

    @torch.no_grad()
    def what_if(self, cf: Counterfactual) -> QMIXWhatIf:
        """Q_i and Q_total as taken, with a_i replaced, and for every a' of agent i (see QMIXWhatIf)."""
        self._solo_only("what_if")
        i, A = cf.agent, self.spec.action_space.size(cf.agent)  # agent i's own actions
        s = cf.state[0].to(self.device)
        Q_all = self.mask.valid_scores(self.Q(cf.obs[:1].to(self.device)))[0]  # [N, A]
        greedy = Q_all.argmax(-1)
        each = cf.joint[:1].to(self.device).long().repeat(A, 1)
        each[:, i] = torch.arange(A, device=self.device)
        joints = torch.cat([cf.joint.to(self.device).long(), greedy[None], each])  # [2 + 1 + A, N]
        chosen = Q_all.gather(-1, joints.T).T  # [K, N]: Q_j(o_j, a_j) of each row
        Q_total = self.mixer(chosen, s.expand(len(joints), -1))
        # dQ_total/dQ_i = sum_h |W2|_h ELU'(z_h) |W1|_ih, with ELU'(z) = 1 above 0, e^z below.
        w = self.mixer.weights(s)
        z = chosen[1] @ w["w1"] + w["b1"]
        slope = (w["w2"] * torch.where(z > 0, torch.ones_like(z), z.exp()) * w["w1"][i]).sum()
        eps = self.epsilon
        pi_i = torch.full((A,), eps / A, device=self.device)
        pi_i[greedy[i]] += 1 - eps
        baseline_rows = Q_total[3:]
        return QMIXWhatIf(
            Q_i_taken=float(chosen[0, i]), Q_i_replaced=float(chosen[1, i]),
            Q_total_taken=float(Q_total[0]), Q_total_replaced=float(Q_total[1]),
            Q_total_greedy=float(Q_total[2]), greedy=tuple(greedy.tolist()), dQtot_dQi=float(slope),
            A_taken=counterfactual_advantage(Q_total[0], baseline_rows, pi_i),
            A_replaced=counterfactual_advantage(Q_total[1], baseline_rows, pi_i),
        )


def clip_per_seed_(seed_grads: Sequence[Sequence[torch.Tensor]], max_norm: float) -> torch.Tensor:
    """nn.utils.clip_grad_norm_ on each seed's gradients (seed_grads[s]: seed s's tensors), as
    that seed's solo run clips its own; returns the [S] pre-clip norms. The same calls as
    torch's, on each seed's tensors: a norm per tensor, the norm of those, one coefficient."""
    per_seed = [torch._foreach_norm(list(grads)) for grads in seed_grads]
    total = torch.stack([torch.linalg.vector_norm(torch.stack(norms)) for norms in per_seed])
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for grads, c in zip(seed_grads, coef.unbind(0), strict=True):
        torch._foreach_mul_(list(grads), c)
    return total
