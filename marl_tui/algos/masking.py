"""Agents whose actions differ in size (an external env's speaker with 3 choices beside a
listener with 5, or 3 forces beside 5): every learner acts in the largest space, padded, and
this is where it meets the padding.

Discrete: agent i's own actions are the indices a < n_i (EnvSpec.action_mask); scores of the
others (logits, Q-values) are set to the lowest float, so no argmax, max, softmax, log pi or
entropy counts them, and uniform draws pick among agent i's own. Continuous: agent i's own
numbers are the first d_i; the rest are padding its env never receives, zeroed wherever they
would reach a critic, a log-probability or an entropy, so no learning signal is spent on them.

Where every agent shares one space there is no mask and every method returns its input as it
is (the same tensor, the same random draws): such runs are unchanged to the byte.
"""

from __future__ import annotations

import copy

import torch

from marl_tui.algos.base import float_rows
from marl_tui.envs.base import EnvSpec


class ActionMask:
    """The padding of one scenario's actions (see the module's docstring)."""

    def __init__(self, spec: EnvSpec, device: torch.device | str = "cpu") -> None:
        space = spec.action_space
        self.discrete = space.kind == "discrete"
        self.width = space.n if self.discrete else space.dims  # A: the padded space
        # [N, A] bool, True on agent i's own; None when every agent has all A.
        self.valid = spec.action_mask(device) if space.per_agent else None
        # n_i per agent [N], None when all share A.
        self.sizes = torch.tensor(space.per_agent, device=device) if space.per_agent else None

    def tiled(self, times: int) -> ActionMask:
        """The mask of `times` copies of these agents stacked on the agent axis (seeds stacked as
        S*N agents: MADDPG's learning layout)."""
        tiled = copy.copy(self)
        if self.valid is not None and self.sizes is not None:
            tiled.valid, tiled.sizes = self.valid.repeat(times, 1), self.sizes.repeat(times)
        return tiled

    def valid_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Scores [..., N, A] of each discrete action (logits, Q-values) with another agent's
        actions at the lowest float: finite, so softmax gives them exactly 0 and an entropy
        sum stays a number (0 x -inf would be NaN); their gradient is 0. Continuous: x."""
        if self.valid is None or not self.discrete:
            return x
        return x.masked_fill(~self.valid.to(x.device), torch.finfo(x.dtype).min)

    def zero_padding(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., N, A] with the padded entries 0 (and no gradient through them)."""
        if self.valid is None:
            return x
        return x.masked_fill(~self.valid.to(x.device), 0.0)

    def index_of(self, u: torch.Tensor) -> torch.Tensor:
        """Uniform numbers u [..., N] in [0, 1) as uniform action indices: agent i's in [0, n_i)."""
        n = self.width if self.sizes is None else self.sizes.to(u.device)
        return (u * n).long().clamp_max(n - 1)

    def random_index(self, shape: torch.Size | tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        """Uniform action indices of `shape` [..., N], drawn from `generator` (on its device)."""
        if self.sizes is None:
            return torch.randint(0, self.width, shape, generator=generator)
        return self.index_of(torch.rand(shape, generator=generator))

    def own_rows(self, x: torch.Tensor) -> tuple[tuple[float, ...], ...]:
        """[N, A] per-agent figures (probabilities, Q-values, slopes) as rows of each agent's
        own actions only, for an Explain field: views never show padding."""
        if self.valid is None:
            return float_rows(x)
        return tuple(tuple(row[:n]) for row, n in zip(x.tolist(), self.sizes.tolist(), strict=True))
