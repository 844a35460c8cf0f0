"""metrics.csv (and TensorBoard, when installed): one row per finished training episode."""

from __future__ import annotations

from marl_tui.train.loop import EpisodeEnd
from marl_tui.train.run import Callback, Run


class MetricsCsv(Callback):
    def on_episode_end(self, run: Run, ended: EpisodeEnd) -> None:
        # The loop's own columns come last so no algorithm metric can overwrite them.
        row = {**run.metrics, **ended.kpis, "env_steps": ended.env_steps, "episodes": ended.episodes,
               "updates": run.updates, "team_return": ended.team_return}
        row.update({f"return_{i + 1}": a for i, a in enumerate(ended.agent_returns)})
        if run.updates:
            keys: list[str] | None = list(run.metrics)
        else:  # a baseline never updates: its columns are known now
            keys = None if run.learns else []
        run.metrics_writer.add(row, keys)

    def on_end(self, run: Run) -> None:
        # A stopped run keeps rows that wait for the header in its checkpoint: writing them now
        # with a guessed header would make a resumed metrics.csv differ.
        run.metrics_writer.flush(final=run.status != "stopped")
        if run.status == "stopped":
            run.metrics_writer.close()
