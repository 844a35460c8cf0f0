"""A run's figures: bounded chart histories, and the immutable Stats snapshot that progress
lines and reports read (from any thread)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class BoundedSeries:
    """A chart history of at most `capacity` points: when full, keep every other point.

    Memory stays flat on long runs while the whole run stays visible.
    """

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self.stride = 1
        self._seen = 0
        self.x: list[float] = []
        self.y: list[float] = []

    def append(self, x: float, y: float) -> None:
        self._seen += 1
        if (self._seen - 1) % self.stride:
            return
        self.x.append(x)
        self.y.append(y)
        if len(self.x) >= self.capacity:
            self.x, self.y = self.x[::2], self.y[::2]
            self.stride *= 2

    def snapshot(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return tuple(self.x), tuple(self.y)

    def state_dict(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "stride": self.stride, "seen": self._seen,
                "x": list(self.x), "y": list(self.y)}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.capacity, self.stride, self._seen = s["capacity"], s["stride"], s["seen"]
        self.x, self.y = list(s["x"]), list(s["y"])


@dataclass(frozen=True)
class Stats:
    status: str  # starting | running | paused | finished | stopped | error
    iteration: int = 0  # training batched steps
    greedy_steps: int = 0  # batched steps the greedy view has played (no learning, not saved)
    env_steps: int = 0
    total_steps: int = 0
    episodes: int = 0  # finished episodes per copy
    updates: int = 0
    steps_per_second: float = 0.0
    exploration: tuple[str, float] | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # last update()
    kpis: dict[str, float] = field(default_factory=dict)  # last finished episode
    team_return: float | None = None  # last finished episode, mean over copies
    agent_returns: tuple[float, ...] = ()
    # Histories: (x = env steps, y) pairs, bounded.
    team_history: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())
    agent_history: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...] = ()
    loss_history: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = field(
        default_factory=dict
    )
    error: str | None = None
    save_note: str | None = None  # one line about the last checkpoint save


class RunningMeans:
    """Means over the episodes a greedy view has played: team return, per-agent returns, KPIs."""

    def __init__(self) -> None:
        self.episodes = 0
        self._team = 0.0
        self._agents: list[float] = []
        self._kpis: dict[str, float] = {}

    def add(self, team_return: float, agent_returns: tuple[float, ...], kpis: dict[str, float]) -> None:
        self.episodes += 1
        self._team += team_return
        self._agents = [a + b for a, b in zip(self._agents, agent_returns, strict=True)] if self._agents \
            else list(agent_returns)
        for k, v in kpis.items():
            self._kpis[k] = self._kpis.get(k, 0.0) + v

    @property
    def team_return(self) -> float | None:
        return self._team / self.episodes if self.episodes else None

    @property
    def agent_returns(self) -> tuple[float, ...]:
        return tuple(a / self.episodes for a in self._agents) if self.episodes else ()

    @property
    def kpis(self) -> dict[str, float]:
        return {k: v / self.episodes for k, v in self._kpis.items()} if self.episodes else {}
