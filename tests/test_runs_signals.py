"""Real processes, real signals: `marl-tui train` stopped by SIGINT / SIGTERM / SIGHUP saves
and exits 130 / 143 / 129 with a line saying how to resume; SIGKILL after a checkpoint and a
double Ctrl-C leave a loadable checkpoint; each resumed run ends with the same metrics.csv as
the run that never stopped (CPU, same seed).

The interrupted runs start together with the reference (two cores share the work); the
resumes run in this process through the CLI entry point.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marl_tui.train.checkpoint import LATEST, read_checkpoint

if not hasattr(signal, "SIGHUP"):  # pragma: no cover
    pytest.skip("POSIX signals only", allow_module_level=True)

# MAPPO (on-policy) at 8 copies: 500 batched steps, an update every 32 of them.
TRAIN = ["train", "pricing", "--algo", "mappo", "--steps", "4000", "--envs", "8", "--seed", "11"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def start(run_dir: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "marl_tui", *TRAIN, "--out", str(run_dir), *extra]
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            cwd=run_dir.parent, start_new_session=True)


def rows(run_dir: Path) -> list[str]:
    try:
        return (run_dir / "metrics.csv").read_text().splitlines()[1:]
    except FileNotFoundError:
        return []


def step_files(run_dir: Path) -> list[int]:
    return sorted(int(p.stem.split("-")[1]) for p in (run_dir / "checkpoints").glob("step-*.pt"))


def wait_for(cond, proc: subprocess.Popen[str], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (rc {proc.returncode}) before {what}:\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int, str]]:
    root = tmp_path_factory.mktemp("signals")
    names = ["reference", "SIGINT", "SIGTERM", "SIGHUP", "SIGKILL", "double-SIGINT"]
    extra = {"SIGKILL": ["--checkpoint-every", "400"], "double-SIGINT": ["--checkpoint-every", "400"]}
    procs = {n: start(root / n, *extra.get(n, [])) for n in names}
    pending = set(names) - {"reference"}
    while pending:
        for n in sorted(pending):
            p, d = procs[n], root / n
            if p.poll() is not None:
                out, err = p.communicate()
                pytest.fail(f"{n}: the run ended (rc {p.returncode}) before it could be signalled:\n{err}")
            if n in ("SIGINT", "SIGTERM", "SIGHUP") and rows(d):
                p.send_signal(getattr(signal, n))
                pending.discard(n)
            elif n == "SIGKILL":
                saved = step_files(d) if (d / "checkpoints").is_dir() else []
                r = rows(d)
                if saved and r and int(r[-1].split(",")[0]) > saved[-1]:
                    p.send_signal(signal.SIGKILL)  # rows exist past the last checkpoint
                    pending.discard(n)
            elif n == "double-SIGINT" and (d / "checkpoints" / LATEST).exists() and rows(d):
                p.send_signal(signal.SIGINT)
                time.sleep(0.001)
                p.send_signal(signal.SIGINT)
                pending.discard(n)
        time.sleep(0.01)
    results = {}
    for n in names:
        out, err = procs[n].communicate(timeout=300)
        results[n] = (root / n, procs[n].returncode, err)
    return results


@pytest.fixture(scope="module")
def resumed(runs: dict[str, tuple[Path, int, str]]) -> dict[str, int]:
    """`marl-tui resume RUN_DIR` for each stopped run, through the real CLI entry point (in this
    process: the checkpoint carries everything, and it saves a torch import per run)."""
    from marl_tui.cli import main

    out = {}
    argv = sys.argv
    try:
        for n, (d, _, _) in runs.items():
            if n == "reference":
                continue
            sys.argv = ["marl-tui", "resume", str(d)]
            try:
                main()
            except SystemExit as exc:
                out[n] = int(exc.code or 0)
    finally:
        sys.argv = argv
    return out


def test_reference_finishes(runs: dict[str, tuple[Path, int, str]]) -> None:
    d, rc, err = runs["reference"]
    assert rc == 0, err
    assert read_checkpoint(d / "checkpoints" / LATEST)["trainer"]["env_steps"] == 4000


@pytest.mark.parametrize("name,code", [("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129)])
def test_signal_saves_and_says_how_to_resume(name: str, code: int,
                                             runs: dict[str, tuple[Path, int, str]]) -> None:
    d, rc, err = runs[name]
    assert rc == code, err
    last = err.strip().splitlines()[-1]
    assert f"stopped by {name}" in last and f"marl-tui resume {d}" in last, err
    assert "checkpoint saved at step" in last and "Traceback" not in err
    ckpt = read_checkpoint(d / "checkpoints" / LATEST)
    assert 0 < ckpt["trainer"]["env_steps"] < 4000
    assert f"step {ckpt['trainer']['env_steps']:,}" in last
    import json

    summary = json.loads((d / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["signal"] == name
    assert summary["resume"] == f"marl-tui resume {d}"


def test_sigkill_leaves_the_periodic_checkpoint(runs: dict[str, tuple[Path, int, str]]) -> None:
    d, rc, _ = runs["SIGKILL"]
    assert rc == -signal.SIGKILL
    ckpt = read_checkpoint(d / "checkpoints" / LATEST)
    assert ckpt["trainer"]["env_steps"] % 400 == 0


def test_double_ctrl_c_exits_at_once_and_leaves_files_whole(runs: dict[str, tuple[Path, int, str]]) -> None:
    d, rc, err = runs["double-SIGINT"]
    assert rc == 130, err
    assert "Traceback" not in err
    read_checkpoint(d / "checkpoints" / LATEST)  # whole, whichever one it is
    for line in rows(d):
        assert len(line.split(",")) == len((d / "metrics.csv").read_text().splitlines()[0].split(","))


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", "SIGHUP", "SIGKILL", "double-SIGINT"])
def test_resume_gives_the_same_metrics_as_the_run_that_never_stopped(
        name: str, runs: dict[str, tuple[Path, int, str]], resumed: dict[str, int]) -> None:
    assert resumed[name] == 0
    d = runs[name][0]
    reference = runs["reference"][0]
    assert (d / "metrics.csv").read_bytes() == (reference / "metrics.csv").read_bytes()
    ours = read_checkpoint(d / "checkpoints" / LATEST)
    theirs = read_checkpoint(reference / "checkpoints" / LATEST)
    assert ours["trainer"]["env_steps"] == theirs["trainer"]["env_steps"] == 4000
    for k, v in theirs["algorithm"]["policy"].items():
        assert ours["algorithm"]["policy"][k].equal(v), k
