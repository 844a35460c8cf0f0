"""What `marl-tui scenarios` and `marl-tui info` print: each scenario and its reference answer.

Reference answers take seconds to compute (the warehouse's exact dynamic programme), so each
scenario's information is cached on disk, keyed by the file's exact text and marl-tui's version
(a changed file, or a new marl-tui, computes afresh); a cache that cannot be read or written is
simply not used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from marl_tui import __version__
from marl_tui.config import (
    Scenario,
    bundled_names,
    has_oracle,
    is_external_shorthand,
    load_scenario,
    local_scenario_files,
)
from marl_tui.errors import UserError
from marl_tui.text import printable


def find_scenario(name: str) -> Scenario:
    """What a scenario argument names: a bundled name, a .toml path, or an external env's
    shorthand (pettingzoo:MODULE[:FACTORY], vmas:SCENARIO; builds the env to read it)."""
    if is_external_shorthand(name):
        from marl_tui.envs.external.shorthand import external_shorthand

        return external_shorthand(name)
    return load_scenario(name)


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/marl-tui/scenarios (~/.cache/... by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "marl-tui" / "scenarios"


def cached_scenario_info(source: str | Scenario) -> dict[str, Any]:
    """scenario_info(source), from the cache when this exact file was seen before."""
    sc = source if isinstance(source, Scenario) else find_scenario(source)  # quick; the oracle costs
    key = hashlib.sha256(f"{__version__}\0{sc.source}\0{sc.text}".encode()).hexdigest()[:32]
    path = cache_dir() / f"{key}.json"
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text(encoding="utf-8"))
    info = scenario_info(sc)
    with contextlib.suppress(OSError, TypeError, ValueError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(info), encoding="utf-8")
        tmp.replace(path)
    return info


def scenario_info(name_or_path: str | Scenario) -> dict[str, Any]:
    """Plain data about one scenario, its spaces and its oracle (builds a one-copy env)."""
    from marl_tui.algos.registry import resolve_hparams
    from marl_tui.envs.base import make_env

    sc = name_or_path if isinstance(name_or_path, Scenario) else find_scenario(name_or_path)
    for algo in sc.train:  # [train.ALGO] tables are checked here too, not only when training
        resolve_hparams(algo, sc)
    env = make_env(sc, n_envs=1)
    spec, oracle = env.spec, env.oracle()
    return {
        "name": sc.name,
        "kind": sc.kind,
        "description": sc.description,
        "source": sc.source,
        "n_agents": spec.n_agents,
        "agents": list(spec.agent_names),
        "action_space": spec.action_space.describe(),
        "discrete_actions": len(spec.action_levels) or spec.action_space.n,
        "obs_dim": spec.obs_dim,
        "state_dim": spec.state_dim,
        "episode_length": spec.episode_length,
        "parallel_envs": sc.parallel_envs,
        "seed": sc.seed,
        "has_oracle": has_oracle(sc.kind),  # False: an external env, nothing knows its best answer
        "oracle": oracle.values,
        "oracle_summary": oracle.summary,
        "oracle_kpis": oracle.kpis,
    }


def scenario_info_text(d: dict[str, Any]) -> str:
    lines = [
        f"{d['name']} ({d['kind']}) — {d['description']}",
        f"  file:        {d['source']}",
        f"  agents:      {d['n_agents']} ({', '.join(d['agents'])})",
        f"  actions:     {d['action_space']} per agent"
        + (f"; {d['discrete_actions']} levels for discrete-action algorithms"
           if d["action_space"].startswith("continuous") and d["discrete_actions"] else ""),
        f"  observation: {d['obs_dim']} numbers per agent; global state {d['state_dim']}",
        f"  episodes:    {d['episode_length']} steps, {d['parallel_envs']} parallel copies, "
        f"seed {d['seed']}",
        f"  reference:   {d['oracle_summary']}",
    ]
    return "\n".join(lines)


def scenario_table() -> str:
    """A rich table on a terminal; plain aligned lines, one per scenario, in a pipe or file."""
    header = ("name", "kind", "agents", "actions", "description", "reference answer")
    rows = []
    # Bundled scenarios, then the user's files in ./scenarios: a broken one gets a row saying
    # why, and the others are still listed.
    for source in [*bundled_names(), *(str(p) for p in local_scenario_files())]:
        try:
            d = cached_scenario_info(source)
        except UserError as exc:
            rows.append((printable(Path(source).name), "—", "—", "—", "not loaded", printable(f"✗ {exc}")))
            continue
        rows.append((d["name"], d["kind"], str(d["n_agents"]), d["action_space"], d["description"],
                     d["oracle_summary"]))
    if not sys.stdout.isatty():
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1]
            for r in [header, *rows]
        )
    from rich.console import Console
    from rich.table import Table

    table = Table(title="marl-tui scenarios", title_justify="left")
    for col in header:  # names are what people copy: never wrapped
        table.add_column(col, overflow="fold", no_wrap=col == "name")
    for r in rows:
        table.add_row(*r)
    console = Console()
    with console.capture() as cap:
        console.print(table)
    return cap.get().rstrip()
