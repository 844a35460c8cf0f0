"""VMAS scenarios as batched envs: VMAS already steps B copies as torch tensors on one device
(CPU or CUDA), so nothing is copied; this adapter stacks its per-agent lists into [B, N, ...].

VMAS keeps one random state (torch, numpy, random) for every VMAS env in the process; the
adapter swaps its own in around each call, so copies built apart do not share a stream, the
same seed gives the same episodes on the CPU, and a checkpoint holds the env's torch stream.
vmas comes with the extra ``marl-tui[vmas]``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from marl_tui.envs.base import ActionSpace, EnvSpec, StepResult, continuous_space
from marl_tui.envs.external.common import (
    ExternalEnv,
    check_agents,
    import_optional,
    joint_action_space,
    padded_width,
)
from marl_tui.errors import UserError

vmas = import_optional("vmas", "vmas")
spaces = import_optional("gym.spaces", "vmas")  # VMAS describes its spaces with gym's classes
_SHARED_STATE = import_optional("vmas.simulator.environment.environment", "vmas").Environment.vmas_random_state

# VMAS scenarios mostly have no horizon of their own; a shorthand gets this one.
DEFAULT_EPISODE_LENGTH = 100
# make_env arguments marl-tui sets itself, with where a scenario file sets them instead.
_OURS = {"num_envs": "parallel_envs", "device": "--device", "seed": "seed", "max_steps": "episode_length"}


def scenario_names() -> list[str]:
    return sorted({*vmas.scenarios, *vmas.mpe_scenarios, *vmas.debug_scenarios})


def _make(name: str, kwargs: dict[str, Any], n_envs: int, device: torch.device | str, horizon: int | None,
          where: str) -> Any:
    if name not in scenario_names():
        import difflib

        close = difflib.get_close_matches(name, scenario_names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"{where}: no VMAS scenario named {name!r}{hint}; VMAS has: {', '.join(scenario_names())}")
    for key, instead in _OURS.items():
        if key in kwargs:
            raise UserError(f"{where}: model.{key} is set by marl-tui: use {instead} instead")
    try:
        return vmas.make_env(name, num_envs=n_envs, device=device, max_steps=horizon, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a scenario's constructor raises anything
        text = (str(exc).strip().splitlines() or [""])[0]
        raise UserError(f"{where}: VMAS scenario {name!r} with the [model] arguments raised "
                        f"{type(exc).__name__}: {text}; check [model]") from None


def probe(name: str, kwargs: dict[str, Any], where: str) -> tuple[int, int | None]:
    """(agents, horizon or None) of a VMAS scenario, for a shorthand's scenario."""
    with _own_random(_seeded(0)):
        env = _make(name, kwargs, 1, "cpu", None, where)
    return env.n_agents, env.max_steps


def _seeded(seed: int) -> list[Any]:
    """A fresh VMAS random state: torch, numpy and Python generators seeded with `seed`."""
    return [torch.Generator().manual_seed(seed).get_state(), np.random.RandomState(seed).get_state(),
            random.Random(seed).getstate()]


@contextmanager
def _own_random(state: list[Any]) -> Iterator[list[Any]]:
    """Run VMAS with `state` (updated in place as VMAS draws), restoring the shared one after."""
    theirs = list(_SHARED_STATE)
    _SHARED_STATE[:] = state
    try:
        yield state
    finally:
        state[:] = _SHARED_STATE
        _SHARED_STATE[:] = theirs


def _action_space(space: Any, where: str) -> ActionSpace:
    if isinstance(space, spaces.Discrete):
        return ActionSpace("discrete", n=int(space.n))
    if isinstance(space, spaces.Box) and len(space.shape) == 1:  # VMAS's forces: [B, d] per agent
        return continuous_space([float(x) for x in space.low], [float(x) for x in space.high])
    raise UserError(f"{where}: actions are {space}; marl-tui's learners take a choice or a vector of numbers per "
                    "agent: add continuous_actions = false to [model] for VMAS's discrete actions")


class VmasBatched(ExternalEnv):
    """One VMAS environment of B copies. Copies that finish early (every agent at its goal)
    wait with zero reward and their last observation until the horizon, as all copies end
    episodes together. Observations of different sizes are zero-padded to the largest; so are
    actions (see common.joint_action_space): agent i is given its own index, or the first d_i
    numbers of its padded vector (the rest are ignored)."""

    def __init__(self, scenario: Any, n_envs: int, seed: int, device: torch.device | str = "cpu") -> None:
        super().__init__(n_envs, seed, device)
        where = scenario.source
        self.seed = seed
        self._rng = _seeded(seed)
        with _own_random(self._rng):
            self.env = _make(scenario.model.target, scenario.model.kwargs, n_envs, self.device,
                             scenario.episode_length, where)
        env = self.env
        check_agents(env.n_agents, scenario.agents, where)
        self._obs_sizes = [int(s.shape[0]) for s in env.observation_space]
        obs_dim = padded_width(self._obs_sizes)
        space = joint_action_space([_action_space(s, where) for s in env.action_space], where)
        n = env.n_agents
        self.spec = EnvSpec(
            n_agents=n,
            agent_names=tuple(a.name for a in env.agents),
            obs_dim=obs_dim,
            state_dim=n * obs_dim,  # VMAS has no global state: all observations
            action_space=space,
            episode_length=scenario.episode_length,
        )
        self._obs = torch.zeros(n_envs, n, obs_dim, device=self.device)
        self._over = torch.zeros(n_envs, dtype=torch.bool, device=self.device)

    def _store(self, obs: list[torch.Tensor], live: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fresh = torch.zeros_like(self._obs)
        for i, o in enumerate(obs):
            fresh[:, i, : self._obs_sizes[i]] = o
        self._obs = torch.where(live[:, None, None], fresh, self._obs)
        return self._obs.clone(), self._obs.flatten(1)

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if seed is not None:
            self.seed, self._rng = seed, _seeded(seed)
        with _own_random(self._rng):
            obs = self.env.reset()
        self.t = 0
        self._over.zero_()
        return self._store(obs, torch.ones_like(self._over))

    def step(self, actions: torch.Tensor) -> StepResult:
        a = actions.to(self.device)
        space = self.spec.action_space
        # VMAS takes [B] indices or [B, d_i] forces per agent; ours are [B, N] or [B, N, d] (d = max d_i).
        if space.kind == "discrete":
            per_agent = [a[:, i] for i in range(self.spec.n_agents)]
        elif space.dims == 1:
            per_agent = [a[:, i, None] for i in range(self.spec.n_agents)]
        else:
            per_agent = [a[:, i, : space.size(i)] for i in range(self.spec.n_agents)]
        with _own_random(self._rng):
            obs, rew, dones, _ = self.env.step(per_agent)
        live = ~self._over
        reward = torch.stack(rew, dim=-1) * live[:, None]
        self._over = self._over | dones
        self.t += 1
        obs_t, state = self._store(obs, live)
        return self._result(obs_t, state, reward)

    def get_state(self) -> dict[str, torch.Tensor]:
        return {"t": torch.tensor(self.t), "seed": torch.tensor(self.seed), "rng": self._rng[0].clone()}

    def set_state(self, state: dict[str, torch.Tensor]) -> None:
        """VMAS's world is not ours to save: start a fresh episode from the saved torch stream
        (numpy's and Python's from the seed) and keep the clock."""
        self.seed = int(state["seed"])
        self._rng = _seeded(self.seed)
        self._rng[0] = state["rng"].clone()
        self.reset()
        self.t = int(state["t"])
