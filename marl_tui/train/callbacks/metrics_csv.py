"""metrics.csv: one row per finished training episode."""

from __future__ import annotations

from marl_tui.train.loop import EpisodeEnd
from marl_tui.train.run import Callback, Run


def episode_row(run: Run, ended: EpisodeEnd) -> dict[str, float]:
    """One finished episode's row: the last update's metrics, the KPIs, the returns, counters."""
    # The loop's own columns come last so no algorithm metric can overwrite them.
    row = {**run.metrics, **ended.kpis, "env_steps": ended.env_steps, "episodes": ended.episodes,
           "updates": run.updates, "team_return": ended.team_return}
    row.update({f"return_{i + 1}": a for i, a in enumerate(ended.agent_returns)})
    return row


class MetricsCsv(Callback):
    def on_episode_end(self, run: Run, ended: EpisodeEnd) -> None:
        row = episode_row(run, ended)
        if run.updates:
            keys: list[str] | None = list(run.metrics)
        else:  # a baseline never updates: its columns are known now
            keys = None if run.learns else []
        run.metrics_writer.add(row, keys)

    def on_end(self, run: Run) -> None:
        # A stopped run keeps rows that wait for the header in its checkpoint: writing them now
        # with a guessed header would make a resumed metrics.csv differ.
        run.metrics_writer.flush(final=run.status != "stopped")
