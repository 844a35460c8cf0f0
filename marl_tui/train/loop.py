"""The training loop and nothing else: update → act → env.step → observe → episode accounting.

The update comes first in each iteration (it learns from the steps observed so far), so the
weights that took a step's decision stay in place until the next iteration begins: whoever
looks at the last step between iterations (a paused view, a frame) sees exactly the policy
that acted. Across a run this is the same sequence of operations as observe-then-update.

Nothing here is about views, files or pacing: the Run (run.py) drives the loop and hands its
outcomes to callbacks. Outcomes hold tensors by reference (envs return fresh tensors each
step); the last TRAIL of them stay in `recent`, so a frame can be built for any of them later,
in one batch, and only when one is wanted. KPIs accumulate on the device and are read back
once per episode; an episode's end is read off the env's own step counter (every copy ends
together at episode_length: the env contract), so a step waits for the device nowhere.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import torch

from marl_tui.algos.base import ActOutput, Algorithm, Transition
from marl_tui.envs.base import BatchedEnv

TRAIL = 100  # steps kept for frames' trails (a price trail across a 120-column screen)


@dataclass(frozen=True)
class StepOutcome:
    """One batched step, by reference: the observation acted on, what was done, what came back."""

    obs: torch.Tensor  # [B, N, O] the observation the actions were chosen on
    state: torch.Tensor  # [B, S]
    actions: torch.Tensor  # [B, N] (or [B, N, d]) as the algorithm chose them (indices on discretised envs)
    native_actions: torch.Tensor  # [B, N] (or [B, N, d]) in the scenario's units
    reward: torch.Tensor  # [B, N] raw units
    info: dict[str, torch.Tensor]
    step: int  # batched steps of this loop so far, this one included
    env_steps: int  # training env steps when it was taken
    episode: int  # episodes finished before this step
    t: int  # step within the episode (1..T)


@dataclass(frozen=True)
class EpisodeEnd:
    """A finished episode of every copy, reduced to plain numbers (one host sync)."""

    episodes: int  # episodes finished, this one included
    env_steps: int
    team_return: float  # summed over agents, mean over copies
    agent_returns: tuple[float, ...]  # mean over copies
    kpis: dict[str, float]  # the scenario's KPIs averaged over the episode's steps


class EpisodeAccount:
    """Returns and KPIs of the episode in progress, summed on the device."""

    def __init__(self, env: BatchedEnv) -> None:
        self.env = env
        self.returns = torch.zeros(env.n_envs, env.spec.n_agents, device=env.device)
        self.kpi_sums: dict[str, torch.Tensor] = {}
        self.steps = 0

    def add(self, reward: torch.Tensor, info: dict[str, torch.Tensor]) -> None:
        self.returns += reward
        for k, v in self.env.kpis(info).items():
            v = torch.as_tensor(v, dtype=torch.float64, device=self.env.device)
            self.kpi_sums[k] = self.kpi_sums[k] + v if k in self.kpi_sums else v
        self.steps += 1

    def close(self, episodes: int, env_steps: int) -> EpisodeEnd:
        n = self.env.spec.n_agents
        names = list(self.kpi_sums)
        packed = torch.cat([self.returns.mean(0).double(),
                            torch.stack([self.kpi_sums[k] for k in names]) / max(self.steps, 1)
                            if names else torch.zeros(0, dtype=torch.float64, device=self.env.device)])
        values = packed.tolist()  # the episode's one sync
        agents = tuple(values[:n])
        end = EpisodeEnd(episodes=episodes, env_steps=env_steps, team_return=sum(agents),
                         agent_returns=agents, kpis=dict(zip(names, values[n:], strict=True)))
        self.returns.zero_()
        self.kpi_sums, self.steps = {}, 0
        return end

    def state_dict(self) -> dict[str, Any]:
        return {"ep_return": self.returns, "kpi_sums": dict(self.kpi_sums), "kpi_count": self.steps}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        if s["ep_return"].shape != self.returns.shape:
            raise ValueError(f"saved returns have shape {tuple(s['ep_return'].shape)}, "
                             f"this env {tuple(self.returns.shape)}")
        self.returns = s["ep_return"].to(self.env.device)
        self.kpi_sums = {k: torch.as_tensor(v, dtype=torch.float64, device=self.env.device)
                         for k, v in s["kpi_sums"].items()}
        self.steps = int(s["kpi_count"])


class Loop:
    """Steps B copies of one env with one algorithm; counts steps, updates and episodes."""

    def __init__(self, env: BatchedEnv, algo: Algorithm, seed: int | None, learn: bool = True) -> None:
        self.env, self.algo, self.learn = env, algo, learn
        self.obs, self.state = env.reset(seed)
        self.step_count = 0  # batched steps
        self.env_steps = 0
        self.episodes = 0
        self.updates = 0
        self.account = EpisodeAccount(env)
        self.recent: deque[StepOutcome] = deque(maxlen=TRAIL)

    def update_if_ready(self) -> dict[str, float] | None:
        """One learning step when the algorithm has something to learn from."""
        if not (self.learn and self.algo.ready()):
            return None
        metrics = self.algo.update()
        self.updates += 1
        return metrics

    def step(self) -> tuple[StepOutcome, EpisodeEnd | None]:
        outcome, ended, _ = self.advance(self.algo.act(self.obs, self.state, explore=self.learn))
        return outcome, ended

    def advance(self, out: ActOutput, observe: bool = True) -> tuple[StepOutcome, EpisodeEnd | None, Transition | None]:
        """Take the step `out` decided (act() on this loop's obs): the env steps, the learner
        observes (observe=False: the transition is returned instead, for a learner that observes
        several loops at once: train/seed_batch.py), and the episode is accounted for."""
        obs, state = self.obs, self.state
        res = self.env.step(out.actions)
        transition = None
        if self.learn:
            transition = Transition(
                obs=obs, state=state, actions=out.actions,
                reward=res.reward * self.env.spec.reward_scale,
                next_obs=res.obs, next_state=res.state,
                terminated=torch.zeros_like(res.done), truncated=res.done, extras=out.extras,
            )
            if observe:
                self.algo.observe(transition)
                transition = None
        self.step_count += 1
        if self.learn:
            self.env_steps += self.env.n_envs
        outcome = StepOutcome(
            obs=obs, state=state, actions=out.actions, native_actions=self.env.to_native(out.actions),
            reward=res.reward, info=res.info, step=self.step_count, env_steps=self.env_steps,
            episode=self.episodes, t=self.env.t,
        )
        self.recent.append(outcome)
        self.account.add(res.reward, res.info)
        ended = None
        if self.env.t >= self.env.spec.episode_length:  # res.done, known on the host
            self.episodes += 1
            ended = self.account.close(self.episodes, self.env_steps)
            self.obs, self.state = self.env.reset()
        else:
            self.obs, self.state = res.obs, res.state
        return outcome, ended, transition

    def state_dict(self) -> dict[str, Any]:
        return {"iteration": self.step_count, "env_steps": self.env_steps, "episodes": self.episodes,
                "updates": self.updates, "obs": self.obs, "state": self.state,
                **self.account.state_dict()}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        shapes = (self.obs.shape, self.state.shape)
        saved = (s["obs"].shape, s["state"].shape)
        if shapes != saved:
            raise ValueError(f"saved observations have shapes {saved}, this env {shapes}")
        self.step_count, self.env_steps = int(s["iteration"]), int(s["env_steps"])
        self.episodes, self.updates = int(s["episodes"]), int(s["updates"])
        self.obs, self.state = s["obs"].to(self.env.device), s["state"].to(self.env.device)
        self.account.load_state_dict(s)
        self.recent.clear()
