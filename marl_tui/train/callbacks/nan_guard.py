"""Stop a run whose numbers went NaN/inf, naming the quantity and the study guide's advice."""

from __future__ import annotations

import math

from marl_tui.train.faults import ADVICE, TrainingFault
from marl_tui.train.loop import EpisodeEnd
from marl_tui.train.run import Callback, Run

PARAMETER_CHECK_UPDATES = 50  # look for NaN/inf in the networks every this many updates (one sync)


class NanGuard(Callback):
    def on_update(self, run: Run, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            if not math.isfinite(v):
                raise TrainingFault(f"{k} became {v} at env step {run.env_steps}; {ADVICE}")
        if run.updates % PARAMETER_CHECK_UPDATES == 0:
            bad = run.non_finite_parameter()
            if bad is not None:
                raise TrainingFault(f"parameter {bad} became NaN/inf at env step {run.env_steps}; {ADVICE}")

    def on_episode_end(self, run: Run, ended: EpisodeEnd) -> None:
        # Checked once an episode (a reward's NaN reaches the returns) instead of a sync per step.
        if not all(math.isfinite(x) for x in ended.agent_returns):
            raise TrainingFault(f"the environment returned a non-finite reward in the episode ending at "
                                f"env step {ended.env_steps}; {ADVICE}")
