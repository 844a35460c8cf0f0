"""What stops a run as a fault (exit 1) rather than as bad input (exit 2)."""

from __future__ import annotations


class TrainingFault(RuntimeError):
    """Training produced NaN/inf: stop with a message naming the quantity and the guide's advice."""


ADVICE = (
    "the study guide's Part 7: lower the learning rates, use a larger replay buffer or smaller "
    "tau (MADDPG), check the advantages and returns (MAPPO)"
)
