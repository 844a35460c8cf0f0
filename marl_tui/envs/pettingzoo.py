"""PettingZoo both ways: our scenarios as a ParallelEnv, and external ParallelEnvs as a BatchedEnv.

`ScenarioParallelEnv` is one copy of any scenario behind PettingZoo's parallel
API, so other toolkits can train on it. `PettingZooBatched` runs B copies of an
external ParallelEnv (e.g. MPE simple_spread) so our algorithms can train on it.

pettingzoo and gymnasium come with the extra ``marl-tui[pettingzoo]``; without them,
importing this module is a one-line UserError saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from marl_tui.envs.base import ActionSpace, BatchedEnv, EnvSpec, Oracle, StepResult, make_env
from marl_tui.errors import UserError

try:  # an optional extra; nothing imports this module until a user asks for PettingZoo
    from gymnasium import spaces
    from pettingzoo import ParallelEnv
except ImportError as exc:
    raise UserError(f"the PettingZoo adapter needs {exc.name or 'pettingzoo'}, which is not installed: "
                    "install it with pip install 'marl-tui[pettingzoo]'") from None


def _box(size: int) -> spaces.Box:
    # Unbounded: scenario features are scaled but not all of them have a hard bound.
    return spaces.Box(-np.inf, np.inf, shape=(size,), dtype=np.float32)


def _gym_action_space(a: ActionSpace) -> spaces.Space:
    if a.kind == "discrete":
        return spaces.Discrete(a.n)
    return spaces.Box(a.low, a.high, shape=(1,), dtype=np.float32)


class ScenarioParallelEnv(ParallelEnv):
    """One copy of a bundled or user scenario as a PettingZoo ParallelEnv.

    Episodes end by time limit: at the last step every agent is truncated and
    removed. Infos carry the scenario's domain quantities as plain floats (a
    store's own value for per-agent quantities, lists for other vectors).
    """

    metadata = {"render_modes": ["human", "ansi"], "is_parallelizable": True}

    def __init__(self, scenario: Any, render_mode: str | None = None) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None")
        self.scenario = scenario
        self.render_mode = render_mode
        self.env = make_env(scenario, n_envs=1)
        spec = self.env.spec
        self.metadata = {**self.metadata, "name": f"marl_tui_{scenario.name}"}
        self.possible_agents = list(spec.agent_names)
        self.agents: list[str] = []
        self.max_cycles = spec.episode_length  # the name MPE uses for the horizon
        # Built once: PettingZoo requires the same space object on every call.
        self._obs_spaces = {a: _box(spec.obs_dim) for a in self.possible_agents}
        self._act_spaces = {a: _gym_action_space(spec.action_space) for a in self.possible_agents}
        self.state_space = _box(spec.state_dim)
        self._state = np.zeros(spec.state_dim, dtype=np.float32)
        self._last_info: dict[str, torch.Tensor] = {}

    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self._act_spaces[agent]

    def _split(self, obs: torch.Tensor, state: torch.Tensor) -> dict[str, np.ndarray]:
        self._state = state[0].cpu().numpy().astype(np.float32)
        per_agent = obs[0].cpu().numpy().astype(np.float32)
        return {a: per_agent[i] for i, a in enumerate(self.possible_agents)}

    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        obs, state = self.env.reset(seed)
        self.agents = self.possible_agents[:]
        self._last_info = {}
        return self._split(obs, state), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("the episode is over (or never started): call reset() first")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"no action for {missing[0]!r}: give one for every live agent")
        kind = self.env.spec.action_space.kind
        dtype = torch.long if kind == "discrete" else torch.float32
        values = [np.asarray(actions[a]).reshape(-1)[0] for a in self.possible_agents]
        res = self.env.step(torch.tensor([values], dtype=dtype, device=self.env.device))
        agents = self.agents
        obs = self._split(res.obs, res.state)
        rewards = {a: float(res.reward[0, i]) for i, a in enumerate(agents)}
        over = bool(res.done[0])
        terminated = dict.fromkeys(agents, False)
        truncated = dict.fromkeys(agents, over)
        self._last_info = res.info
        infos = {a: self._agent_info(i) for i, a in enumerate(agents)}
        if over:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return obs, rewards, terminated, truncated, infos

    def _agent_info(self, i: int) -> dict[str, float | list[float]]:
        n = len(self.possible_agents)
        out: dict[str, float | list[float]] = {}
        for key, value in self._last_info.items():
            v = value[0].detach().cpu().double()
            if v.ndim == 0:
                out[key] = float(v)
            elif v.shape == (n,):  # per-agent quantity: this agent's own value
                out[key] = float(v[i])
            else:
                out[key] = v.flatten().tolist()
        return out

    def state(self) -> np.ndarray:
        return self._state

    def render(self) -> str | None:
        if self.render_mode is None:
            return None
        parts = [f"t={self.env.t}"]
        for key, value in self._last_info.items():
            v = value[0].detach().cpu().double().flatten().tolist()
            parts.append(f"{key}=" + ",".join(f"{x:.3g}" for x in v))
        line = " ".join(parts)
        if self.render_mode == "human":
            print(line)
            return None
        return line

    def close(self) -> None:
        pass


class PettingZooBatched(BatchedEnv):
    """B copies of an external ParallelEnv with homogeneous agents, as a BatchedEnv.

    Agents must share one observation shape and one action space: Discrete(n) or
    a Box of shape (1,). Copy b is seeded with seed + b at the first reset (or at
    reset(seed)). Episodes last `episode_length` steps (default: the env's
    `max_cycles`); a copy whose agents leave earlier is padded with their last
    observation and zero reward until then. The global state is the env's
    `state()` when it has a state_space, otherwise all observations concatenated.
    """

    def __init__(
        self,
        make_parallel_env: Callable[[], ParallelEnv],
        n_envs: int,
        seed: int,
        device: torch.device | str = "cpu",
        episode_length: int | None = None,
    ) -> None:
        super().__init__(n_envs, seed, device)
        self.envs = [make_parallel_env() for _ in range(n_envs)]
        first = self.envs[0]
        self.agent_ids = list(first.possible_agents)
        obs_shapes = {first.observation_space(a).shape for a in self.agent_ids}
        act_spaces = {repr(first.action_space(a)) for a in self.agent_ids}
        if len(obs_shapes) != 1 or len(act_spaces) != 1:
            raise ValueError("PettingZooBatched needs agents with one observation shape "
                             "and one action space")
        self._gym_action = first.action_space(self.agent_ids[0])
        obs_dim = int(np.prod(next(iter(obs_shapes))))
        self._has_state = hasattr(first, "state_space")
        n = len(self.agent_ids)
        state_dim = int(np.prod(first.state_space.shape)) if self._has_state else n * obs_dim
        horizon = episode_length or getattr(first.unwrapped, "max_cycles", None)
        if not horizon:
            raise ValueError("give episode_length: the env has no max_cycles to read it from")
        self.spec = EnvSpec(
            n_agents=n,
            agent_names=tuple(str(a) for a in self.agent_ids),
            obs_dim=obs_dim,
            state_dim=state_dim,
            action_space=self._action_space(self._gym_action),
            episode_length=int(horizon),
        )
        self._next_seed: int | None = seed  # the first reset seeds every copy
        self._obs = np.zeros((n_envs, n, obs_dim), dtype=np.float32)

    @staticmethod
    def _action_space(space: spaces.Space) -> ActionSpace:
        if isinstance(space, spaces.Discrete):
            return ActionSpace("discrete", n=int(space.n))
        if isinstance(space, spaces.Box) and space.shape == (1,):
            return ActionSpace("continuous", low=float(space.low[0]), high=float(space.high[0]))
        raise ValueError(f"unsupported action space {space}: use Discrete(n) or Box of shape (1,)")

    def _store(self, b: int, obs: dict[str, Any]) -> None:
        for i, agent in enumerate(self.agent_ids):
            if agent in obs:  # a departed agent keeps its last observation
                self._obs[b, i] = np.asarray(obs[agent], dtype=np.float32).reshape(-1)

    def _outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        obs = torch.as_tensor(self._obs.copy(), device=self.device)
        if self._has_state:
            state = np.stack([np.asarray(e.state(), dtype=np.float32).reshape(-1)
                              for e in self.envs])
            return obs, torch.as_tensor(state, device=self.device)
        return obs, obs.flatten(1)

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if seed is not None:
            self._next_seed = seed
        for b, env in enumerate(self.envs):
            s = None if self._next_seed is None else self._next_seed + b
            obs, _ = env.reset(seed=s)
            self._store(b, obs)
        self._next_seed = None  # later resets continue each copy's own random stream
        self.t = 0
        return self._outputs()

    def _native(self, value: torch.Tensor) -> Any:
        if self.spec.action_space.kind == "discrete":
            return int(value)
        return np.array([float(value)], dtype=self._gym_action.dtype)

    def step(self, actions: torch.Tensor) -> StepResult:
        acts = actions.detach().cpu()
        reward = np.zeros((self.n_envs, self.spec.n_agents), dtype=np.float32)
        for b, env in enumerate(self.envs):
            if not env.agents:
                continue  # this copy's episode is over: padding until the horizon
            live = {a: self._native(acts[b, i]) for i, a in enumerate(self.agent_ids)
                    if a in env.agents}
            obs, rew, _, _, _ = env.step(live)
            self._store(b, obs)
            for i, agent in enumerate(self.agent_ids):
                reward[b, i] = float(rew.get(agent, 0.0))
        self.t += 1
        obs, state = self._outputs()
        reward_t = torch.as_tensor(reward, device=self.device)
        done = torch.full((self.n_envs,), self.t >= self.spec.episode_length, device=self.device)
        info = {"team_reward": reward_t.sum(-1)}
        return StepResult(obs, state, reward_t, done, info)

    def oracle(self) -> Oracle:
        return Oracle(values={}, summary="no reference answer", kpis={}, team_return=float("nan"))

    def kpis(self, info: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | float]:
        return {"team_reward_per_step": info["team_reward"].mean()}

    def get_state(self) -> dict[str, torch.Tensor]:
        return {"t": torch.tensor(self.t)}

    def set_state(self, state: dict[str, torch.Tensor]) -> None:
        # An external env's internals are not tensors we can restore.
        raise UserError("runs on an external PettingZoo environment cannot be resumed: "
                        "start a new run")
