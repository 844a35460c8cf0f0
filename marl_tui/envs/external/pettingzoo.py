"""PettingZoo both ways: our scenarios as a ParallelEnv, and external ParallelEnvs as a BatchedEnv.

`ScenarioParallelEnv` is one copy of any scenario behind PettingZoo's parallel
API, so other toolkits can train on it. `PettingZooBatched` runs B copies of an
external ParallelEnv (e.g. MPE simple_spread) so our algorithms can train on it;
`make_pettingzoo` builds it for a ``kind = "pettingzoo"`` scenario.

pettingzoo and gymnasium come with the extra ``marl-tui[pettingzoo]``; without them,
importing this module is a one-line UserError saying so.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from marl_tui.envs.base import ActionSpace, BatchedEnv, EnvSpec, StepResult, continuous_space, make_env
from marl_tui.envs.external.common import (
    ExternalEnv,
    check_agents,
    import_optional,
    joint_action_space,
    padded_width,
)
from marl_tui.errors import UserError

# An optional extra: nothing imports this module until a user asks for PettingZoo.
spaces = import_optional("gymnasium.spaces", "pettingzoo")
ParallelEnv = import_optional("pettingzoo", "pettingzoo").ParallelEnv


def _box(size: int) -> spaces.Box:
    # Unbounded: scenario features are scaled but not all of them have a hard bound.
    return spaces.Box(-np.inf, np.inf, shape=(size,), dtype=np.float32)


def _gym_action_space(a: ActionSpace) -> spaces.Space:
    """One agent's space (a = ActionSpace.own(i)): Discrete(n), or a Box of its d numbers."""
    if a.kind == "discrete":
        return spaces.Discrete(a.n)
    low, high = zip(*(a.dim_range(k) for k in range(a.dims)), strict=True)
    return spaces.Box(np.array(low, dtype=np.float32), np.array(high, dtype=np.float32), dtype=np.float32)


class ScenarioParallelEnv(ParallelEnv):  # type: ignore[misc,valid-type]
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
        self._act_spaces = {a: _gym_action_space(spec.action_space.own(i))  # each agent's own, unpadded
                            for i, a in enumerate(self.possible_agents)}
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
        res = self.env.step(self._batched(actions))
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

    def _batched(self, actions: dict[str, Any]) -> torch.Tensor:
        """The agents' actions as the batched env takes them: [1, N], or [1, N, dims] for vector
        actions, an agent with fewer numbers zero-padded (its env never receives the padding)."""
        space = self.env.spec.action_space
        if space.kind == "discrete" or space.dims == 1:
            dtype = torch.long if space.kind == "discrete" else torch.float32
            values = [np.asarray(actions[a]).reshape(-1)[0] for a in self.possible_agents]
            return torch.tensor([values], dtype=dtype, device=self.env.device)
        padded = np.zeros((1, len(self.possible_agents), space.dims), dtype=np.float32)
        for i, a in enumerate(self.possible_agents):
            v = np.asarray(actions[a], dtype=np.float32).reshape(-1)
            padded[0, i, : v.size] = v
        return torch.as_tensor(padded, device=self.env.device)

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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def resolve_factory(target: str, where: str) -> Callable[..., Any]:
    """The callable `target` ("module:function") names, or a UserError saying what is wrong."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UserError(f"{where}: env = {target!r}: no module named {exc.name!r}; install the package "
                        "that provides it (e.g. pip install mpe2) or fix the name") from None
    except Exception as exc:  # noqa: BLE001 - importing someone's module can raise anything
        raise UserError(f"{where}: env = {target!r}: importing {module_name} failed ({_first_line(exc)})") from None
    factory = getattr(module, attr, None)
    if factory is None:
        names = [n for n in dir(module) if not n.startswith("_")]
        close = difflib.get_close_matches(attr, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"{where}: env = {target!r}: module {module_name} has no {attr!r}{hint}; "
                        "name its ParallelEnv factory, e.g. parallel_env")
    if not callable(factory):
        raise UserError(f"{where}: env = {target!r}: {attr} is a {type(factory).__name__}, not a function "
                        "that returns a ParallelEnv")
    return factory


def parallel_env_maker(target: str, kwargs: dict[str, Any], where: str) -> Callable[[], ParallelEnv]:
    """A no-argument function building one copy, whose failures are one-line UserErrors."""
    factory = resolve_factory(target, where)

    def make() -> ParallelEnv:
        try:
            env = factory(**kwargs)
        except Exception as exc:  # noqa: BLE001 - a user's factory raises anything
            raise UserError(f"{where}: {target}(...) with the [model] arguments raised "
                            f"{_first_line(exc)}; check [model]") from None
        if not isinstance(env, ParallelEnv):
            raise UserError(f"{where}: {target} returned a {type(env).__name__}, not a PettingZoo "
                            "ParallelEnv: name the module's parallel factory (e.g. module:parallel_env)")
        return env

    return make


def probe(target: str, kwargs: dict[str, Any], where: str) -> tuple[int, int | None]:
    """(agents, horizon or None) of the env `target` builds, for a shorthand's scenario."""
    env = parallel_env_maker(target, kwargs, where)()
    return len(env.possible_agents), getattr(env.unwrapped, "max_cycles", None)


def make_pettingzoo(scenario: Any, n_envs: int, seed: int, device: torch.device | str = "cpu") -> BatchedEnv:
    """The batched env of a ``kind = "pettingzoo"`` scenario (see marl_tui.config.ExternalModel)."""
    m = scenario.model
    env = PettingZooBatched(parallel_env_maker(m.target, m.kwargs, scenario.source), n_envs, seed, device,
                            episode_length=scenario.episode_length, where=scenario.source)
    check_agents(env.spec.n_agents, scenario.agents, scenario.source)
    return env


def _action_space(space: Any, where: str) -> ActionSpace:
    if isinstance(space, spaces.Discrete):
        return ActionSpace("discrete", n=int(space.n))
    if isinstance(space, spaces.Box) and len(space.shape) == 1:  # d numbers, each in its own bounds
        return continuous_space([float(x) for x in space.low], [float(x) for x in space.high])
    raise UserError(f"{where}: unsupported action space {space}: marl-tui takes Discrete(n) or a Box of shape (d,)")


class PettingZooBatched(ExternalEnv):
    """B copies of an external ParallelEnv, as a BatchedEnv.

    Agents act in Discrete(n) or a Box of shape (d,). Observations of different sizes are
    zero-padded to the largest; so are actions (see common.joint_action_space): agent i is
    given its own index, or the first d_i numbers of its padded vector (the rest are ignored).
    Every reset
    seeds copy b afresh from (seed, episode number, b), so an episode's start
    depends on nothing before it and a resumed run restarts its interrupted
    episode exactly. Episodes last `episode_length` steps (default: the env's
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
        where: str = "PettingZoo env",
    ) -> None:
        super().__init__(n_envs, seed, device)
        self.envs = [make_parallel_env() for _ in range(n_envs)]
        first = self.envs[0]
        self.agent_ids = list(first.possible_agents)
        self._obs_sizes = [int(np.prod(first.observation_space(a).shape)) for a in self.agent_ids]
        obs_dim = padded_width(self._obs_sizes)
        space = joint_action_space([_action_space(first.action_space(a), where) for a in self.agent_ids], where)
        self._gym_actions = [first.action_space(a) for a in self.agent_ids]
        self._has_state = hasattr(first, "state_space")
        n = len(self.agent_ids)
        state_dim = int(np.prod(first.state_space.shape)) if self._has_state else n * obs_dim
        horizon = episode_length or getattr(first.unwrapped, "max_cycles", None)
        if not horizon:
            raise UserError(f"{where}: give episode_length: the env has no max_cycles to read it from")
        self.spec = EnvSpec(
            n_agents=n,
            agent_names=tuple(str(a) for a in self.agent_ids),
            obs_dim=obs_dim,
            state_dim=state_dim,
            action_space=space,
            episode_length=int(horizon),
        )
        self.seed = seed
        self.episode = 0  # resets so far: with the seed, it fixes every copy's next start
        self._obs = np.zeros((n_envs, n, obs_dim), dtype=np.float32)

    def _store(self, b: int, obs: dict[str, Any]) -> None:
        for i, agent in enumerate(self.agent_ids):
            if agent in obs:  # a departed agent keeps its last observation
                self._obs[b, i, : self._obs_sizes[i]] = np.asarray(obs[agent], dtype=np.float32).reshape(-1)

    def _outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        obs = torch.as_tensor(self._obs.copy(), device=self.device)
        if self._has_state:
            state = np.stack([np.asarray(e.state(), dtype=np.float32).reshape(-1)
                              for e in self.envs])
            return obs, torch.as_tensor(state, device=self.device)
        return obs, obs.flatten(1)

    def _copy_seed(self, b: int) -> int:
        return int(np.random.SeedSequence([self.seed, self.episode, b]).generate_state(1)[0])

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if seed is not None:
            self.seed, self.episode = seed, 0
        for b, env in enumerate(self.envs):
            obs, _ = env.reset(seed=self._copy_seed(b))
            self._store(b, obs)
        self.episode += 1
        self.t = 0
        return self._outputs()

    def _native(self, value: torch.Tensor, i: int) -> Any:
        """Agent i's action as its env takes it: an index, or its own d_i numbers (padding dropped)."""
        space = self.spec.action_space
        if space.kind == "discrete":
            return int(value)
        return value.reshape(-1)[: space.size(i)].numpy().astype(self._gym_actions[i].dtype)

    def step(self, actions: torch.Tensor) -> StepResult:
        acts = actions.detach().cpu()
        reward = np.zeros((self.n_envs, self.spec.n_agents), dtype=np.float32)
        for b, env in enumerate(self.envs):
            if not env.agents:
                continue  # this copy's episode is over: padding until the horizon
            live = {a: self._native(acts[b, i], i) for i, a in enumerate(self.agent_ids)
                    if a in env.agents}
            obs, rew, _, _, _ = env.step(live)
            self._store(b, obs)
            for i, agent in enumerate(self.agent_ids):
                reward[b, i] = float(rew.get(agent, 0.0))
        self.t += 1
        obs, state = self._outputs()
        reward_t = torch.as_tensor(reward, device=self.device)
        return self._result(obs, state, reward_t)

    def get_state(self) -> dict[str, torch.Tensor]:
        return {"t": torch.tensor(self.t), "seed": torch.tensor(self.seed), "episode": torch.tensor(self.episode)}

    def set_state(self, state: dict[str, torch.Tensor]) -> None:
        """An external env's internals are not tensors we can save: replay the interrupted
        episode's start (exact when the checkpoint fell at an episode's end) and keep its clock."""
        self.seed, self.episode = int(state["seed"]), int(state["episode"]) - 1
        self.reset()
        self.t = int(state["t"])
