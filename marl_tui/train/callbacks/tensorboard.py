"""TensorBoard event files in RUN_DIR/tensorboard (`tensorboard --logdir runs/`), when the
optional `tensorboard` package is installed: the metrics.csv row of every finished episode."""

from __future__ import annotations

import contextlib
import importlib.util
import math
from pathlib import Path
from typing import Any

from marl_tui.train.callbacks.metrics_csv import episode_row
from marl_tui.train.loop import EpisodeEnd
from marl_tui.train.run import Callback, Run


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class TensorBoard(Callback):
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._writer: Any = None
        self._kpis: set[str] = set()

    def on_start(self, run: Run) -> None:
        if self._writer is not None:
            return
        self._kpis = set(run.oracle.kpis)
        try:
            from torch.utils.tensorboard import SummaryWriter

            # A resumed run drops the events written after its checkpoint (a kill left them).
            self._writer = SummaryWriter(str(self.folder), purge_step=run.env_steps + 1 if run.env_steps else None)
        except Exception:  # noqa: BLE001 - optional: a broken install must not stop training
            self._writer = None

    def on_episode_end(self, run: Run, ended: EpisodeEnd) -> None:
        if self._writer is None:
            return
        for k, v in episode_row(run, ended).items():
            if k != "env_steps" and isinstance(v, (int, float)) and math.isfinite(v):
                self._writer.add_scalar(self._tag(k), v, ended.env_steps)

    def _tag(self, key: str) -> str:
        if key == "team_return":
            return "return/team"
        if key.startswith("return_"):
            return f"return/agent_{key[len('return_'):]}"
        if key in ("episodes", "updates"):
            return f"progress/{key}"
        return f"kpi/{key}" if key in self._kpis else f"train/{key}"

    def on_end(self, run: Run) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
