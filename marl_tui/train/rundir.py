"""The run directory: config.toml, scenario.toml, metrics.csv, summary.json, checkpoints/.

Files are written atomically (temp file, fsync, rename) so a crash never leaves half a file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from marl_tui.errors import UserError


def default_run_dir(scenario: str, algo: str, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{scenario}-{algo}-s{seed}-{stamp}"


# What a run directory holds before its first checkpoint: a run stopped (or killed) there left
# nothing resumable, and the same --out may start it again (its own files go, nothing else).
_START_UP_FILES = {"scenario.toml", "config.toml", "checkpoints", ".lock",
                   ".scenario.toml.tmp", ".config.toml.tmp"}
_UNSAVED_RUN_FILES = {"metrics.csv", "stream", "train.log", "app.log", "tensorboard"}


def _never_started(path: Path) -> bool:
    names = {p.name for p in path.iterdir()}
    checkpoints = path / "checkpoints"
    return names <= _START_UP_FILES | _UNSAVED_RUN_FILES and not (checkpoints.is_dir() and any(checkpoints.iterdir()))


def check_new(path: Path) -> None:
    """Refuse (UserError) a run directory that cannot be a new run's: a file, a folder holding
    another run, or a path the file system cannot take. Creates nothing."""
    try:
        if path.exists() and not path.is_dir():
            raise UserError(f"--out {path}: a file with that name exists; choose another --out")
        if path.is_dir() and any(path.iterdir()) and not _never_started(path):
            raise UserError(
                f"--out {path}: that folder already holds files; choose another --out "
                f"(or continue a run with `marl-tui resume {path}`)"
            )
    except OSError as exc:  # a name beyond the file system's limit, no permission
        raise UserError(f"run directory {path}: cannot use it ({exc.strerror}); choose another --out") from None


def prepare_new(path: Path) -> Path:
    """Create a fresh run directory; never write over an existing run. A folder left by a
    start-up that never reached its first checkpoint is reused."""
    check_new(path)
    try:
        for name in _UNSAVED_RUN_FILES:  # a run that never saved: start it afresh
            old = path / name
            if old.is_dir():
                shutil.rmtree(old)
            elif old.exists():
                old.unlink()
        (path / "checkpoints").mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # no permission, a full disk
        raise UserError(f"run directory {path}: cannot create it ({exc.strerror}); choose another "
                        "--out") from None
    return path


def _fsync_dir(path: Path) -> None:
    """Make a rename durable: fsync the folder that holds it (POSIX; a no-op elsewhere)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_path(path: Path) -> Path:
    """Where a file is written before it is renamed over `path` (ignored by readers)."""
    return path.with_name(f".{path.name}.tmp")


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write `path` so that readers see the old file or the new one, never half of one.

    The data goes to a temp file beside it, is flushed and fsynced, then renamed over
    `path` (an atomic step on POSIX and Windows). A crash or a second Ctrl-C at any moment
    leaves at worst a stray temp file, which the next write replaces.
    """
    tmp = temp_path(path)
    try:
        with tmp.open("wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


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


def run_config_document(scenario: str, algo: str, seed: int, steps: int, envs: int, device: str,
                        hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """config.toml's content. TOML has no null: a None (a default left to the algorithm) is left out."""
    return {"run": {"scenario": scenario, "algo": algo, "seed": seed, "steps": steps, "envs": envs,
                    "device": device},
            "hyperparameters": {k: v for k, v in hyperparameters.items() if v is not None}}


def write_run_config(trainer: Any, run_dir: Path) -> None:
    """config.toml: how this run was started (or, after `resume --steps`, goes on), readable
    and reusable."""
    import dataclasses

    import tomli_w

    doc = run_config_document(trainer.scenario.name, trainer.run_config.algo, trainer.seed,
                              trainer.total_steps, trainer.env.n_envs, str(trainer.device),
                              dataclasses.asdict(trainer.hp))
    header = ("# How this run was started. Checkpoints hold the exact state; `marl-tui resume`\n"
              "# refuses edits to this file, except to run.steps (the total budget it trains to).\n")
    atomic_write_bytes(run_dir / "config.toml", (header + tomli_w.dumps(doc)).encode())


class RunLock:
    """An exclusive lock on a run directory, held while a process trains into it."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)  # closing releases the flock
            self.fd = None


def lock_run_dir(path: Path) -> RunLock:
    """Refuse (UserError) when another marl-tui process is training into `path`.

    Uses flock on RUN_DIR/.lock, which the kernel releases when the process dies, however
    it dies: a stale lock never blocks a resume."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        return RunLock(None)
    try:
        fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"{path}: cannot write into this run directory ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise UserError(f"{path}: another marl-tui process (pid {holder}) is training into this run "
                        "directory; wait for it to end, or stop it first") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return RunLock(fd)


def init_run_dir(trainer: Any, run_dir: Path) -> Path:
    """Make a fresh run directory for a Run: the scenario file as given and config.toml (under
    the directory's lock, so two starts into one --out cannot interleave)."""
    prepare_new(run_dir)
    lock = lock_run_dir(run_dir)
    try:
        atomic_write_bytes(run_dir / "scenario.toml", trainer.run_config.scenario.text.encode("utf-8"))
        write_run_config(trainer, run_dir)
    except OSError as exc:  # disk full, a read-only or unreadable folder
        raise UserError(f"--out {run_dir}: cannot write ({exc.strerror or exc}); choose another --out") from None
    finally:
        lock.close()
    return run_dir
