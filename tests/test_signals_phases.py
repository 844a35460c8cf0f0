"""Signals in every phase of `marl-tui train`, in real processes: start-up (before and after the
run directory is made), training, a checkpoint being written, the final evaluation, and
summary.json being written, each under SIGINT, SIGTERM and SIGHUP. Each is answered the same
way: exit 128 + the signal, one line saying how to continue, summary.json saying interrupted
where a run directory exists, a checkpoint that resume (or eval) continues from.

The process holds at the phase (a hook installed by a wrapper, in the child only) and tells
the test by creating a file; the test then signals it; the hook lets go once the handler has
seen the signal. No fixed sleeps: every wait is on a condition.
"""

from __future__ import annotations

import json
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

# The child imports this checkout's marl_tui, whatever else is installed.
ROOT = str(Path(__file__).resolve().parents[1])
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
       "PYTHONPATH": os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])}
SIGNALS = {"SIGINT": (signal.SIGINT, 130), "SIGTERM": (signal.SIGTERM, 143), "SIGHUP": (signal.SIGHUP, 129)}

# Run in the child before the CLI: wrap the function where a phase happens so that, the first
# time it is reached, it creates MARKER and waits until the signal handler has seen a signal.
HOOK = r"""
import signal, sys, time
from pathlib import Path
phase, marker = sys.argv[1], Path(sys.argv[2])
sys.argv = ["marl-tui", *sys.argv[3:]]

def hold():
    if marker.exists():
        return
    marker.touch()
    stopper = signal.getsignal(signal.SIGTERM).__self__  # StopOnSignal's bound handler
    while stopper.signum is None:
        time.sleep(0.002)

def at(module, name, before=True):
    import importlib
    mod = importlib.import_module(module)
    real = getattr(mod, name)
    def wrapped(*a, **k):
        if before:
            hold()
            return real(*a, **k)
        out = real(*a, **k)
        hold()
        return out
    setattr(mod, name, wrapped)

if phase == "start-up":
    at("marl_tui.train.build", "check_budget")
elif phase == "start-up-after-folder":
    at("marl_tui.headless.runs", "init_run_dir", before=False)
elif phase == "training":
    import marl_tui.train.callbacks.metrics_csv as m
    real_end = m.MetricsCsv.on_episode_end
    def on_episode_end(self, run, ended):
        real_end(self, run, ended)
        hold()
    m.MetricsCsv.on_episode_end = on_episode_end
elif phase == "checkpoint":
    at("marl_tui.train.checkpoint", "atomic_write")
elif phase == "evaluation":
    import marl_tui.headless.output as o
    real_tick = o.EvaluationProgress.tick
    def tick(self, done):
        hold()
        real_tick(self, done)
    o.EvaluationProgress.tick = tick
elif phase == "summary":
    at("marl_tui.headless.runs", "write_result")
from marl_tui.cli import main
main()
"""

PHASES = ["start-up", "start-up-after-folder", "training", "checkpoint", "evaluation", "summary"]


def train_args(run_dir: Path) -> list[str]:
    return ["train", "pricing", "--algo", "random", "--steps", "800", "--envs", "8", "--seed", "5",
            "--checkpoint-every", "400", "--out", str(run_dir)]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], tuple[Path, int, str]]:
    """Every phase x signal, run side by side; each signalled once it holds at its phase."""
    root = tmp_path_factory.mktemp("phases")
    procs = {}
    for phase in PHASES:
        for name in SIGNALS:
            d = root / f"{phase}-{name}"
            d.mkdir()
            marker = d / "at-phase"
            cmd = [sys.executable, "-c", HOOK, phase, str(marker), *train_args(d / "run")]
            procs[phase, name] = (subprocess.Popen(cmd, cwd=d, env=ENV, stdout=subprocess.PIPE,
                                                   stderr=subprocess.PIPE, text=True,
                                                   start_new_session=True), marker, d)
    pending = set(procs)
    deadline = time.monotonic() + 600
    while pending:
        for key in sorted(pending):
            proc, marker, _ = procs[key]
            if marker.exists():
                proc.send_signal(SIGNALS[key[1]][0])
                pending.discard(key)
            elif proc.poll() is not None:
                pytest.fail(f"{key}: ended (rc {proc.returncode}) before its phase:\n{proc.communicate()[1]}")
        if time.monotonic() > deadline:
            for proc, _, _ in procs.values():
                proc.kill()
            pytest.fail(f"timed out waiting for phases {sorted(pending)}")
        time.sleep(0.01)
    out = {}
    for key, (proc, _, d) in procs.items():
        _, err = proc.communicate(timeout=300)
        out[key] = (d / "run", proc.returncode, err)
    return out


@pytest.mark.parametrize("name", list(SIGNALS))
@pytest.mark.parametrize("phase", PHASES)
def test_a_signal_in_any_phase_is_answered_the_same_way(phase: str, name: str, stopped, cli,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir, rc, err = stopped[phase, name]
    assert rc == SIGNALS[name][1], err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert f"stopped by {name}" in last, err
    if phase == "start-up":  # before the folder: nothing was made, nothing is left half-made
        assert "nothing was written" in last
        assert not run_dir.exists()
        code, _, e = cli(*train_args(run_dir))  # the same --out starts the run
        assert code == 0, e
        return
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["signal"] == name
    ckpt = read_checkpoint(run_dir / "checkpoints" / LATEST)
    done = ckpt["trainer"]["env_steps"]
    if phase in ("evaluation", "summary"):  # training finished and saved: evaluate it
        assert done == 800 and summary["phase"] == phase
        assert f"evaluate with: marl-tui eval {run_dir}" in last
        assert summary["resume"] == f"marl-tui eval {run_dir}"
        code, _, e = cli("eval", run_dir, "--episodes", "1")
        assert code == 0, e
        return
    assert f"checkpoint saved at step {done:,}" in last and f"continue with: marl-tui resume {run_dir}" in last
    assert summary["resume"] == f"marl-tui resume {run_dir}"
    assert done < 800
    code, _, e = cli("resume", run_dir)
    assert code == 0, e
    assert read_checkpoint(run_dir / "checkpoints" / LATEST)["trainer"]["env_steps"] == 800


def test_deleting_the_run_directory_mid_run_gives_no_advice_to_resume_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "doomed"
    cmd = [sys.executable, "-m", "marl_tui", "train", "pricing", "--algo", "random", "--steps", "100000000",
           "--envs", "8", "--checkpoint-every", "80", "--out", str(run_dir)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / LATEST).exists():
        assert proc.poll() is None, proc.communicate()[1]
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no checkpoint appeared")
        time.sleep(0.01)
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)
    while run_dir.exists():  # a write in flight may have recreated a file: delete until gone
        shutil.rmtree(run_dir, ignore_errors=True)
    try:
        _, err = proc.communicate(timeout=120)  # writing metrics.csv fails: the run ends by itself
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode in (1, 143), err
    last = err.strip().splitlines()[-1]
    assert "no longer exists" in last and "marl-tui resume" not in last, err
    assert "Traceback" not in err
    assert not (run_dir / "checkpoints").exists()  # no checkpoint re-made a run directory
