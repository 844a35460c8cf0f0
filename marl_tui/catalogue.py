"""What `marl-tui scenarios` and `marl-tui info` print: each scenario and its reference answer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from marl_tui.config import Scenario, bundled_names, load_scenario, local_scenario_files
from marl_tui.errors import UserError


def scenario_info(name_or_path: str | Scenario) -> dict[str, Any]:
    """Plain data about one scenario, its spaces and its oracle (builds a one-copy env)."""
    from marl_tui.algos.registry import resolve_hparams
    from marl_tui.envs.base import make_env

    sc = name_or_path if isinstance(name_or_path, Scenario) else load_scenario(name_or_path)
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
        "oracle": oracle.values,
        "oracle_summary": oracle.summary,
        "oracle_kpis": oracle.kpis,
    }


def scenario_info_text(d: dict[str, Any]) -> str:
    lines = [
        f"{d['name']} ({d['kind']}) — {d['description']}",
        f"  file:        {d['source']}",
        f"  agents:      {d['n_agents']} ({', '.join(d['agents'])})",
        f"  actions:     {d['action_space']} per agent; {d['discrete_actions']} levels for "
        "discrete-action algorithms",
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
            d = scenario_info(source)
        except UserError as exc:
            rows.append((Path(source).name, "—", "—", "—", "not loaded", f"✗ {exc}"))
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
    for col in header:
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*r)
    console = Console()
    with console.capture() as cap:
        console.print(table)
    return cap.get().rstrip()
