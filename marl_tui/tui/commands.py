"""Ctrl+P: the dashboard's actions by name in Textual's command palette.

Only what the current state allows is offered (no "step" while running), the same rule the
footer follows.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

# (action, title, help)
ACTIONS = [
    ("pause", "Pause training", "stop after the current step (space)"),
    ("resume", "Resume training", "continue at the chosen speed (space)"),
    ("step", "Step once", "one batched environment step while paused (n)"),
    ("faster", "Faster", "raise the speed limit (+)"),
    ("slower", "Slower", "lower the speed limit (-)"),
    ("teach", "Teaching pace", "one step a second (t)"),
    ("episode_pause", "Hold at each episode's end", "on/off (o)"),
    ("report", "Write a report", "report.md with the KPIs against the oracle and the charts (x)"),
    ("greedy", "Greedy evaluation view", "watch the policy without exploration, no learning (e)"),
    ("learn", "Back to training", "leave the greedy evaluation view (e)"),
    ("restart", "Restart run", "same settings, fresh networks, new run directory (r)"),
    ("save", "Save checkpoint", "write a checkpoint into the run directory (s)"),
    ("picker", "Back to the scenario picker", "stops this run (p)"),
    ("glossary", "Glossary", "what the numbers on the focused panel mean (g)"),
    ("whatif", "What if…", "while paused: change one agent's action in this step and see what follows (w)"),
    ("help", "Help", "keys and panels (?)"),
]


class RunCommands(Provider):
    """Offers the screen's enabled actions; works for any screen with these action_ methods."""

    def _commands(self) -> list[tuple[str, str, Any]]:
        screen = self.screen
        out = []
        for action, title, help_text in ACTIONS:
            method = getattr(screen, f"action_{action}", None)
            if method is None or screen.check_action(action, ()) is not True:
                continue
            out.append((title, help_text, partial(screen.run_action, action)))
        return out

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
