"""`pettingzoo:MODULE[:FACTORY]` and `vmas:SCENARIO` on the command line, as scenarios.

The env is built once to read its agents and horizon; the scenario's text is a complete
scenario file (what a run directory keeps), so a resumed run never needs the shorthand again.
"""

from __future__ import annotations

import dataclasses
import re

import tomli_w

from marl_tui.config import EXTERNAL_COPIES, EXTERNAL_TARGETS, Scenario, check_table, parse_scenario
from marl_tui.errors import UserError

# The shorthand's default factory: PettingZoo's own name for a module's parallel env.
DEFAULT_FACTORY = "parallel_env"
# Set where the shorthand names a VMAS scenario: VMAS's discrete actions, so every algorithm
# (QMIX included) runs on it; its continuous forces need a scenario file (README "Your own
# environment").
VMAS_SHORTHAND_MODEL = {"continuous_actions": False}


def external_shorthand(text: str) -> Scenario:
    """The scenario `text` names (config.is_external_shorthand(text) holds): EXTERNAL_COPIES
    copies, seed 0, agents and horizon as the env says."""
    kind, _, target = text.partition(":")
    if kind == "pettingzoo" and ":" not in target:
        target = f"{target}:{DEFAULT_FACTORY}"
    key = next(f.name for f in dataclasses.fields(EXTERNAL_TARGETS[kind]))
    check_table(EXTERNAL_TARGETS[kind], {key: target}, "", text)
    model = VMAS_SHORTHAND_MODEL if kind == "vmas" else {}
    if kind == "vmas":
        from marl_tui.envs.external.vmas import DEFAULT_EPISODE_LENGTH
        from marl_tui.envs.external.vmas import probe as probe_vmas

        agents, horizon = probe_vmas(target, model, text)
        horizon = horizon or DEFAULT_EPISODE_LENGTH
    else:
        from marl_tui.envs.external.pettingzoo import probe as probe_pettingzoo

        agents, horizon = probe_pettingzoo(target, model, text)
        if not horizon:
            raise UserError(f"{text}: the env does not say its episode length (max_cycles): write a scenario "
                            "file with episode_length (README: Your own environment)")
    name = re.sub(r"[^A-Za-z0-9._-]", "-", target.split(":")[0].rsplit(".", 1)[-1])
    toml = tomli_w.dumps({
        "name": name, "kind": kind, key: target,
        "description": f"{kind} {target}, from the command-line shorthand {text}",
        "agents": agents, "episode_length": int(horizon), "parallel_envs": EXTERNAL_COPIES, "seed": 0,
        "model": model,
    })
    return parse_scenario(toml, text)
