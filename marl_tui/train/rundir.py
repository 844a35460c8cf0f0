"""The run directory: config.toml, scenario.toml, metrics.csv, summary.json, checkpoints/.

Files are written atomically (temp file, fsync, rename) so a crash never leaves half a file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

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


def write_run_config(trainer: Any, run_dir: Path) -> None:
    """config.toml: how this run was started (or, after `resume --steps`, goes on), readable
    and reusable. TOML has no null: a None (a default left to the algorithm) is left out."""
    import dataclasses

    import tomli_w

    run = {"scenario": trainer.scenario.name, "algo": trainer.run_config.algo, "seed": trainer.seed,
           "steps": trainer.total_steps, "envs": trainer.env.n_envs, "device": str(trainer.device)}
    hp = dataclasses.asdict(trainer.hp)
    doc = {"run": run, "hyperparameters": {k: v for k, v in hp.items() if v is not None}}
    header = ("# How this run was started. Checkpoints hold the exact state; `marl-tui resume`\n"
              "# checks that they match this file.\n")
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
    """Make a fresh run directory for a Run: the scenario file as given and config.toml."""
    try:
        prepare_new(run_dir)
        atomic_write_bytes(run_dir / "scenario.toml", trainer.run_config.scenario.text.encode("utf-8"))
        write_run_config(trainer, run_dir)
    except OSError as exc:  # disk full, a read-only or unreadable folder
        raise UserError(f"--out {run_dir}: cannot write ({exc.strerror or exc}); choose another --out") from None
    return run_dir
