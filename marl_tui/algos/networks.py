"""Small networks shared by the algorithms.

`AgentMLP` keeps one set of weights per agent (the guide's mu_i, Q_i, pi_i) but
evaluates all agents in one batched matmul per layer, so N agents cost one matmul.
With `shared=True` all agents use one network and get a one-hot agent id
appended to their input (parameter sharing, as MAPPO and QMIX papers do).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class AgentLinear(nn.Module):
    """y[..., i, :] = x[..., i, :] @ W_i + b_i for each agent i."""

    def __init__(self, n_agents: int, d_in: int, d_out: int, gain: float = math.sqrt(2)) -> None:
        super().__init__()
        w = torch.empty(n_agents, d_in, d_out)
        for i in range(n_agents):
            nn.init.orthogonal_(w[i].T, gain=gain)  # orthogonal init: stable PPO/DDPG starts
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(torch.zeros(n_agents, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...ni,nio->...no", x, self.weight) + self.bias

    def agent_major(self, x: torch.Tensor) -> torch.Tensor:
        """The same map on agent-major input [N, B, d_in] -> [N, B, d_out]: one baddbmm, no
        permuted copies (what einsum makes of the layout above, layer after layer)."""
        return torch.baddbmm(self.bias[:, None], x, self.weight)


def _linear(d_in: int, d_out: int, gain: float) -> nn.Linear:
    layer = nn.Linear(d_in, d_out)
    nn.init.orthogonal_(layer.weight, gain=gain)
    nn.init.zeros_(layer.bias)
    return layer


class AgentMLP(nn.Module):
    """Two hidden layers; input [..., N, d_in] -> output [..., N, d_out]."""

    def __init__(
        self,
        n_agents: int,
        d_in: int,
        d_out: int,
        hidden: int = 64,
        shared: bool = False,
        out_gain: float = 1.0,
        activation: type[nn.Module] = nn.Tanh,
    ) -> None:
        super().__init__()
        self.n_agents, self.shared = n_agents, shared
        if shared:  # one plain network; the one-hot agent id widens its input by n_agents
            self.body = mlp(d_in + n_agents, d_out, hidden, out_gain, activation)
        else:
            g = math.sqrt(2)
            self.body = nn.Sequential(
                AgentLinear(n_agents, d_in, hidden, g), activation(),
                AgentLinear(n_agents, hidden, hidden, g), activation(),
                AgentLinear(n_agents, hidden, d_out, out_gain),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shared:
            return self.body(with_agent_id(x))
        # One set of weights per agent: the layers run agent-major ([N, B, d]), so each is one
        # batched matmul on contiguous memory; the layout turns back once, at the end.
        lead, (n, d) = x.shape[:-2], x.shape[-2:]
        h = x.reshape(-1, n, d).transpose(0, 1)
        for layer in self.body:
            h = layer.agent_major(h) if isinstance(layer, AgentLinear) else layer(h)
        return h.transpose(0, 1).reshape(*lead, n, h.shape[-1])


def with_agent_id(x: torch.Tensor) -> torch.Tensor:
    """Append a one-hot agent id to [..., N, d] inputs."""
    n = x.shape[-2]
    eye = torch.eye(n, device=x.device, dtype=x.dtype).expand(*x.shape[:-1], n)
    return torch.cat([x, eye], dim=-1)


def mlp(d_in: int, d_out: int, hidden: int = 64, out_gain: float = 1.0,
        activation: type[nn.Module] = nn.Tanh) -> nn.Sequential:
    """A plain two-hidden-layer network (MAPPO's V(s); the body of a shared AgentMLP)."""
    g = math.sqrt(2)
    return nn.Sequential(
        _linear(d_in, hidden, g), activation(), _linear(hidden, hidden, g), activation(),
        _linear(hidden, d_out, out_gain),
    )


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """theta^- <- tau theta + (1 - tau) theta^-  (the guide's target update)."""
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        t.lerp_(s, tau)


def gumbel_noise(like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard Gumbel draws shaped like `like`: argmax(logits + g) samples softmax(logits).

    Drawn on the CPU (generator: a CPU generator) and moved to like's device.
    """
    u = torch.rand(like.shape, generator=generator).to(like.device)
    e = -torch.log(u.clamp_min(1e-10))  # Exponential(1)
    return -torch.log(e.clamp_min(1e-10))


def forward_in_blocks(net: AgentMLP, x: torch.Tensor, blocks: int) -> torch.Tensor:
    """net(x) for a per-agent net whose agents form `blocks` equal blocks (S seeds stacked as S*N
    agents, seed-major); x [..., S*N, d]. The output layer's bias is expanded over the rows block by
    block, so each block's bias gradient is a sum over its own rows alone, summed as a net of one
    block sums it: one sum over every block's rows vectorises across them (the gradient arriving
    at the output can be batch-major), which changes the last bits."""
    lead, (k, d) = x.shape[:-2], x.shape[-2:]
    h = x.reshape(-1, k, d).transpose(0, 1)
    *body, last = net.body
    for layer in body:
        h = layer.agent_major(h) if isinstance(layer, AgentLinear) else layer(h)
    rows = h.shape[1]
    bias = torch.cat([b[:, None].expand(-1, rows, -1) for b in last.bias.chunk(blocks)])
    h = torch.baddbmm(bias, h, last.weight)
    return h.transpose(0, 1).reshape(*lead, k, h.shape[-1])


# --------------------------------------------------------------------------- seeds stacked
# S seeds of one network as one module: every parameter and the input get a leading seed axis
# ([S, ..., d]); seed s's slice of state_dict() is its network's state_dict(). Each layer does
# seed s's matmul as its own call on seed s's slices: MKL's batched matmul (bmm) differs from its
# single matmul in the last bit for some shapes (d_in 6, d_out 1 or 31, measured), so one bmm for
# all seeds would not reproduce the solo runs bitwise. Everything around the matmuls (optimiser,
# clipping, targets, sampling) is one call for all seeds.


class SeedLinear(nn.Module):
    """S nn.Linear(d_in, d_out) as one: weight [S, d_out, d_in], bias [S, d_out]."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]))
        self.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.each(x.unbind(0)))

    def each(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Seed s's nn.Linear on xs[s], for every seed."""
        seeds = zip(xs, self.weight.unbind(0), self.bias.unbind(0), strict=True)
        return [F.linear(x_s, w_s, b_s) for x_s, w_s, b_s in seeds]


class SeedSequential(nn.Sequential):
    """An nn.Sequential of SeedLinear and parameter-free layers, run seed by seed and stacked
    once at the end: each seed's activations stay as small (cache-sized) as its solo's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = list(x.unbind(0))
        for layer in self:
            xs = layer.each(xs) if isinstance(layer, SeedLinear) else [layer(h) for h in xs]
        return torch.stack(xs)


class SeedAgentLinear(nn.Module):
    """S AgentLinear layers as one: weight [S, N, d_in, d_out], bias [S, N, d_out]."""

    def __init__(self, layers: Sequence[AgentLinear]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]))
        self.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]))

    def agent_major(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """AgentLinear.agent_major of each seed: xs[s] [N, B, d_in] -> [N, B, d_out]."""
        seeds = zip(xs, self.weight.unbind(0), self.bias.unbind(0), strict=True)
        return [torch.baddbmm(b_s[:, None], x_s, w_s) for x_s, w_s, b_s in seeds]


def seed_stacked(modules: Sequence[nn.Module]) -> nn.Module:
    """One module for S networks of one architecture: a copy of the first with every nn.Linear
    and AgentLinear replaced by the SeedLinear / SeedAgentLinear of all S. The architecture's
    forward must broadcast over leading axes (QMIX's mixer, a plain mlp)."""
    stacked = copy.deepcopy(modules[0])
    for name, layer in modules[0].named_modules():
        kind = {nn.Linear: SeedLinear, AgentLinear: SeedAgentLinear}.get(type(layer))
        if kind is not None:
            parent, _, child = name.rpartition(".")
            setattr(stacked.get_submodule(parent), child, kind([m.get_submodule(name) for m in modules]))
    # Sequentials of SeedLinears run seed by seed (deepest first, so a parent takes the new child).
    for name, layer in reversed(list(stacked.named_modules())):
        if type(layer) is nn.Sequential and all(isinstance(c, SeedLinear) or next(c.parameters(), None) is None
                                                for c in layer):
            if not name:
                stacked = SeedSequential(*layer)
            else:
                parent, _, child = name.rpartition(".")
                setattr(stacked.get_submodule(parent), child, SeedSequential(*layer))
    loose = [n for n, _ in stacked.named_parameters(recurse=True)
             if not isinstance(stacked.get_submodule(n.rpartition(".")[0]), SeedLinear | SeedAgentLinear)]
    if loose:
        raise TypeError(f"seed_stacked: parameters outside linear layers: {loose}")
    return stacked


class SeedAgentMLP(nn.Module):
    """S AgentMLPs (shared or per-agent weights) as one: input [S, ..., N, d_in]."""

    def __init__(self, nets: Sequence[AgentMLP]) -> None:
        super().__init__()
        self.n_agents, self.shared = nets[0].n_agents, nets[0].shared
        self.body = seed_stacked([net.body for net in nets])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shared:
            return self.body(with_agent_id(x))
        # Each seed agent-major, as AgentMLP lays it out.
        lead, (n, d) = x.shape[1:-2], x.shape[-2:]
        hs = [x_s.reshape(-1, n, d).transpose(0, 1) for x_s in x.unbind(0)]
        for layer in self.body:
            hs = layer.agent_major(hs) if isinstance(layer, SeedAgentLinear) else [layer(h) for h in hs]
        return torch.stack([h.transpose(0, 1).reshape(*lead, n, h.shape[-1]) for h in hs])


def seed_slice(state: dict[str, torch.Tensor], s: int) -> dict[str, torch.Tensor]:
    """Seed s's state_dict() from a seed-stacked module's."""
    return {name: value[s].clone() for name, value in state.items()}
