"""Scenario files and run options: one typed schema, one validator, one-line errors.

A scenario file is TOML. Its top level says what the scenario is (name, kind,
agents, episode length, parallel copies, seed); ``[model]`` holds every number
the environment uses, checked against the dataclass of its kind; ``[train.ALGO]``
tables override an algorithm's hyperparameters for this scenario (checked when
the algorithm is resolved, in ``algos/registry.py``).

Every range is declared once, as a ``msgspec.Meta`` on a type: the models here,
the run options (``RunOptions``; the CLI turns them into Typer ranges) and the
hyperparameter table in the registry. msgspec does the checking; ``check_table``
turns its errors into one line naming the file, the field, the value, what is
allowed and what the field means.

Nothing here imports torch or an environment, so ``marl-tui --help`` and
``marl-tui scenarios`` stay fast.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import stat
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

import msgspec
from msgspec import Meta

from marl_tui.errors import UserError
from marl_tui.text import printable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

T = TypeVar("T")

ALGO_TITLES = {
    "maddpg": "MADDPG",
    "mappo": "MAPPO",
    "qmix": "QMIX",
    "random": "random baseline",
    "oracle": "oracle baseline",
}
ALGOS = tuple(ALGO_TITLES)

# --------------------------------------------------------------------------- run options

MAX_SEED = 2**31 - 1
STEPS = Meta(ge=1, description="environment steps over all parallel copies")
COPIES = Meta(ge=1, le=1_000_000, description="parallel copies of the environment")
SEED = Meta(ge=0, le=MAX_SEED, description="random seed")
CHECKPOINT_EVERY = Meta(ge=0, description="env steps between checkpoints; 0: only at the end")
# `marl-tui eval` and `watch --headless`: greedy episodes played, in all (EPyMARL reports 100).
EVAL_EPISODES = 100
Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = typing.get_args(Device)


@dataclass(frozen=True)
class RunOptions:
    """How one run is started (CLI, picker, resume); None means the scenario's or algorithm's default."""

    steps: Annotated[int, STEPS] | None = None
    envs: Annotated[int, COPIES] | None = None
    seed: Annotated[int, SEED] | None = None
    device: Device = "cpu"
    checkpoint_every: Annotated[int, CHECKPOINT_EVERY] | None = None


def check_run_options(origin: str | None = None, **options: Any) -> RunOptions:
    """The options as RunOptions, or a UserError naming the flag: ``--envs 0: must be >= 1 (…)``.

    origin: the options were read from a file (a checkpoint's stored config), not given as
    flags: the error names the file and the key (``PATH: config.envs = 100000000 is out of range``)."""
    try:
        return msgspec.convert(options, RunOptions)
    except msgspec.ValidationError as exc:
        problem = _Problem.of(exc, typing.get_type_hints(RunOptions, include_extras=True), options)
    if origin is not None:
        raise UserError(f"{origin}: its stored {problem.line('config')}")
    raise UserError(problem.flag_line(f"--{problem.path.replace('_', '-')}"))


def check_flag(flag: str, value: Any, tp: Any) -> Any:
    """One option's value checked against an annotated type: ``--gamma 1.5: must be >= 0 and < 1 (…)``."""
    if not _finite(value):  # a float option parses "inf" and "nan"; no setting means either
        raise UserError(f"{flag} {value!r}: expected a finite number")
    try:
        return msgspec.convert(value, tp)
    except msgspec.ValidationError as exc:
        problem = _Problem.of(exc, {flag: tp}, {flag: value})
    raise UserError(problem.flag_line(flag))


# --------------------------------------------------------------------------- models

# The warehouse oracle is an exact DP; scenario files asking for more table cells than this
# are refused when read (8 bytes a cell: 160 MB in all; the default needs 76k, lead time 2
# 3.5M). Counted here, not in the oracle, so reading a file never imports an environment.
DP_CELL_LIMIT = 20_000_000


def dp_table_cells(season_length: int, capacity: int, max_order: int, lead_time: int) -> int:
    """One warehouse's largest oracle table: the Q values (season x states x order sizes) and
    the policy evaluation's transitions (season x states x leftover stocks)."""
    states = (capacity + 1) ** max(lead_time, 1)
    return season_length * states * (max(capacity, max_order) + 1)


def dp_size_problem(cells: int) -> str:
    return (f"the exact DP would need {cells:,} cells (limit {DP_CELL_LIMIT:,}); "
            "lower capacity, lead_time, season_length or agents")


# Ranges are those of the models' meaning, not only of float: a price or a penalty of 1e308
# overflows the arithmetic (and float32 networks) long before it means anything. Money is
# bounded by MONEY, slopes and weights by COEFFICIENT; a float32 reward of MONEY x demand
# still has room to spare.
MONEY = 1e6
COEFFICIENT = 1e3
NonNeg = functools.partial(Meta, ge=0)
Money = functools.partial(Meta, ge=0, le=MONEY)
Weight = functools.partial(Meta, ge=0, le=COEFFICIENT)
SCALE = Meta(gt=0, le=COEFFICIENT, description="learners see reward x this (reports stay raw)")


def per_agent(meta: Meta) -> Any:
    """A per-agent quantity: one number for every agent, or a list of one per agent (the same
    range for each). Tuples, not lists: models are frozen and hashable (the oracles cache them)."""
    return Annotated[float, meta] | tuple[Annotated[float, meta], ...]


class PerAgent:
    """Models whose per-agent fields (declared with `per_agent`) take a scalar or a list."""

    def per_agent(self, name: str, agents: int) -> tuple[float, ...]:
        """Field `name` for each of `agents` agents."""
        value = getattr(self, name)
        return tuple(value) if isinstance(value, tuple) else (float(value),) * agents

    def is_symmetric(self) -> bool:
        return not any(isinstance(getattr(self, f.name), tuple) and len(set(getattr(self, f.name))) > 1
                       for f in dataclasses.fields(self))  # type: ignore[arg-type]

    def length_problems(self, agents: int) -> list[tuple[str, str]]:
        return [(f.name, f"{len(v)} values but agents = {agents}: give one number for every agent "
                         f"or a list of {agents}")
                for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if isinstance(v := getattr(self, f.name), tuple) and len(v) != agents]


@dataclass(frozen=True)
class PricingModel(PerAgent):
    """Bertrand price competition. Linear: D_i = a_i - b_i p_i + g_i sum_{j!=i} p_j; logit:
    Calvano et al. a, b, g and cost are one number for all stores or a list, one per store."""

    demand: Annotated[Literal["linear", "logit"], Meta(description="the demand model")] = "linear"
    a: per_agent(Meta(ge=-MONEY, le=MONEY,
                      description="demand intercept (linear) or quality a_i (logit)")) = 100.0
    b: per_agent(Meta(gt=0, le=COEFFICIENT, description="own-price slope (linear)")) = 2.0
    g: per_agent(Weight(description="cross-price slope (linear)")) = 0.5
    cost: per_agent(Money(description="marginal cost c")) = 0.0
    # exp((a - p) / mu) must stay a float64: (a - p) / mu within ~700 over the price range.
    mu: Annotated[float, Meta(ge=1e-2, le=COEFFICIENT, description="logit horizontal differentiation")] = 0.25
    a0: Annotated[float, Meta(ge=-MONEY, le=MONEY, description="logit outside-good quality")] = 0.0
    price_min: Annotated[float, Money(description="lowest price a store may set")] = 1.0
    price_max: Annotated[float, Money(description="highest price a store may set")] = 60.0
    action_levels: Annotated[
        int, Meta(ge=2, le=1001, description="price levels offered to discrete-action algorithms")
    ] = 60
    reward_scale: Annotated[float, SCALE] = 0.001

    def problems(self, agents: int) -> list[tuple[str, str]]:
        out = self.length_problems(agents)
        if out:
            return out
        if self.price_min >= self.price_max:
            out.append(("price_min", f"{self.price_min} must be below price_max ({self.price_max})"))
        b, g = self.per_agent("b", agents), self.per_agent("g", agents)
        if self.demand == "linear" and any(bi <= (agents - 1) * gi for bi, gi in zip(b, g, strict=True)):
            i = next(i for i in range(agents) if b[i] <= (agents - 1) * g[i])
            which = "" if not isinstance(self.g, tuple) else f"[{i}]"
            out.append(
                (f"g{which}", f"{g[i]} is too large: need b > (agents-1)*g = {(agents - 1) * g[i]} "
                              "so demand falls with a store's own price overall")
            )
        return out


@dataclass(frozen=True)
class WarehouseModel(PerAgent):
    """Seasonal newsvendor with lost sales: r_i = p min(y,D) - c a - h (y-D)+ - b (D-y)+. The
    costs, base demand, amplitude and phase are one number for all warehouses or a list."""

    price: Annotated[float, Money(description="revenue p per unit sold")] = 10.0
    order_cost: per_agent(Money(description="cost c per unit ordered")) = 5.0
    holding_cost: per_agent(Money(description="cost h per unit left over")) = 1.0
    shortage_cost: per_agent(Money(description="penalty b per unit of lost sales")) = 4.0
    capacity: Annotated[int, Meta(ge=1, le=200, description="storage cap per warehouse")] = 45
    max_order: Annotated[int, Meta(ge=1, le=200, description="largest order per period")] = 45
    # Demand is drawn by inverse CDF over 0..~(mean + 10 sd) per agent and copy each step: a
    # mean far beyond any storage cap means nothing and costs memory in proportion.
    base_demand: per_agent(Meta(ge=0, le=1_000, description="mean demand level")) = 10.0
    amplitude: per_agent(Meta(ge=0, le=1_000, description="seasonal swing of mean demand")) = 5.0
    season_length: Annotated[int, Meta(ge=1, le=365, description="periods in one season")] = 12
    # None: the warehouses' seasons spread evenly, i / agents (a value would need the agent count).
    phase: per_agent(Meta(ge=0, lt=1, description="season offset as a share of the season; "
                                                  "default i / agents")) | None = None
    lead_time: Annotated[int, Meta(ge=0, le=2, description="periods before an order arrives")] = 0
    truck_capacity: Annotated[
        int, Meta(ge=0, le=64 * 200, description="shared truck: total orders per period (0 = no limit)")
    ] = 0
    initial_inventory_max: Annotated[int, NonNeg(description="start stock drawn uniformly from 0..this")] = 10
    demand_history: Annotated[int, Meta(ge=0, le=12, description="past demands each warehouse sees")] = 2
    action_levels: Annotated[
        int, Meta(ge=2, le=201, description="order sizes offered to discrete-action algorithms")
    ] = 31
    reward_scale: Annotated[float, SCALE] = 0.02

    def dp_cells(self, agents: int = 1) -> int:
        """Table cells the exact oracle needs for `agents` warehouses (each solves its own DP)."""
        return agents * dp_table_cells(self.season_length, self.capacity, self.max_order, self.lead_time)

    def phases(self, agents: int) -> tuple[float, ...]:
        return tuple(i / agents for i in range(agents)) if self.phase is None else self.per_agent("phase", agents)

    def problems(self, agents: int) -> list[tuple[str, str]]:
        out = self.length_problems(agents)
        if out:
            return out
        base, amp = self.per_agent("base_demand", agents), self.per_agent("amplitude", agents)
        for i in range(agents):
            if amp[i] > base[i]:
                which = f"[{i}]" if isinstance(self.amplitude, tuple) else ""
                out.append((f"amplitude{which}", f"{amp[i]} exceeds base_demand {base[i]}: "
                                                 "mean demand would go negative"))
                break
        costs = ("order_cost", "holding_cost", "shortage_cost")
        if self.truck_capacity > 0 and any(isinstance(getattr(self, k), tuple) for k in costs):
            name = next(k for k in costs if isinstance(getattr(self, k), tuple))
            out.append((name, "a shared truck needs the same costs at every warehouse (its oracle "
                              "rations by one price): give one number"))
        if self.max_order > self.capacity:
            out.append(("max_order", f"{self.max_order} exceeds capacity {self.capacity}"))
        if self.initial_inventory_max > self.capacity:
            out.append(("initial_inventory_max", f"{self.initial_inventory_max} exceeds capacity "
                                                 f"{self.capacity}"))
        cells = self.dp_cells(agents)
        if cells > DP_CELL_LIMIT:
            out.append(("capacity", dp_size_problem(cells)))
        return out


@dataclass(frozen=True)
class FulfillmentModel(PerAgent):
    """One order per step; cost_i = w_d dist + w_l load + w_i / inv; infeasible if inv=0 or full.
    The three weights are one number for all stores or a list, one per store."""

    positions: Annotated[
        list[list[float]], Meta(description="store coordinates [x, y] in km, one per agent")
    ] = field(default_factory=list)
    area: Annotated[float, Meta(gt=0, le=MONEY, description="side of the square orders come from (km)")] = 10.0
    distance_weight: per_agent(Money(description="cost per km")) = 1.0
    load_weight: per_agent(Money(description="cost per unit of current load")) = 0.5
    inventory_weight: per_agent(Money(description="cost numerator over stock")) = 2.0
    max_inventory: Annotated[int, Meta(ge=1, le=100, description="stock drawn from 0..this")] = 5
    max_load: Annotated[
        int, Meta(ge=1, le=100, description="load drawn from 0..this; at this a store is full")
    ] = 4
    reward: Annotated[
        Literal["resolved", "strict"],
        Meta(description="'resolved': cheapest accepter serves; 'strict': exactly one must accept"),
    ] = "resolved"
    observation: Annotated[
        Literal["ranked", "own"],
        Meta(description="'ranked': own features + cost rank + best rival cost; 'own': own features only"),
    ] = "ranked"
    redundant_penalty: Annotated[float, Money(description="cost per extra accepter")] = 1.0
    miss_penalty: Annotated[float, Money(description="cost when the order is not served")] = 20.0
    reward_scale: Annotated[float, SCALE] = 0.1

    def problems(self, agents: int) -> list[tuple[str, str]]:
        out = self.length_problems(agents)
        if len(self.positions) != agents:
            out.append(("positions", f"{len(self.positions)} entries but agents = {agents}: "
                                     "give one [x, y] per store"))
        for k, p in enumerate(self.positions):
            if len(p) != 2 or not all(0 <= v <= self.area for v in p):
                out.append((f"positions[{k}]", f"{p} must be [x, y] inside 0..{self.area}"))
                break
        return out


# --------------------------------------------------------------------------- external environments

# A Python dotted name, for PettingZoo's "module:factory" and VMAS's scenario names.
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"


@dataclass(frozen=True)
class ExternalModel:
    """An environment marl-tui did not write: `target` names it (the file's top-level ``env`` or
    ``scenario`` key), `kwargs` is the file's [model] table, passed as keyword arguments to its
    factory. It has no oracle: nothing here knows the best answer."""

    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def problems(self, agents: int) -> list[tuple[str, str]]:
        return []  # checked against the environment itself when it is built (envs/external/)


@dataclass(frozen=True)
class PettingZooTarget:
    """The top-level key of a ``kind = "pettingzoo"`` file."""

    env: Annotated[str, Meta(pattern=rf"^{_DOTTED}:{_DOTTED}\Z", description=(
        "a ParallelEnv factory as 'module:function', e.g. 'mpe2.simple_spread_v3:parallel_env'"))]


@dataclass(frozen=True)
class VmasTarget:
    """The top-level key of a ``kind = "vmas"`` file."""

    scenario: Annotated[str, Meta(pattern=rf"^{_DOTTED}\Z", description=(
        "a VMAS scenario name, e.g. 'navigation' (vmas.scenarios lists them)"))]


# Kinds whose environment comes from another package: the schema of their one top-level key.
EXTERNAL_TARGETS: dict[str, type[PettingZooTarget | VmasTarget]] = {
    "pettingzoo": PettingZooTarget,
    "vmas": VmasTarget,
}

# Hyperparameters for every external env, under a file's own [train.ALGO] tables (measured on
# MPE simple_spread: README "Your own environment"). QMIX's generic gamma 0.99 and lr 1e-3 let
# Q_total run away there (team return -102 at 100k steps, TD loss rising 30x); with lr 5e-4,
# gamma 0.95 reaches -58 and 0.9 -53. Budgets: the 200k env steps EPyMARL's comparison uses.
EXTERNAL_TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "qmix": {"steps": 200_000, "gamma": 0.9, "lr": 5e-4},
    "mappo": {"steps": 200_000},
    "maddpg": {"steps": 200_000},
}

# Parallel copies of an external env when a shorthand names it (a file says its own): see
# README "Your own environment" for the measurement behind it.
EXTERNAL_COPIES = 32

Model = PricingModel | WarehouseModel | FulfillmentModel | ExternalModel
MODELS: dict[str, type[Model]] = {
    "pricing": PricingModel,
    "warehouse": WarehouseModel,
    "fulfillment": FulfillmentModel,
    **dict.fromkeys(EXTERNAL_TARGETS, ExternalModel),
}
KINDS = tuple(MODELS)


def has_oracle(kind: str) -> bool:
    """Whether the kind's environment comes with an exact reference answer."""
    return kind not in EXTERNAL_TARGETS


@dataclass(frozen=True)
class ScenarioHeader:
    """The top of a scenario file: what the scenario is."""

    # A run directory is named NAME-ALGO-sSEED-STAMP: 100 leaves room under a file system's
    # 255-byte limit on one name.
    name: Annotated[str, Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z", max_length=100,
        description="use letters, digits, '.', '_' and '-' only, at most 100 (it names run directories)",
    )]
    kind: Annotated[str, Meta(description="the scenario's kind: " + ", ".join(KINDS))]
    description: Annotated[str, Meta(max_length=1000, description="one line shown in lists")]
    agents: Annotated[int, Meta(ge=1, le=64, description="agents: stores or warehouses")]
    episode_length: Annotated[int, Meta(ge=1, le=100_000, description="steps per episode")]
    parallel_envs: Annotated[int, COPIES]
    seed: Annotated[int, SEED]


@dataclass(frozen=True)
class Scenario(ScenarioHeader):
    """A validated scenario file."""

    model: Model
    train: dict[str, dict[str, Any]]  # [train.ALGO] tables, checked by algos/registry.py
    source: str  # where it came from: a bundled name or a path
    text: str  # the file as written, copied into run directories

    def with_overrides(self, **changes: Any) -> Scenario:
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------- checking


def did_you_mean(word: str, allowed: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest allowed word, else ''."""
    close = difflib.get_close_matches(word, list(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _one_of(choices: Iterable[Any]) -> str:
    *rest, last = [str(c) for c in choices]
    return f"{', '.join(rest)} or {last}" if rest else last


def _number(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _unwrap(tp: Any) -> tuple[Any, Meta | None]:
    """(the plain type, its Meta) from Annotated[X, Meta(...)], X | None and the like; a
    per-agent X | tuple[X, ...] reads as X (its items have X's range)."""
    meta = None
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp, *extras = typing.get_args(tp)
            meta = next((e for e in extras if isinstance(e, Meta)), meta)
        elif origin in (Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        else:
            return tp, meta


_TYPE_WORDS = {"float": "a number", "int": "an integer", "str": "a string", "bool": "true or false",
               "array": "a list", "object": "a table", "null": "nothing"}


@dataclass(frozen=True)
class _Problem:
    """One msgspec ValidationError taken apart: what went wrong, at which field, with which value."""

    kind: Literal["missing", "range", "length", "choice", "pattern", "type"]
    path: str  # the field, with list indexes: "cost", "positions[1][0]"
    value: Any
    expected: str  # what the value should have been, in words
    meta: Meta | None
    choices: tuple[Any, ...]

    @classmethod
    def of(cls, exc: msgspec.ValidationError, hints: Mapping[str, Any], data: Mapping[str, Any]) -> _Problem:
        """`hints`: the annotated types of the fields of `data`, which msgspec refused."""
        what, _, at = str(exc).partition(" - at `$")
        missing = re.fullmatch(r"Object missing required field `(\w+)`", what)
        # No path: the error is about the one value given (check_flag).
        steps = [name or int(index) for name, index in re.findall(r"\.(\w+)|\[(\d+)\]", at)] or [*data][:1]
        value: Any = data
        for step in steps:
            value = value[step]
        if missing:
            steps, value = [missing[1]], None
        base, meta = _unwrap(hints[steps[0]])
        choices = typing.get_args(base) if typing.get_origin(base) is Literal else ()
        expected = re.match(r"Expected `(\w+)", what)
        if missing:
            kind = "missing"
        elif what.startswith("Invalid enum value"):
            kind = "choice"
        elif "matching regex" in what:
            kind = "pattern"
        elif re.match(r"Expected `[\w |]+` [<>]", what):
            kind = "range"
        elif re.match(r"Expected `[\w |]+` of length", what):
            kind = "length"
        else:
            kind = "type"
        path = str(steps[0]) + "".join(f"[{s}]" for s in steps[1:])
        return cls(kind, path, value, _TYPE_WORDS.get(expected[1], expected[1]) if expected else "",
                   meta, choices)

    @property
    def help(self) -> str:
        return f" ({self.meta.description})" if self.meta is not None and self.meta.description else ""

    @property
    def bounds(self) -> str:
        m = self.meta
        assert m is not None  # a range error comes from a Meta
        parts = [f"{op} {_number(v)}" for op, v in ((">=", m.ge), (">", m.gt), ("<=", m.le), ("<", m.lt))
                 if v is not None]
        return " and ".join(parts)

    @property
    def max_length(self) -> int | None:
        return None if self.meta is None else self.meta.max_length

    def flag_line(self, flag: str) -> str:
        """The error for a command-line option."""
        said = f"{flag} {_shown(self.value)}"
        if self.kind == "choice":
            return f"{said}: choose {_one_of(self.choices)}{did_you_mean(str(self.value), self.choices)}"
        if self.kind == "range":
            return f"{said}: must be {self.bounds}{self.help}"
        if self.kind == "length":
            return f"{said}: too long: at most {self.max_length} characters{self.help}"
        return f"{said}: expected {self.expected}{self.help}"

    def line(self, where: str) -> str:
        """The error for a field of table `where` ("" at the top of a file)."""
        name = _key(where, self.path)
        if self.kind == "missing":
            return f"missing key {name}: add it to the file"
        said = f"{name} = {_shown(self.value)}"
        if self.kind == "range":
            return f"{said} is out of range: must be {self.bounds}{self.help}"
        if self.kind == "length":
            return f"{name} is too long ({len(self.value):,} characters): at most {self.max_length}{self.help}"
        if self.kind == "choice":
            allowed = " or ".join(repr(c) for c in self.choices)
            return f"{said} is not allowed: must be {allowed}{did_you_mean(str(self.value), self.choices)}"
        if self.kind == "pattern":
            assert self.meta is not None  # a pattern comes from a Meta, whose description says what it allows
            return f"{said} is not allowed: {self.meta.description}"
        return f"{said} has the wrong type: expected {self.expected}{self.help}"


def _shown(value: Any, limit: int = 60) -> str:
    """A value as an error line quotes it: repr (control characters escaped), cut to `limit`."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…"


def _key(where: str, path: str) -> str:
    """How errors name a key: 'seed' at the top of a file, model.cost inside [model]."""
    return f"{where}.{path}" if where else f"'{path}'"


def _refuse_unknown(table: Mapping[str, Any], allowed: list[str], where: str, origin: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:  # checked before "missing": a misspelt key is the likelier cause of both
        scope = "allowed keys are" if where else "top-level keys are"
        raise UserError(f"{origin}: unknown key {_key(where, unknown[0])}{did_you_mean(unknown[0], allowed)}; "
                        f"{scope}: {', '.join(allowed)}")


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return all(map(_finite, value)) if isinstance(value, list) else True


def check_table(schema: type[T], table: Any, where: str, origin: str) -> T:
    """Check one TOML table against a dataclass: unknown keys, then (msgspec) types, ranges, missing keys.

    `where` names the table in errors ("model", "train.mappo"; "" for the top of a file),
    `origin` the file."""
    if not isinstance(table, dict):
        raise UserError(f"{origin}: [{where}] must be a table of key = value lines")
    _refuse_unknown(table, [f.name for f in dataclasses.fields(schema) if f.init], where, origin)
    for key, value in table.items():  # TOML allows nan and inf; no field means either
        if not _finite(value):
            raise UserError(f"{origin}: {_key(where, key)} = {_shown(value)} has the wrong type: "
                            "expected a finite number")
    try:
        return msgspec.convert(table, schema)
    except msgspec.ValidationError as exc:
        problem = _Problem.of(exc, typing.get_type_hints(schema, include_extras=True), table)
    raise UserError(f"{origin}: {problem.line(where)}")


@functools.cache
def with_ranges(cls: type, ranges: tuple[tuple[str, Meta], ...]) -> type:
    """A twin of dataclass `cls` whose fields carry the ranges given by field name, for check_table
    (the algorithms' hyperparameter classes stay plain; their ranges live in one table)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    rules = dict(ranges)
    specs = [
        (f.name, Annotated[hints[f.name], rules[f.name]] if f.name in rules else hints[f.name],
         field(default=f.default, default_factory=f.default_factory))
        for f in dataclasses.fields(cls) if f.init
    ]
    return dataclasses.make_dataclass(cls.__name__, specs, frozen=True)


def parse_scenario(text: str, origin: str) -> Scenario:
    """Parse and validate scenario TOML text; `origin` names the file in errors."""
    try:
        return _parse_scenario(text, origin)
    except RecursionError:  # tomllib and the checks recurse once per level of nesting
        raise UserError(f"{origin}: arrays or tables nested too deeply to be a scenario; a scenario "
                        "nests at most three levels ([train.ALGO], positions = [[x, y], ...])") from None


def _parse_scenario(text: str, origin: str) -> Scenario:
    try:
        data = tomllib.loads(text.removeprefix("\ufeff"))  # a BOM some editors write: not content
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{origin}: not valid TOML ({exc}); fix the syntax at that line") from None
    header_keys = [f.name for f in dataclasses.fields(ScenarioHeader)]
    kind = data.get("kind")  # checked below: here only whether it names an external kind
    target_schema = EXTERNAL_TARGETS.get(kind) if isinstance(kind, str) else None
    target_keys = [f.name for f in dataclasses.fields(target_schema)] if target_schema else []
    _refuse_unknown(data, [*header_keys, *target_keys, "model", "train"], "", origin)
    header = check_table(ScenarioHeader, {k: v for k, v in data.items() if k in header_keys}, "", origin)
    if header.kind not in MODELS:
        raise UserError(f"{origin}: unknown kind {header.kind!r}{did_you_mean(header.kind, KINDS)}; "
                        f"kinds are: {', '.join(KINDS)}")
    model: Model
    if target_schema is not None:
        target = check_table(target_schema, {k: data.get(k) for k in target_keys if k in data}, "", origin)
        model = ExternalModel(getattr(target, target_keys[0]), _keyword_table(data.get("model", {}), origin))
    else:
        model = check_table(MODELS[header.kind], data.get("model", {}), "model", origin)
    for fname, problem in model.problems(header.agents):
        raise UserError(f"{origin}: model.{fname}: {problem}")
    train = data.get("train", {})
    if not isinstance(train, dict):
        raise UserError(f"{origin}: [train] must hold tables such as [train.mappo]")
    for algo, table in train.items():
        if algo not in ALGOS:
            raise UserError(f"{origin}: unknown table [train.{algo}]{did_you_mean(algo, ALGOS)}; "
                            f"algorithms are: {', '.join(ALGOS)}")
        if not isinstance(table, dict):
            raise UserError(f"{origin}: [train.{algo}] must be a table of key = value lines")
    if target_schema is not None:
        train = {algo: {**EXTERNAL_TRAIN_DEFAULTS.get(algo, {}), **train.get(algo, {})}
                 for algo in dict.fromkeys([*EXTERNAL_TRAIN_DEFAULTS, *train])}
    fields = {k: getattr(header, k) for k in header_keys}
    # Shown in lists, the app and `info`: escape sequences in it would drive the terminal.
    fields["description"] = printable(header.description)
    return Scenario(**fields, model=model, train=train, source=origin, text=text)


def _keyword_table(table: Any, origin: str) -> dict[str, Any]:
    """An external env's [model] table: any keyword arguments, but finite numbers only."""
    if not isinstance(table, dict):
        raise UserError(f"{origin}: [model] must be a table of key = value lines")
    for key, value in table.items():
        if not _finite(value):
            raise UserError(f"{origin}: {_key('model', key)} = {_shown(value)} has the wrong type: "
                            "expected a finite number")
    return dict(table)


# --------------------------------------------------------------------------- finding files


def bundled_dir() -> Path:
    """Scenario files shipped with the package (wheel) or beside it (a checkout)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "scenarios", here.parent / "scenarios"):
        if candidate.is_dir():
            return candidate
    raise UserError("the bundled scenarios folder is missing: reinstall marl-tui")


def bundled_names() -> list[str]:
    return sorted(p.stem for p in bundled_dir().glob("*.toml"))


def local_scenario_files() -> list[Path]:
    """User scenario files in ./scenarios that are not the bundled ones."""
    local = Path.cwd() / "scenarios"
    if not local.is_dir() or local.resolve() == bundled_dir().resolve():
        return []
    return sorted(local.glob("*.toml"))


def scenario_choices() -> list[str]:
    """What a scenario argument accepts by name: the bundled names and ./scenarios/*.toml paths."""
    return [*bundled_names(), *(str(p.relative_to(Path.cwd())) for p in local_scenario_files())]


# A scenario file is a few kilobytes; reading more than this is reading the wrong file.
MAX_SCENARIO_BYTES = 1 << 20


def read_scenario_text(path: Path, shown: str) -> str:
    """The text of a scenario file, or a UserError saying what `path` is instead: missing, a
    folder, a FIFO or device (never opened: reading one would block or never end), too large,
    unreadable, or not UTF-8. `shown` is how the user wrote it."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UserError(f"scenario file {shown} does not exist"
                        f"{did_you_mean(path.stem, scenario_choices())}: check the path") from None
    except OSError as exc:  # a name beyond the file system's limit, a loop of links, no access
        raise UserError(f"scenario file {shown}: cannot use this path ({exc.strerror}); check it") from None
    if stat.S_ISDIR(info.st_mode):
        raise UserError(f"scenario file {shown} is a folder, not a file; give a .toml file inside it "
                        "(or a bundled scenario name)")
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"scenario file {shown} is not a regular file (a pipe, socket or device); "
                        "save the scenario to a .toml file and give that")
    if info.st_size > MAX_SCENARIO_BYTES:
        raise UserError(f"scenario file {shown} holds {info.st_size:,} bytes; a scenario is a few "
                        f"kilobytes (limit {MAX_SCENARIO_BYTES:,}): check that it is the right file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"scenario file {shown}: cannot read it ({exc.strerror}); check its permissions") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"scenario file {shown}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def is_external_shorthand(text: str) -> bool:
    """``pettingzoo:...`` or ``vmas:...``: an external env named on the command line, which
    envs/external/shorthand.py turns into a scenario (it builds the env to read it)."""
    kind, sep, _ = text.partition(":")
    return bool(sep) and kind in EXTERNAL_TARGETS


def load_scenario(name_or_path: str) -> Scenario:
    """A bundled name (``pricing``) or a path to a .toml file (catalogue.find_scenario also
    takes an external env's shorthand)."""
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.parent != Path("."):
        return parse_scenario(read_scenario_text(path, name_or_path), str(path))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name_or_path):
        raise UserError(f"no scenario named {_shown(name_or_path)}: a bundled scenario's name is "
                        f"one of: {', '.join(bundled_names())} (or give a path to a .toml file)")
    bundled = bundled_dir() / f"{name_or_path}.toml"
    if not bundled.is_file():
        raise UserError(
            f"no scenario named {name_or_path!r}{did_you_mean(name_or_path, scenario_choices())}; "
            f"bundled scenarios are: {', '.join(bundled_names())} (or give a path to a .toml file)"
        )
    return parse_scenario(bundled.read_text(encoding="utf-8"), f"scenarios/{bundled.name}")


# The pricing target is a band around Nash profit, not a floor: |profit - pi_N| <= this % of
# pi_N (the profit_vs_nash KPI). Above it is collusion (the collusion index says how much),
# below it undercutting.
NASH_BAND_PCT = 2.0

# The one figure an external env reports per step: nothing knows its best answer.
EXTERNAL_KPI = "team_reward_per_step"

# The one KPI a progress line or status bar shows first, per kind.
HEADLINE_KPI = {
    "pricing": "mean_profit",  # a mean price can sit on the oracle's while every store is off it
    "warehouse": "pct_of_optimal",
    "fulfillment": "optimal_choice_rate",
    **dict.fromkeys(EXTERNAL_TARGETS, EXTERNAL_KPI),
}
