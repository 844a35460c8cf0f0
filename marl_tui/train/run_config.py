"""What one run is: scenario, algorithm, budget, seed, copies, device, overrides — checked once."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marl_tui.config import Scenario
from marl_tui.errors import UserError

MAX_SEED = 2**31 - 1  # the range scenario files allow too


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is visible to torch here; use --device cpu")
    if device not in ("cpu", "cuda"):
        raise UserError(f"--device {device!r}: choose auto, cpu or cuda")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class RunConfig:
    scenario: Scenario
    algo: str
    steps: int | None = None  # environment steps over all copies; None: the algorithm's default
    seed: int | None = None  # None: the scenario's seed
    n_envs: int | None = None  # None: the scenario's parallel_envs
    device: str = "cpu"
    overrides: dict[str, Any] = field(default_factory=dict)  # hyperparameters
    out_dir: Path | None = None  # run directory; None: nothing written
    # Env steps between checkpoints; None: the trainer's default; 0: only at the end, on a stop,
    # and when asked.
    checkpoint_every: int | None = None

    def __post_init__(self) -> None:
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise UserError(f"--seed {self.seed}: a seed must be in 0..{MAX_SEED}")
        if self.steps is not None and self.steps <= 0:
            raise UserError(f"--steps {self.steps}: the number of steps must be positive")
        if self.n_envs is not None and self.n_envs <= 0:
            raise UserError(f"--envs {self.n_envs}: the number of parallel copies must be positive")
        if self.checkpoint_every is not None and self.checkpoint_every < 0:
            raise UserError(
                f"--checkpoint-every {self.checkpoint_every}: give a number of env steps (0: only at the end)"
            )

    def resolved_seed(self) -> int:
        return self.scenario.seed if self.seed is None else self.seed
