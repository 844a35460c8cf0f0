"""Small networks shared by the algorithms.

`AgentMLP` keeps one set of weights per agent (the guide's mu_i, Q_i, pi_i) but
evaluates all agents in one batched matmul per layer, so N agents cost one matmul.
With `shared=True` all agents use one network and get a one-hot agent id
appended to their input (parameter sharing, as MAPPO and QMIX papers do).
"""

from __future__ import annotations

import math

import torch
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
