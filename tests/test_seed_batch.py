"""Seeds batched in one process (train/seed_batch.py, `marl-tui train-seeds`, compare
--batched-seeds): each seed's run directory holds exactly what its solo run writes.

The learners' own stacking (stack, write_back, update_seeds) is tested beside each algorithm
(test_seed_stack_*.py); here the harness: lockstep stepping, write-back before checkpoints, a
seed's fault, a stop and the resume of each seed alone, the CLI and compare.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from marl_tui.algos.registry import algorithm_class
from marl_tui.compare import jobrun
from marl_tui.compare.jobs import Job, Task, tasks
from marl_tui.config import ALGOS, load_scenario
from marl_tui.stream.frames import ControlState
from marl_tui.train.build import build_run
from marl_tui.train.checkpoint import LATEST, read_checkpoint
from marl_tui.train.controls import Controls
from marl_tui.train.faults import TrainingFault
from marl_tui.train.run import Callback, Run
from marl_tui.train.run_config import RunConfig
from marl_tui.train.rundir import init_run_dir
from marl_tui.train.seed_batch import SeedBatch
from tests.test_mixed_actions import SPEAKER_LISTENER
from tests.test_run import wait_until
from tests.test_runs import LEARNERS, assert_same, csv, resume

STACKABLE = [a for a in ALGOS if algorithm_class(a).supports_seed_stack]
SEEDS = (3, 4, 5)
STEPS = 1_600
EVERY = 400  # checkpoints (each with a greedy episode) inside the budget


def make(out: Path | None, algo: str, seed: int, controls: Controls | None = None,
         extra: tuple[Callback, ...] = (), training_frames: bool = True, scenario: str = "pricing") -> Run:
    t = build_run(RunConfig(scenario=load_scenario(scenario), algo=algo, steps=STEPS, n_envs=8, seed=seed,
                            overrides=dict(LEARNERS[algo][0]), out_dir=out, checkpoint_every=EVERY),
                  controls=controls, extra=extra, training_frames=training_frames)
    if out is not None:
        init_run_dir(t, out)
    return t


def solo(root: Path, algo: str, seed: int, scenario: str = "pricing") -> Path:
    run_dir = root / f"solo-{algo}-s{seed}"
    t = make(run_dir, algo, seed, training_frames=False, scenario=scenario)
    t.run()
    assert t.stats.status == "finished", t.stats.error
    return run_dir


def assert_same_run(got: Path, ref: Path) -> None:
    """The same metrics.csv byte for byte and the same final checkpoint (networks, optimisers,
    buffers, generators, loop), but for the wall time it took."""
    assert csv(got) == csv(ref)
    a, b = read_checkpoint(got / "checkpoints" / LATEST), read_checkpoint(ref / "checkpoints" / LATEST)
    assert_same(a["algorithm"], b["algorithm"], "algorithm")
    for state in (a["trainer"], b["trainer"]):
        state.pop("elapsed")
    assert_same(a["trainer"], b["trainer"], "trainer")


def test_the_stackable_learners_are_the_three() -> None:
    assert set(STACKABLE) == {"maddpg", "mappo", "qmix"}


@pytest.mark.parametrize("algo", STACKABLE)
def test_each_batched_seed_is_its_solo_run(algo: str, tmp_path: Path) -> None:
    controls = Controls()
    runs = [make(tmp_path / f"s{seed}", algo, seed, controls, training_frames=False) for seed in SEEDS]
    SeedBatch(runs).run()
    for seed, r in zip(SEEDS, runs, strict=True):
        assert r.stats.status == "finished", r.stats.error
        assert r.updates > 0 and r.last_checkpoint_step == STEPS
        assert_same_run(tmp_path / f"s{seed}", solo(tmp_path, algo, seed))


@pytest.mark.parametrize("algo", STACKABLE)
def test_agents_of_different_action_sizes_batch_as_their_solo_runs(algo: str, tmp_path: Path) -> None:
    """MPE speaker-listener (3 and 5 actions, padded with a mask): each seed is its solo run."""
    pytest.importorskip("mpe2")
    scenario = str(SPEAKER_LISTENER)
    controls = Controls()
    runs = [make(tmp_path / f"s{seed}", algo, seed, controls, training_frames=False, scenario=scenario)
            for seed in SEEDS[:2]]
    SeedBatch(runs).run()
    for seed, r in zip(SEEDS, runs, strict=False):
        assert r.stats.status == "finished" and r.updates > 0, r.stats.error
        assert_same_run(tmp_path / f"s{seed}", solo(tmp_path, algo, seed, scenario))


class FaultAt(Callback):
    """The NaN guard's kind of fault, in one seed's run only."""

    def __init__(self, env_steps: int) -> None:
        self.env_steps = env_steps

    def on_step(self, run: Run, outcome: object) -> None:
        if run.env_steps == self.env_steps:
            raise TrainingFault(f"constructed fault at env step {run.env_steps}")


def test_a_faulting_seed_ends_alone_and_the_others_train_on_unchanged(tmp_path: Path) -> None:
    algo = STACKABLE[0]
    controls = Controls()
    runs = [make(tmp_path / f"s{seed}", algo, seed, controls,
                 extra=(FaultAt(800),) if seed == SEEDS[1] else (), training_frames=False) for seed in SEEDS]
    SeedBatch(runs).run()
    bad = runs[1]
    assert bad.stats.status == "error" and "constructed fault at env step 800" in (bad.stats.error or "")
    assert bad.env_steps == 800 and bad.last_checkpoint_step == 800  # its last good checkpoint
    for seed in (SEEDS[0], SEEDS[2]):
        assert_same_run(tmp_path / f"s{seed}", solo(tmp_path, algo, seed))


def test_a_stopped_batch_saves_every_seed_and_each_resumes_alone_to_its_solo_run(tmp_path: Path) -> None:
    algo = STACKABLE[0]
    controls = Controls(ControlState(paused=True))
    runs = [make(tmp_path / f"s{seed}", algo, seed, controls, training_frames=False) for seed in SEEDS]
    batch = SeedBatch(runs)
    thread = threading.Thread(target=batch.run, daemon=True)
    thread.start()
    controls.step(77)  # mid-episode (25 steps) and between checkpoints (50 steps)
    wait_until(lambda: runs[0].iteration == 77 and runs[0].stats.status == "paused", "77 steps taken")
    controls.stop()
    thread.join()
    for seed, r in zip(SEEDS, runs, strict=True):
        assert r.stats.status == "stopped" and r.last_checkpoint_step == 77 * 8
        again = resume(tmp_path / f"s{seed}")
        again.run()
        assert again.stats.status == "finished", again.stats.error
        assert_same_run(tmp_path / f"s{seed}", solo(tmp_path, algo, seed))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "marl_tui", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=600)


def test_train_seeds_writes_a_finished_run_directory_per_seed(tmp_path: Path) -> None:
    algo = STACKABLE[0]
    outs = [tmp_path / f"s{seed}" for seed in SEEDS[:2]]
    args = ["train-seeds", "pricing", "--algo", algo, "--steps", "800", "--envs", "8", "--jsonl"]
    for seed, out in zip(SEEDS, outs, strict=False):
        args += ["--seed", str(seed), "--out", str(out)]
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    for seed, out in zip(SEEDS, outs, strict=False):
        summary = json.loads((out / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["seed"] == seed and summary["steps"] == 800
        assert "kpis" in summary


def test_train_seeds_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    unstackable = cli("train-seeds", "pricing", "--algo", "random", "--seed", "1", "--seed", "2")
    assert unstackable.returncode == 2
    assert unstackable.stderr.strip().count("\n") == 0 and "marl-tui train --seed N" in unstackable.stderr
    algo = STACKABLE[0]
    mismatched = cli("train-seeds", "pricing", "--algo", algo, "--seed", "1", "--seed", "2",
                     "--out", str(tmp_path / "a"))
    assert mismatched.returncode == 2 and "one --out per --seed" in mismatched.stderr
    twice = cli("train-seeds", "pricing", "--algo", algo, "--seed", "1", "--seed", "1")
    assert twice.returncode == 2 and "a seed is given twice" in twice.stderr
    assert not (tmp_path / "a").exists()


def test_tasks_batch_the_chosen_algorithms_seeds_in_plan_order(tmp_path: Path) -> None:
    jobs = [Job(a, s, tmp_path / f"{a}-s{s}") for s in (0, 1, 2) for a in ("maddpg", "mappo")]
    got = tasks(jobs, frozenset({"maddpg"}))
    assert [t.name for t in got] == ["maddpg-s0-1-2", "mappo-s0", "mappo-s1", "mappo-s2"]
    assert got[0].log.name == "maddpg-s0-1-2.log" and not got[1].batched


def test_a_batch_with_a_checkpoint_left_starts_seed_by_seed(tmp_path: Path) -> None:
    jobs = tuple(Job("maddpg", s, tmp_path / f"maddpg-s{s}") for s in (0, 1, 2))
    assert jobrun.startable(Task(jobs)) == [Task(jobs)]
    (jobs[1].run_dir / "checkpoints").mkdir(parents=True)
    (jobs[1].run_dir / "checkpoints" / LATEST).write_bytes(b"")
    assert jobrun.startable(Task(jobs)) == [Task((j,)) for j in jobs]


def test_compare_batched_seeds_trains_each_seeds_run_directory(tmp_path: Path) -> None:
    algo = STACKABLE[0]
    out = tmp_path / "cmp"
    done = cli("compare", "pricing", "--algos", f"{algo},random", "--seeds", "2", "--steps", "1600",
               "--out", str(out), "--batched-seeds", "--headless")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"seeds batched for {algo} (separate runs for random)" in done.stdout
    for seed in (0, 1):
        summary = json.loads((out / f"{algo}-s{seed}" / "summary.json").read_text())
        assert summary["status"] == "finished"
    assert (out / "logs" / f"{algo}-s0-1.log").is_file()
