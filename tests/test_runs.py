"""Runs that survive: checkpoints, exact resume, faults, evaluation, logs.

In-process and fast: small budgets on pricing with 8 copies. The signal tests (real
processes) are in test_runs_signals.py.
"""

from __future__ import annotations

import io
import json
import math
import re
import time
from pathlib import Path

import pytest
import torch

from marl_tui.config import load_scenario
from marl_tui.errors import UserError
from marl_tui.stream.frames import ControlState
from marl_tui.train import rundir
from marl_tui.train.build import build_run
from marl_tui.train.callbacks.checkpointer import Checkpointer
from marl_tui.train.callbacks.tensorboard import tensorboard_available
from marl_tui.train.checkpoint import LATEST, find_checkpoint, read_checkpoint, save_checkpoint
from marl_tui.train.controls import Controls
from marl_tui.train.faults import TrainingFault
from marl_tui.train.resume import load_checkpoint_into, trainer_from_checkpoint
from marl_tui.train.run import Run
from marl_tui.train.run_config import RunConfig
from marl_tui.train.rundir import init_run_dir

# Small settings so learners update within a few hundred steps; the replay buffers are
# small enough to wrap around, which a resume must get right too.
LEARNERS = {
    "random": ({}, 1_600),
    "mappo": ({"rollout_length": 16, "epochs": 2, "minibatches": 2, "hidden": 16}, 1_600),
    "maddpg": ({"learning_starts": 160, "batch_size": 32, "buffer_size": 1_000, "updates_per_step": 1,
                "hidden": 16}, 1_600),
    "qmix": ({"learning_starts": 160, "batch_size": 32, "buffer_size": 1_000, "updates_per_step": 1,
              "hidden": 16, "mixer_hidden": 8, "target_update_interval": 10}, 1_600),
}


def make(out: Path | None, algo: str = "random", steps: int | None = None, seed: int = 3,
         controls: Controls | None = None, checkpoint_every: int | None = None) -> Run:
    overrides, default_steps = LEARNERS[algo]
    t = build_run(RunConfig(scenario=load_scenario("pricing"), algo=algo, steps=steps or default_steps,
                          n_envs=8, seed=seed, overrides=dict(overrides), out_dir=out,
                          checkpoint_every=checkpoint_every), controls=controls)
    if out is not None:
        init_run_dir(t, out)
    return t


def run_for(t: Run, iterations: int) -> None:
    """Run the worker thread until exactly `iterations` batched steps are done, then stop
    (which saves)."""
    assert t.controls.paused
    thread = t.start_thread()
    t.controls.step(iterations - t.iteration)
    deadline = time.monotonic() + 60
    while t.iteration < iterations and time.monotonic() < deadline:
        time.sleep(0.002)
    t.controls.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert t.iteration == iterations, t.stats.error


def resume(run_dir: Path, steps: int | None = None) -> Run:
    t, _ = trainer_from_checkpoint(find_checkpoint(run_dir)[0], out_dir=run_dir, steps=steps,
                                   keep_rows=True)
    return t


def csv(run_dir: Path) -> bytes:
    return (run_dir / "metrics.csv").read_bytes()


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One uninterrupted run per algorithm."""
    root = tmp_path_factory.mktemp("reference")
    out = {}
    for algo in LEARNERS:
        t = make(root / algo, algo)
        t.run()
        assert t.stats.status == "finished", t.stats.error
        out[algo] = root / algo
    return out


# --------------------------------------------------------------------------- exact resume


@pytest.mark.parametrize("algo", list(LEARNERS))
def test_stop_and_resume_gives_the_same_metrics(algo: str, references: dict[str, Path],
                                                tmp_path: Path) -> None:
    """Stopped mid-episode and mid-rollout, then resumed: the same metrics.csv, byte for byte,
    and the same final networks, optimisers and buffers."""
    run_dir = tmp_path / algo
    t = make(run_dir, algo, controls=Controls(ControlState(paused=True)))
    run_for(t, 77)  # 77 = 3 episodes of 25 + 2 steps; mid-rollout for MAPPO (16)
    assert t.stats.status == "stopped" and t.last_checkpoint_step == 77 * 8
    r = resume(run_dir)
    assert r.env_steps == 77 * 8 and r.episodes == 3
    r.run()
    assert r.stats.status == "finished", r.stats.error
    assert csv(run_dir) == csv(references[algo])
    ref = read_checkpoint(references[algo] / "checkpoints" / LATEST)
    got = read_checkpoint(run_dir / "checkpoints" / LATEST)
    assert_same(got["algorithm"], ref["algorithm"])
    assert got["trainer"]["team_history"] == ref["trainer"]["team_history"]
    if algo != "random":
        assert r.updates > 0 and "," in csv(run_dir).splitlines()[0].decode()


def assert_same(a: object, b: object, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype, where
        same = torch.equal(a, b) or (a.is_floating_point() and torch.allclose(a, b, rtol=0, atol=0,
                                                                             equal_nan=True))
        assert same, where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert a == b, where


def test_resume_twice_and_extend_the_budget(tmp_path: Path) -> None:
    """Stop, resume, stop again, resume with a larger total: equals one run of that total."""
    ref = make(tmp_path / "ref", "mappo", steps=2_400)
    ref.run()
    run_dir = tmp_path / "run"
    t = make(run_dir, "mappo", steps=1_200, controls=Controls(ControlState(paused=True)))
    run_for(t, 40)
    r = resume(run_dir)
    r.controls.pause()
    run_for(r, 90)
    r2 = resume(run_dir)
    r2.run()
    assert r2.stats.status == "finished" and r2.env_steps == 1_200
    r3 = resume(run_dir, steps=2_400)  # the budget is a total from the run's start
    r3.run()
    assert r3.env_steps == 2_400
    assert csv(run_dir) == csv(tmp_path / "ref")


def test_resume_after_a_kill_drops_rows_written_after_the_checkpoint(
        references: dict[str, Path], tmp_path: Path) -> None:
    """A process killed (no save on the way out) after a periodic checkpoint: metrics.csv holds
    rows past it; resume cuts them and writes them again, identically."""
    run_dir = tmp_path / "killed"
    t = make(run_dir, "mappo", controls=Controls(ControlState(paused=True)), checkpoint_every=400)
    checkpointer = next(c for c in t.callbacks if isinstance(c, Checkpointer))
    checkpointer.on_end = lambda run: None  # killed: no save on the way out
    run_for(t, 90)  # checkpoints at 400 and 800 env steps (iterations 50, 100): last at 400
    assert t.last_checkpoint_step == 400
    rows = csv(run_dir).decode().splitlines()
    assert int(rows[-1].split(",")[0]) == 600  # a row written after the checkpoint
    r = resume(run_dir)
    assert r.env_steps == 400
    assert csv(run_dir).decode().splitlines()[-1].split(",")[0] == "400"
    r.run()
    assert csv(run_dir) == csv(references["mappo"])


def test_same_seed_twice_gives_identical_metrics(tmp_path: Path) -> None:
    for algo in ("random", "mappo"):
        a, b = make(tmp_path / f"{algo}-a", algo), make(tmp_path / f"{algo}-b", algo)
        a.run(), b.run()
        assert csv(tmp_path / f"{algo}-a") == csv(tmp_path / f"{algo}-b")
        c = make(tmp_path / f"{algo}-c", algo, seed=4)
        c.run()
        assert csv(tmp_path / f"{algo}-c") != csv(tmp_path / f"{algo}-a")


# --------------------------------------------------------------------------- checkpoint files


@pytest.mark.parametrize("algo", list(LEARNERS))
def test_checkpoints_load_with_weights_only(algo: str, references: dict[str, Path]) -> None:
    path = references[algo] / "checkpoints" / LATEST
    data = torch.load(path, map_location="cpu", weights_only=True)
    assert data["format"] == "marl-tui checkpoint" and data["version"] == 1
    assert data["config"]["algo"] == algo and data["scenario"]["text"].startswith("#")
    assert set(data["rng"]) >= {"torch", "numpy", "python"}
    assert data["trainer"]["env_steps"] == LEARNERS[algo][1]


def test_checkpoints_are_periodic_bounded_and_deterministic(tmp_path: Path) -> None:
    t = make(tmp_path / "run", "random", checkpoint_every=400)
    t.run()
    folder = tmp_path / "run" / "checkpoints"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [LATEST, "step-000000001200.pt", "step-000000001600.pt"]
    assert (folder / LATEST).read_bytes() == (folder / "step-000000001600.pt").read_bytes()


def test_a_kill_during_a_checkpoint_write_leaves_the_previous_one(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    t = make(run_dir, "random", controls=Controls(ControlState(paused=True)))
    run_for(t, 20)
    before = (run_dir / "checkpoints" / LATEST).read_bytes()

    def killed(src: object, dst: object) -> None:
        # The data was written and fsynced to the temp file; the process dies before the rename.
        assert Path(str(src)).read_bytes()
        raise KeyboardInterrupt

    t.loop.step_count += 1  # something new to save
    t.loop.env_steps += 8
    monkeypatch.setattr(rundir.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(t)
    monkeypatch.undo()
    assert (run_dir / "checkpoints" / LATEST).read_bytes() == before
    assert read_checkpoint(run_dir / "checkpoints" / LATEST)["trainer"]["env_steps"] == 160
    # A real kill leaves half-written temp files behind: they are ignored, then replaced.
    for name in (".latest.pt.tmp", ".step-000000000168.pt.tmp"):
        (run_dir / "checkpoints" / name).write_bytes(before[: len(before) // 3])
    r = resume(run_dir)
    assert r.env_steps == 160
    r.run()
    assert r.stats.status == "finished"
    assert not (run_dir / "checkpoints" / ".latest.pt.tmp").exists()
    ref = make(tmp_path / "ref", "random")
    ref.run()
    assert csv(run_dir) == csv(tmp_path / "ref")


def test_save_on_request_also_while_paused(tmp_path: Path) -> None:
    controls = Controls(ControlState(paused=True))
    t = make(tmp_path / "run", "random", controls=controls, checkpoint_every=0)
    thread = t.start_thread()
    try:
        controls.step(10)
        deadline = time.monotonic() + 20
        while t.iteration < 10 and time.monotonic() < deadline:
            time.sleep(0.005)
        controls.request_save()  # the app's `s`, while paused
        while t.last_checkpoint_step != 80 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert t.last_checkpoint_step == 80 and "saved checkpoint at env step 80" in t.save_note
        assert read_checkpoint(tmp_path / "run" / "checkpoints" / LATEST)["trainer"]["iteration"] == 10
    finally:
        controls.stop()
        thread.join(timeout=10)


def test_save_request_without_a_run_directory_is_a_note_not_a_crash() -> None:
    controls = Controls(ControlState(paused=True))
    t = make(None, "random", controls=controls)
    controls.request_save()
    run_for(t, 3)
    assert t.stats.error is None and "no run directory" in t.save_note


def test_load_checkpoint_into_a_new_trainer(references: dict[str, Path], tmp_path: Path) -> None:
    """The app's --load: a trainer built for the same setup continues from the checkpoint."""
    src = tmp_path / "src"
    t = make(src, "qmix", controls=Controls(ControlState(paused=True)))
    run_for(t, 100)
    fresh = make(tmp_path / "new", "qmix")
    config = load_checkpoint_into(fresh, src)
    assert config["algo"] == "qmix" and fresh.env_steps == 800 and fresh.episodes == 4
    fresh.run()
    ref_rows = csv(references["qmix"]).decode().splitlines()
    new_rows = csv(tmp_path / "new").decode().splitlines()
    assert new_rows[0] == ref_rows[0]
    assert new_rows[1:] == [r for r in ref_rows[1:] if int(r.split(",")[0]) > 800]
    with pytest.raises(UserError, match="a checkpoint of qmix, not mappo"):
        load_checkpoint_into(make(None, "mappo"), src)


def test_run_load_opens_the_app_on_the_checkpoint(cli, references: dict[str, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`marl-tui run --load`: the app's run (in its training process) builds its trainer from the
    checkpoint, in a new run directory, and continues exactly; a run started later from the
    picker starts fresh; the checkpoint's own run directory is not written."""
    import typer

    from marl_tui import cli as cli_module
    from marl_tui.tui import app as app_module
    from marl_tui.tui import launch
    from marl_tui.tui.session import RunRequest, RunSession, no_run_dir

    src = tmp_path / "src"
    t = make(src, "qmix", controls=Controls(ControlState(paused=True)))
    run_for(t, 100)
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    built: dict[str, RunSession] = {}

    class App:  # MarlApp as far as `run --load` uses it: build the sessions it would build
        def __init__(self, request: RunRequest, device: str, **options: object) -> None:
            self.request = request

        def run(self) -> None:
            loaded = RunSession(self.request, run_dir=lambda r: tmp_path / "new",
                                controls=ControlState(paused=True))
            picked = RunSession(RunRequest(scenario=load_scenario("pricing"), algo="qmix", n_envs=8),
                                run_dir=no_run_dir, controls=ControlState(paused=True))
            for session in (loaded, picked):
                session.build()
                assert session.build_error is None, session.build_error
            built.update(loaded=loaded, picked=picked)
            raise typer.Exit(0)  # before launch's os._exit

    monkeypatch.setattr(cli_module, "require_terminal", lambda *a: None)
    monkeypatch.setattr(launch, "require_terminal", lambda *a: None)
    monkeypatch.setattr(app_module, "MarlApp", App)
    code, _, err = cli("run", "--load", src)
    assert code == 0, err
    loaded, picked = built["loaded"].source, built["picked"].source
    deadline = time.monotonic() + 60.0
    while not (loaded.status == picked.status == "paused") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert loaded.progress.env_steps == 800 and len(loaded.ready.history.episodes) == 4
    assert loaded.ready.total_steps == 1_600
    assert picked.progress.env_steps == 0
    assert (tmp_path / "new" / "config.toml").is_file()
    picked.stop(timeout=5.0)
    loaded.controls.resume()
    deadline = time.monotonic() + 60.0
    while loaded.status != "finished" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert loaded.status == "finished"
    loaded.stop(timeout=5.0)  # a finished run's process waits for the screen to let it go
    assert not loaded.alive
    ref_rows = csv(references["qmix"]).decode().splitlines()
    assert csv(tmp_path / "new").decode().splitlines() == [ref_rows[0]] + [
        r for r in ref_rows[1:] if int(r.split(",")[0]) > 800]
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before


# --------------------------------------------------------------------------- faults


def test_non_finite_parameters_are_never_saved(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    t = make(run_dir, "mappo", controls=Controls(ControlState(paused=True)))
    run_for(t, 40)
    good = (run_dir / "checkpoints" / LATEST).read_bytes()
    assert t.non_finite_parameter() is None
    with torch.no_grad():
        next(t.algo.policy.parameters()).view(-1)[0] = float("nan")
    bad = t.non_finite_parameter()
    assert bad is not None and bad.startswith("policy.")
    t.loop.step_count += 1
    with pytest.raises(TrainingFault, match="NaN/inf.*last good checkpoint \\(step 320\\) stays"):
        save_checkpoint(t)
    assert (run_dir / "checkpoints" / LATEST).read_bytes() == good
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [LATEST, "step-000000000320.pt"]


def test_nan_in_training_stops_cleanly_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    t = make(run_dir, "mappo", controls=Controls(ControlState(paused=True)), checkpoint_every=160)
    run_for(t, 40)
    r = resume(run_dir)
    with torch.no_grad():
        for p in r.algo.V.parameters():
            p.fill_(float("nan"))
    with pytest.raises(TrainingFault):
        r.run()
    assert r.stats.status == "error"
    assert "TrainingFault" in r.stats.error and "Part 7" in r.stats.error
    ckpt = read_checkpoint(run_dir / "checkpoints" / LATEST)
    assert ckpt["trainer"]["env_steps"] == 320
    from marl_tui.train.checkpoint import first_non_finite

    assert first_non_finite(ckpt["algorithm"]) is None


def test_headless_fault_exits_1_with_one_line(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from marl_tui.algos.mappo import MAPPO

    real = MAPPO.update
    calls = {"n": 0}

    def update(self: MAPPO) -> dict[str, float]:
        out = real(self)
        calls["n"] += 1
        return out | ({"value_loss": float("nan")} if calls["n"] >= 3 else {})

    monkeypatch.setattr(MAPPO, "update", update)
    out = tmp_path / "run"
    code, stdout, err = cli("train", "pricing", "--algo", "mappo", "--steps", "3000", "--envs", "8",
                            "--out", out, "--checkpoint-every", "256")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert "TrainingFault" in lines[0] and "value_loss" in lines[0] and str(out) in lines[0]
    assert "last good checkpoint at step" in lines[0] and "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "error" and "value_loss" in summary["error"]
    read_checkpoint(out / "checkpoints" / LATEST)


# --------------------------------------------------------------------------- the CLI end to end


def test_train_resume_eval_through_the_cli(cli, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, stdout, err = cli("train", "pricing", "--algo", "random", "--steps", "2000", "--envs", "8",
                            "--seed", "2", "--out", out)
    assert code == 0, err
    assert "team return per episode" in stdout and "oracle" in stdout  # the chart
    assert "greedy evaluation" in stdout and "\x1b[" not in stdout  # no colour codes in a pipe
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["checkpoint_step"] == 2000
    code, stdout, err = cli("resume", out, "--steps", "2400")
    assert code == 0, err
    assert "resuming random on pricing at step 2,000 of 2,400" in stdout
    # The closing figures are the whole run's: its steps and its training time over both parts.
    whole = json.loads((out / "summary.json").read_text())["wall_seconds_total"]
    assert whole > summary["wall_seconds_total"]
    head = re.search(r"greedy evaluation after 2,400 steps \(([\d.]+) s of training, ([\d,]+) steps/s, the "
                     r"whole run; resumed at step 2,000, this part took 400 steps in [\d.]+ s\):", stdout)
    assert head is not None, stdout
    assert float(head[1]) == pytest.approx(whole, abs=0.051)
    assert int(head[2].replace(",", "")) == pytest.approx(2400 / whole, rel=0.05, abs=1)
    assert "steps = 2400" in (out / "config.toml").read_text()
    code, stdout, err = cli("eval", out, "--episodes", "2")
    assert code == 0, err
    assert "mean_price" in stdout and "oracle" in stdout
    result = json.loads((out / "eval.json").read_text())
    assert result["env_steps"] == 2400 and result["episodes"] == 2 and result["copies"] == 2  # exactly 2
    assert set(result["kpis"]["mean_price"]) == {"learned", "oracle"}
    code, stdout, err = cli("eval", out / "checkpoints" / "step-000000002000.pt", "--json", "--episodes", "1")
    assert code == 0 and json.loads(stdout)["env_steps"] == 2000


def test_jsonl_output_is_one_object_per_line(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from marl_tui.headless import output

    monkeypatch.setattr(output, "PROGRESS_SECONDS", 0.0)
    code, stdout, err = cli("train", "pricing", "--algo", "random", "--steps", "800", "--envs", "8",
                            "--out", tmp_path / "run", "--jsonl")
    assert code == 0, err
    objects = [json.loads(line) for line in stdout.splitlines()]
    assert "summary" in objects[-1] and "kpis" in objects[-1]
    assert all("env_steps" in o or o.get("phase") == "evaluation" for o in objects[:-1])
    assert any(o.get("phase") == "evaluation" for o in objects)


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    from marl_tui.headless import run_headless

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    code = run_headless(load_scenario("pricing"), "random", steps=800, seed=None, n_envs=8, device="cpu",
                        out=tmp_path / "run", overrides={}, stream=stream)
    text = stream.getvalue()
    assert code == 0 and "100.0%" in text and "800/800 steps" in text and "oracle" in text


def test_tensorboard_event_files_when_installed(tmp_path: Path) -> None:
    if not tensorboard_available():
        pytest.skip("tensorboard is not installed (optional extra)")
    t = make(tmp_path / "run", "random")
    t.run()
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


def test_a_short_headless_run_without_a_terminal_shows_its_progress(tmp_path: Path) -> None:
    """Not a TTY: the run's last line says 100 %; and a line at every tenth of the budget, however
    fast the run (progress is driven here step by step: a real run's thread may end between two
    of the main thread's looks)."""
    import io

    from marl_tui.headless import run_headless
    from marl_tui.headless.output import Out, Progress

    stream = io.StringIO()
    code = run_headless(load_scenario("pricing"), "random", steps=8 * 400, seed=None, n_envs=8, device="cpu",
                        out=tmp_path / "run", overrides={}, stream=stream)
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("[")]
    assert code == 0 and lines[-1].startswith("[100.0%] step 3,200/3,200")
    stream = io.StringIO()
    t = make(None, "random", steps=8 * 400)
    progress = Progress(Out(stream), t, jsonl=False)
    while t.env_steps < t.total_steps:
        t.train_step()
        t.publish()
        progress.tick()
    progress.close()
    shown = [line.split("]")[0] for line in stream.getvalue().splitlines()]
    assert shown == ["[  0.2%"] + [f"[{p:5.1f}%" for p in range(10, 101, 10)], shown  # the first step, each tenth


def test_a_run_killed_before_its_first_checkpoint_starts_again_in_its_folder(tmp_path: Path) -> None:
    """`resume` says to train again with the same --out: that must work (its files go)."""
    from marl_tui.train.rundir import prepare_new

    run_dir = tmp_path / "run"
    t = make(run_dir, "random", checkpoint_every=10**9)
    t.checkpoint_every = 10**9
    checkpointer = next(c for c in t.callbacks if isinstance(c, Checkpointer))
    checkpointer.on_end = lambda run: None  # killed: nothing saved
    t.run()
    assert (run_dir / "metrics.csv").is_file() and (run_dir / "stream").is_dir()
    assert not any((run_dir / "checkpoints").iterdir())
    prepare_new(run_dir)
    assert {p.name for p in run_dir.iterdir()} <= {"checkpoints", "config.toml", "scenario.toml", ".lock"}
    (run_dir / "checkpoints" / "latest.pt").write_bytes(b"x")  # a run with a checkpoint is never reused
    with pytest.raises(UserError, match="already holds files"):
        prepare_new(run_dir)
