"""Scenario files: typed models, loading, and one-line errors a person can act on.

A scenario file is TOML. Its top level says what the scenario is (name, kind,
agents, episode length, parallel copies, seed); ``[model]`` holds every number
the environment uses, checked against the dataclass of its kind; ``[train.ALGO]``
tables override an algorithm's hyperparameters for this scenario.

Nothing here imports torch, so ``marl-tui --help`` and ``marl-tui scenarios``
stay fast.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from marl_tui.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

KINDS = ("pricing", "warehouse", "fulfillment")
ALGOS = ("maddpg", "mappo", "qmix", "random", "oracle")


def rule(
    help: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
    hi_open: bool = False,
) -> dict[str, Any]:
    """Field metadata: a range check and the help text shown in errors."""
    return {"help": help, "lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open}


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class PricingModel:
    """Bertrand price competition. Linear: D_i = a - b p_i + g sum_j p_j; logit: Calvano et al."""

    demand: Literal["linear", "logit"] = field(
        default="linear", metadata=rule("demand model: 'linear' or 'logit'")
    )
    a: float = field(default=100.0, metadata=rule("demand intercept (linear) or quality a_i (logit)"))
    b: float = field(default=2.0, metadata=rule("own-price slope (linear)", lo=0, lo_open=True))
    g: float = field(default=0.5, metadata=rule("cross-price slope (linear)", lo=0))
    cost: float = field(default=0.0, metadata=rule("marginal cost c", lo=0))
    mu: float = field(default=0.25, metadata=rule("logit horizontal differentiation", lo=0, lo_open=True))
    a0: float = field(default=0.0, metadata=rule("logit outside-good quality"))
    price_min: float = field(default=1.0, metadata=rule("lowest price a store may set", lo=0))
    price_max: float = field(default=60.0, metadata=rule("highest price a store may set", lo=0))
    action_levels: int = field(
        default=60, metadata=rule("price levels offered to discrete-action algorithms", lo=2, hi=1001)
    )
    reward_scale: float = field(
        default=0.001, metadata=rule("learners see reward x this (reports stay raw)", lo=0, lo_open=True)
    )

    def problems(self, agents: int) -> list[tuple[str, str]]:
        out = []
        if self.price_min >= self.price_max:
            out.append(("price_min", f"{self.price_min} must be below price_max ({self.price_max})"))
        if self.demand == "linear" and self.b <= (agents - 1) * self.g:
            out.append(
                ("g", f"{self.g} is too large: need b > (agents-1)*g = {(agents - 1) * self.g} "
                      "so demand falls with a store's own price overall")
            )
        return out


@dataclass(frozen=True)
class WarehouseModel:
    """Seasonal newsvendor with lost sales: r_i = p min(y,D) - c a - h (y-D)+ - b (D-y)+."""

    price: float = field(default=10.0, metadata=rule("revenue p per unit sold", lo=0))
    order_cost: float = field(default=5.0, metadata=rule("cost c per unit ordered", lo=0))
    holding_cost: float = field(default=1.0, metadata=rule("cost h per unit left over", lo=0))
    shortage_cost: float = field(default=4.0, metadata=rule("penalty b per unit of lost sales", lo=0))
    capacity: int = field(default=45, metadata=rule("storage cap per warehouse", lo=1, hi=200))
    max_order: int = field(default=45, metadata=rule("largest order per period", lo=1, hi=200))
    base_demand: float = field(default=10.0, metadata=rule("mean demand level", lo=0))
    amplitude: float = field(default=5.0, metadata=rule("seasonal swing of mean demand", lo=0))
    season_length: int = field(default=12, metadata=rule("periods in one season", lo=1, hi=365))
    lead_time: int = field(default=0, metadata=rule("periods before an order arrives", lo=0, hi=2))
    truck_capacity: int = field(
        default=0, metadata=rule("shared truck: total orders per period (0 = no limit)", lo=0)
    )
    initial_inventory_max: int = field(
        default=10, metadata=rule("start stock drawn uniformly from 0..this", lo=0)
    )
    demand_history: int = field(default=2, metadata=rule("past demands each warehouse sees", lo=0, hi=12))
    action_levels: int = field(
        default=31, metadata=rule("order sizes offered to discrete-action algorithms", lo=2, hi=201)
    )
    reward_scale: float = field(
        default=0.02, metadata=rule("learners see reward x this (reports stay raw)", lo=0, lo_open=True)
    )

    def problems(self, agents: int) -> list[tuple[str, str]]:
        out = []
        if self.amplitude > self.base_demand:
            out.append(("amplitude", f"{self.amplitude} exceeds base_demand {self.base_demand}: "
                                     "mean demand would go negative"))
        if self.max_order > self.capacity:
            out.append(("max_order", f"{self.max_order} exceeds capacity {self.capacity}"))
        if self.initial_inventory_max > self.capacity:
            out.append(("initial_inventory_max", f"{self.initial_inventory_max} exceeds capacity "
                                                 f"{self.capacity}"))
        # The oracle is an exact DP: refuse sizes it cannot hold (numpy only; no torch import).
        from marl_tui.envs.warehouse_oracle import DP_CELL_LIMIT, dp_cells, size_problem

        cells = dp_cells(self, agents)
        if cells > DP_CELL_LIMIT:
            out.append(("capacity", size_problem(cells)))
        return out


@dataclass(frozen=True)
class FulfillmentModel:
    """One order per step; cost_i = w_d dist + w_l load + w_i / inv; infeasible if inv=0 or full."""

    positions: list[list[float]] = field(
        default_factory=list, metadata=rule("store coordinates [x, y] in km, one per agent")
    )
    area: float = field(default=10.0, metadata=rule("side of the square orders come from (km)", lo=0, lo_open=True))
    distance_weight: float = field(default=1.0, metadata=rule("cost per km", lo=0))
    load_weight: float = field(default=0.5, metadata=rule("cost per unit of current load", lo=0))
    inventory_weight: float = field(default=2.0, metadata=rule("cost numerator over stock", lo=0))
    max_inventory: int = field(default=5, metadata=rule("stock drawn from 0..this", lo=1, hi=100))
    max_load: int = field(default=4, metadata=rule("load drawn from 0..this; at this a store is full", lo=1, hi=100))
    reward: Literal["resolved", "strict"] = field(
        default="resolved",
        metadata=rule("'resolved': cheapest accepter serves; 'strict': exactly one must accept"),
    )
    observation: Literal["ranked", "own"] = field(
        default="ranked",
        metadata=rule("'ranked': own features + cost rank + best rival cost; 'own': own features only"),
    )
    redundant_penalty: float = field(default=1.0, metadata=rule("cost per extra accepter", lo=0))
    miss_penalty: float = field(default=20.0, metadata=rule("cost when the order is not served", lo=0))
    reward_scale: float = field(
        default=0.1, metadata=rule("learners see reward x this (reports stay raw)", lo=0, lo_open=True)
    )

    def problems(self, agents: int) -> list[tuple[str, str]]:
        out = []
        if len(self.positions) != agents:
            out.append(("positions", f"{len(self.positions)} entries but agents = {agents}: "
                                     "give one [x, y] per store"))
        for k, p in enumerate(self.positions):
            if len(p) != 2 or not all(0 <= v <= self.area for v in p):
                out.append((f"positions[{k}]", f"{p} must be [x, y] inside 0..{self.area}"))
                break
        return out


MODELS: dict[str, type] = {
    "pricing": PricingModel,
    "warehouse": WarehouseModel,
    "fulfillment": FulfillmentModel,
}


@dataclass(frozen=True)
class Scenario:
    """A validated scenario file."""

    name: str
    kind: str
    description: str
    agents: int
    episode_length: int
    parallel_envs: int
    seed: int
    model: Any  # PricingModel | WarehouseModel | FulfillmentModel
    train: dict[str, dict[str, Any]]
    source: str  # where it came from: a bundled name or a path
    text: str  # the file as written, copied into run directories

    def with_overrides(self, **changes: Any) -> Scenario:
        return dataclasses.replace(self, **changes)


_TOP = {
    "name": (str, None, None),
    "kind": (str, None, None),
    "description": (str, None, None),
    "agents": (int, 1, 64),
    "episode_length": (int, 1, 100_000),
    "parallel_envs": (int, 1, 1_000_000),
    "seed": (int, 0, 2**31 - 1),
}


# --------------------------------------------------------------------------- checking


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list,):
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, str(tp)
    )


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """Return (ok, value converted to tp). ints are accepted where floats are asked."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp), value
    if origin is list:
        if not isinstance(value, list):
            return False, value
        inner = typing.get_args(tp)[0]
        out = []
        for v in value:
            ok, cv = _coerce(v, inner)
            if not ok:
                return False, value
            out.append(cv)
        return True, out
    if origin in (typing.Union, types.UnionType):
        for t in typing.get_args(tp):
            ok, cv = _coerce(value, t)
            if ok:
                return True, cv
        return False, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, value
        return math.isfinite(value), float(value)
    if tp is str:
        return isinstance(value, str), value
    return isinstance(value, tp), value


def _did_you_mean(key: str, allowed: Any) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def build_dataclass(
    cls: type, table: Any, where: str, origin: str, rules: dict[str, dict[str, Any]] | None = None
) -> Any:
    """Check a TOML table against a dataclass: unknown keys, types, ranges.

    Ranges come from each field's metadata, else from `rules` by field name. Used for
    scenario models and for algorithm hyperparameters alike.
    """
    if not isinstance(table, dict):
        raise UserError(f"{origin}: [{where}] must be a table of key = value lines")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise UserError(
            f"{origin}: unknown key {where}.{unknown[0]}{_did_you_mean(unknown[0], fields)}; "
            f"allowed keys are: {', '.join(fields)}"
        )
    values = {}
    for name, value in table.items():
        tp = hints[name]
        ok, cv = _coerce(value, tp)
        if not ok and typing.get_origin(tp) is Literal:
            raise UserError(f"{origin}: {where}.{name} = {value!r} is not allowed: must be {_type_name(tp)}")
        if not ok:
            raise UserError(
                f"{origin}: {where}.{name} = {value!r} has the wrong type: expected {_type_name(tp)}"
            )
        meta = fields[name].metadata or (rules or {}).get(name, {})
        lo, hi = meta.get("lo"), meta.get("hi")
        if isinstance(cv, (int, float)) and not isinstance(cv, bool):
            too_low = lo is not None and (cv <= lo if meta.get("lo_open") else cv < lo)
            too_high = hi is not None and (cv >= hi if meta.get("hi_open") else cv > hi)
            if too_low or too_high:
                bound = []
                if lo is not None:
                    bound.append(f"{'>' if meta.get('lo_open') else '>='} {lo:g}")
                if hi is not None:
                    bound.append(f"{'<' if meta.get('hi_open') else '<='} {hi:g}")
                raise UserError(
                    f"{origin}: {where}.{name} = {value!r} is out of range: must be "
                    f"{' and '.join(bound)} ({meta.get('help', '')})"
                )
        values[name] = cv
    missing = [
        n for n, f in fields.items()
        if n not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise UserError(f"{origin}: missing key {where}.{missing[0]}: add it to the file")
    return cls(**values)


def parse_scenario(text: str, origin: str) -> Scenario:
    """Parse and validate scenario TOML text; `origin` names the file in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{origin}: not valid TOML ({exc}); fix the syntax at that line") from None
    allowed = [*_TOP, "model", "train"]
    unknown = sorted(set(data) - set(allowed))
    if unknown:  # before "missing": a misspelt key is the likelier cause of both
        raise UserError(
            f"{origin}: unknown key '{unknown[0]}'{_did_you_mean(unknown[0], allowed)}; "
            f"top-level keys are: {', '.join(allowed)}"
        )
    top = {}
    for key, (tp, lo, hi) in _TOP.items():
        if key not in data:
            raise UserError(f"{origin}: missing key '{key}' at the top of the file: add it")
        value = data[key]
        ok, value = _coerce(value, tp)
        if not ok:
            raise UserError(f"{origin}: '{key}' = {data[key]!r} must be {_type_name(tp)}")
        if lo is not None and not lo <= value <= hi:
            raise UserError(f"{origin}: '{key}' = {value} is out of range: must be {lo}..{hi}")
        top[key] = value
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", top["name"]):
        raise UserError(
            f"{origin}: 'name' = {top['name']!r}: use letters, digits, '.', '_' and '-' only "
            "(it names run directories)"
        )
    if top["kind"] not in MODELS:
        raise UserError(
            f"{origin}: unknown kind {top['kind']!r}; kinds are: {', '.join(KINDS)}"
        )
    model = build_dataclass(MODELS[top["kind"]], data.get("model", {}), "model", origin)
    for fname, problem in model.problems(top["agents"]):
        raise UserError(f"{origin}: model.{fname}: {problem}")
    train = data.get("train", {})
    if not isinstance(train, dict):
        raise UserError(f"{origin}: [train] must hold tables such as [train.mappo]")
    for algo, table in train.items():
        if algo not in ALGOS:
            raise UserError(f"{origin}: unknown table [train.{algo}]; algorithms are: {', '.join(ALGOS)}")
        if not isinstance(table, dict):
            raise UserError(f"{origin}: [train.{algo}] must be a table of key = value lines")
    return Scenario(**top, model=model, train=train, source=origin, text=text)


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


def load_scenario(name_or_path: str) -> Scenario:
    """A bundled name (``pricing``) or a path to a .toml file."""
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.parent != Path("."):
        if not path.is_file():
            raise UserError(f"scenario file {name_or_path} does not exist: check the path")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{name_or_path}: cannot read it ({exc})") from None
        return parse_scenario(text, str(path))
    bundled = bundled_dir() / f"{name_or_path}.toml"
    if not bundled.is_file():
        raise UserError(
            f"no scenario named {name_or_path!r}; bundled scenarios are: "
            f"{', '.join(bundled_names())} (or give a path to a .toml file)"
        )
    return parse_scenario(bundled.read_text(encoding="utf-8"), f"scenarios/{bundled.name}")


# The one KPI a progress line or status bar shows first, per kind.
HEADLINE_KPI = {
    "pricing": "mean_profit",  # a mean price can sit on the oracle's while every store is off it
    "warehouse": "pct_of_optimal",
    "fulfillment": "optimal_choice_rate",
}
