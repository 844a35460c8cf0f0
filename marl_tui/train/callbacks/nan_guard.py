"""Stop a run whose numbers went NaN/inf or diverged, naming the quantity and the study guide's advice.

Divergence: a value (Q, V, their targets) or a loss far above what the rewards allow, |Q| ≫
max|r̄| / (1 − γ). The bound and the test are the doctor's (learn/doctor.py: reward_bound,
diverged); the doctor warns at DIVERGENCE_FACTOR × the bound, the guard stops the run at
DIVERGENCE_FAULT_FACTOR ×.
"""

from __future__ import annotations

import math

from marl_tui.learn import doctor
from marl_tui.train.faults import ADVICE, TrainingFault
from marl_tui.train.loop import EpisodeEnd
from marl_tui.train.run import Callback, Run

PARAMETER_CHECK_UPDATES = 50  # look for NaN/inf in the networks every this many updates (one sync)
DIVERGENCE_ADVICE = "the study guide's Part 7: a smaller learning rate, a lower γ, target network updates"


class NanGuard(Callback):
    def __init__(self) -> None:
        self.facts: doctor.Facts | None = None
        self.max_abs_reward = math.nan  # largest |mean reward per step| of an agent in an episode

    def on_start(self, run: Run) -> None:
        self.facts = doctor.facts_of_run(run)

    def on_update(self, run: Run, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            if not math.isfinite(v):
                raise TrainingFault(f"{k} became {v} at env step {run.env_steps}; {ADVICE}")
        if self.facts is not None and self.facts.gamma > 0:
            found = doctor.diverged(metrics, self.facts, doctor.reward_bound(self.max_abs_reward, self.facts),
                                    doctor.DIVERGENCE_FAULT_FACTOR)
            if found is not None:
                key, value, limit = found
                own = doctor.ADVICE["divergence"].get(self.facts.algo, "")
                raise TrainingFault(
                    f"{key} = {value:.4g} at env step {run.env_steps} diverged: above "
                    f"{doctor.DIVERGENCE_FAULT_FACTOR:g}× max|r̄|/(1−γ) = {limit:.4g} (γ = {self.facts.gamma:g}); "
                    f"{DIVERGENCE_ADVICE} ({own})")
        if run.updates % PARAMETER_CHECK_UPDATES == 0:
            bad = run.non_finite_parameter()
            if bad is not None:
                raise TrainingFault(f"parameter {bad} became NaN/inf at env step {run.env_steps}; {ADVICE}")

    def on_episode_end(self, run: Run, ended: EpisodeEnd) -> None:
        # Checked once an episode (a reward's NaN reaches the returns) instead of a sync per step.
        if not all(math.isfinite(x) for x in ended.agent_returns):
            raise TrainingFault(f"the environment returned a non-finite reward in the episode ending at "
                                f"env step {ended.env_steps}; {ADVICE}")
        per_step = max(abs(x) for x in ended.agent_returns) / max(run.env.spec.episode_length, 1)
        self.max_abs_reward = per_step if math.isnan(self.max_abs_reward) else max(self.max_abs_reward, per_step)
