"""The run stream's vocabulary: typed frames and messages, and the one codec that carries them.

A **frame** is everything a screen shows about one step of one copy (copy 0): the scene of
that step (actions, rewards, the env's domain quantities), the steps just before it (a trail
for the panels' short histories), the algorithm's explain numbers *for the decision taken in
that step*, and the run's stats at that step. Every panel on a screen renders the same frame,
so a screen shows one moment.

Messages between the app and its training process are the structs below, encoded with
msgspec's MessagePack (`encode`, `decode_to_app`, `decode_to_run`): typed both ways, data
never code. A message that does not decode raises `StreamError` with one line saying why.
"""

from __future__ import annotations

from typing import Any, Literal, Union

import msgspec

from marl_tui.algos.registry import explain_types, what_if_types
from marl_tui.envs.base import EnvSpec

# Any algorithm's explain struct (each is tagged with its class name).
AnyExplain = Union[explain_types()]  # noqa: UP007 - built from a tuple at import time

# Any algorithm's what-if values (each tagged with its class name).
AnyWhatIfValues = Union[what_if_types()]  # noqa: UP007 - built from a tuple at import time

# A domain quantity of one step for copy 0: a number, or one number per agent (or per store).
Quantity = float | tuple[float, ...]


class StepScene(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One step of copy 0 as plain numbers. (Defaults are left out of the encoding, so a scene
    of one-number actions encodes as it always has.)"""

    step: int  # batched steps its view (training, or the greedy view) has taken, this one included
    env_steps: int  # environment steps of training over all copies when it was taken
    episode: int  # episodes its view had finished before this step
    t: int  # step within the episode (1..T)
    # One per agent, in the scenario's units; for vector actions each agent's first number.
    actions: tuple[float, ...]
    reward: tuple[float, ...]  # one per agent, raw units
    info: dict[str, Quantity]  # the env's domain quantities (price, stock, order_xy, ...)
    # Vector actions (d > 1 numbers per agent, external envs): every agent's whole action.
    action_vectors: tuple[tuple[float, ...], ...] = ()


class FrameStats(msgspec.Struct, frozen=True, kw_only=True):
    """The run's figures at the frame's step (what the status line and chart titles show)."""

    episodes: int  # training episodes finished (per copy)
    updates: int
    team_return: float | None  # last finished training episode, mean over copies
    agent_returns: tuple[float, ...]
    kpis: dict[str, float]  # last finished training episode
    metrics: dict[str, float]  # last update
    exploration: tuple[str, float] | None


class ChartPoints(msgspec.Struct, frozen=True, kw_only=True):
    """Chart points made since the previous frame (or the whole history, in Ready)."""

    # (env steps, team return, per-agent returns) per finished episode
    episodes: tuple[tuple[float, float, tuple[float, ...]], ...] = ()
    # metric name -> (env steps, value) per update
    losses: dict[str, tuple[tuple[float, float], ...]] = {}


class Frame(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """One moment of a run, as every panel shows it."""

    greedy: bool  # taken by the greedy policy (the evaluation view), not while learning
    scene: StepScene
    trail: tuple[StepScene, ...]  # consecutive steps of the same view before `scene`, oldest first
    explain: AnyExplain | None  # algo.explain() on the observation this step acted on
    explain_error: str | None = None  # why explain() failed (the frame still shows the scene)
    stats: FrameStats
    chart: ChartPoints = ChartPoints()


class Progress(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Counters that tick faster than frames (shown apart from the frame's step)."""

    status: Literal["starting", "running", "paused", "finished", "stopped", "error"]
    env_steps: int
    total_steps: int
    greedy_steps: int
    steps_per_second: float
    save_note: str | None = None
    error: str | None = None
    findings: tuple[str, ...] = ()  # the doctor's current findings (learn/doctor.py), a line each
    held: bool = False  # paused by the run itself at an episode's end (pause_each_episode)


class OracleView(msgspec.Struct, frozen=True, kw_only=True):
    """What views read of a scenario's reference answer."""

    summary: str
    kpis: dict[str, float]
    values: dict[str, float]  # its scalar reference values (nash_price, ...)
    team_return: float
    has_policy: bool


class Ready(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The run is built: what views need besides frames."""

    spec: EnvSpec
    oracle: OracleView
    n_envs: int
    total_steps: int
    history: ChartPoints  # chart points so far (a run continued from a checkpoint has some)


class Failed(msgspec.Struct, frozen=True, tag=True):
    """The run could not be built: one line saying why."""

    reason: str


class WhatIfQuery(msgspec.Struct, frozen=True, kw_only=True):
    """"What if agent i had acted differently?" about the step a paused run stands on."""

    id: int  # queries asked, counted from the start: the run answers each id once
    greedy: bool  # about the greedy view's step (else training's)
    step: int  # the frame's scene.step it is about
    agent: int  # i, from 0
    action: float  # a'_i in the scenario's units (a price, an order size; 0/1 for decline/accept)


class WhatIfAnswer(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The step of a WhatIfQuery replayed on a copy of the env with a_i replaced (everyone else's
    action held), and what the algorithm's networks make of it. Rewards in raw units."""

    id: int
    greedy: bool
    step: int
    agent: int
    actions: tuple[float, ...]  # the joint action as taken, scenario units
    action: float  # a'_i, scenario units
    reward: tuple[float, ...]  # r_j as it happened, every agent j
    replaced: tuple[float, ...]  # r_j with a_i replaced by a'_i
    best_action: float  # agent i's best response to a_-i among the candidates searched
    best_reward: tuple[float, ...]  # r_j with a_i replaced by it
    best_for: Literal["own", "team"]  # what the best response maximises: r_i, or the team's sum
    candidates: int  # actions of agent i tried for the best response (all of a discrete set)
    reward_scale: float  # learners see rewards x this (the algorithm's values are in those units)
    values: AnyWhatIfValues | None  # None: the algorithm has no networks to ask (a baseline)


class WhatIfRefused(msgspec.Struct, frozen=True, tag=True):
    """A WhatIfQuery the run could not answer, and the one-line reason (with what to do)."""

    id: int
    reason: str


class ControlState(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """How a view wants the run driven. Sent whole on every change and applied idempotently:
    counters only grow, so a state that arrives twice changes nothing."""

    paused: bool = False
    speed: float | None = None  # batched steps per second; None: as fast as it goes
    greedy: bool = False  # the greedy view plays instead of training
    steps_granted: int = 0  # steps a paused run may take (`n`), counted from the start
    saves_requested: int = 0  # checkpoints asked for (`s`), counted from the start
    frames_granted: int = 0  # frames the view is ready for, counted from the start
    pause_each_episode: bool = False  # the run holds still after every finished episode
    whatif: WhatIfQuery | None = None  # the latest what-if asked (answered once per id)
    stop: bool = False


class GreedyEpisode(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """One complete greedy episode of the policy as it was at a checkpoint (copy 0's frames),
    and what the greedy policy scored over every copy in it."""

    env_steps: int  # training env steps when it was played (the checkpoint's)
    frames: tuple[Frame, ...]  # every step of the episode, in order, without trails
    team_return: float  # mean over copies
    kpis: dict[str, float]  # mean over the episode's steps and copies
    copies: int


class StreamHeader(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The first record of a run's stream: what it is a stream of."""

    format: int  # STREAM_FORMAT of the marl-tui that wrote it
    marl_tui: str  # its version
    scenario: str  # the scenario's name
    kind: str
    algo: str
    seed: int
    ready: Ready  # spec, oracle, copies, budget, chart points before this stream began


ToApp = Ready | Failed | Frame | Progress | WhatIfAnswer | WhatIfRefused
StreamRecord = StreamHeader | Frame | GreedyEpisode


class StreamError(ValueError):
    """A message that is not one of ours (malformed, truncated, or of another version)."""


_encoder = msgspec.msgpack.Encoder()
_to_app = msgspec.msgpack.Decoder(ToApp)
_to_run = msgspec.msgpack.Decoder(ControlState)
_record = msgspec.msgpack.Decoder(StreamRecord)


def encode(msg: ToApp | ControlState | StreamRecord) -> bytes:
    return _encoder.encode(msg)


def _decode(decoder: Any, data: bytes) -> Any:
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise StreamError(f"a malformed message ({len(data)} bytes): {exc}") from None


def decode_to_app(data: bytes) -> ToApp:
    return _decode(_to_app, data)


def decode_to_run(data: bytes) -> ControlState:
    return _decode(_to_run, data)


def decode_record(data: bytes) -> StreamRecord:
    return _decode(_record, data)
