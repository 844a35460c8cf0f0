"""The run directory: config.toml, scenario.toml, metrics.csv, summary.json, checkpoints/.

Files are written atomically (temp file, fsync, rename) so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from marl_tui.errors import UserError


def default_run_dir(scenario: str, algo: str, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{scenario}-{algo}-s{seed}-{stamp}"


def prepare_new(path: Path) -> Path:
    """Create a fresh run directory; never write over an existing run."""
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path}: a file with that name exists; choose another --out")
    if path.is_dir() and any(path.iterdir()):
        raise UserError(
            f"--out {path}: that folder already holds files; choose another --out "
            f"(or continue a run with `marl-tui resume {path}`)"
        )
    try:
        (path / "checkpoints").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {path}: cannot create it ({exc.strerror}); choose another --out") from None
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(_json_safe(data), indent=2) + "\n").encode())


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if v is None:
        return '""'
    return json.dumps(str(v))


def write_config(path: Path, run: dict[str, Any], hyperparameters: dict[str, Any]) -> None:
    """config.toml: how this run was started, readable and reusable."""
    lines = ["# How this run was started (marl-tui resume reads it back).", "[run]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in run.items()]
    lines += ["", "[hyperparameters]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in hyperparameters.items()]
    atomic_write_bytes(path / "config.toml", ("\n".join(lines) + "\n").encode())


def init_run_dir(trainer: Any, run_dir: Path) -> Path:
    """Make a fresh run directory for a Trainer: the scenario file as given and config.toml."""
    import dataclasses

    run = trainer.run_config
    prepare_new(run_dir)
    (run_dir / "scenario.toml").write_text(run.scenario.text, encoding="utf-8")
    write_config(
        run_dir,
        {"scenario": run.scenario.name, "algo": run.algo, "seed": trainer.seed,
         "steps": trainer.total_steps, "envs": trainer.env.n_envs, "device": str(trainer.device)},
        dataclasses.asdict(trainer.hp),
    )
    return run_dir
