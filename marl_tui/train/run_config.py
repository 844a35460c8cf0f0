"""What one run is: scenario, algorithm, budget, seed, copies, device, overrides — checked once."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marl_tui.config import Scenario, check_run_options
from marl_tui.errors import UserError


def resolve_device(device: str) -> torch.device:
    check_run_options(device=device)  # auto, cpu or cuda
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is visible to torch here; use --device cpu")
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
        check_run_options(steps=self.steps, envs=self.n_envs, seed=self.seed,
                          checkpoint_every=self.checkpoint_every)

    def resolved_seed(self) -> int:
        return self.scenario.seed if self.seed is None else self.seed
