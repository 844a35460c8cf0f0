"""A recorded run opened for replay: its stream and its scenario, checked before the app starts
(a bad run directory is one line and exit 2, never a screen that fails)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from marl_tui.config import Scenario, parse_scenario
from marl_tui.errors import UserError
from marl_tui.stream.sources import ReplaySource


@dataclass(frozen=True)
class Recording:
    source: ReplaySource
    scenario: Scenario  # the run's own scenario file (the panels draw with its numbers)


def open_recording(run_dir: Path) -> Recording:
    source = ReplaySource(run_dir)
    scenario_file = run_dir / "scenario.toml"
    try:
        text = scenario_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{scenario_file}: cannot read the run's scenario ({exc}); replay needs it to "
                        "draw the panels: copy the whole run directory") from None
    return Recording(source, parse_scenario(text, str(scenario_file)))
