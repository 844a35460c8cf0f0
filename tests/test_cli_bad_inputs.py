"""Bad input gets one clear line, exit code 2, no traceback, and nothing written over.

Runs the real CLI entry point (marl_tui.cli.main) in-process on the corpus under
tests/bad_inputs/ and on bad options, checkpoints and run directories made here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from marl_tui.config import load_scenario
from marl_tui.train.build import build_run
from marl_tui.train.checkpoint import read_checkpoint
from marl_tui.train.run_config import RunConfig
from marl_tui.train.rundir import init_run_dir, lock_run_dir

CORPUS = Path(__file__).parent / "bad_inputs"
SCENARIOS = sorted((CORPUS / "scenarios").glob("*.toml"))
BAD_CHECKPOINTS = sorted(p for p in (CORPUS / "checkpoints").iterdir() if p.suffix in (".pt", ".pkl"))


def snapshot(*roots: Path) -> dict[str, tuple[int, str]]:
    """Every file under the roots with its size and hash: 'nothing written over' is equality."""
    out = {}
    for root in roots:
        if root.is_file():
            files = [root]
        elif root.is_dir():
            files = [p for p in root.rglob("*") if p.is_file()]
        else:
            files = []
        for p in files:
            data = p.read_bytes()
            out[str(p)] = (len(data), hashlib.sha256(data).hexdigest())
    return out


def assert_refused(result: tuple[int, str, str], *words: str) -> str:
    code, out, err = result
    assert "Traceback" not in err + out
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    line = lines[0]
    assert line.startswith("marl-tui: error: "), line
    assert code == 2, (code, line)
    for w in words:
        assert w in line, f"{w!r} not in: {line}"
    return line


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny finished run (random baseline) with its checkpoint."""
    run_dir = tmp_path_factory.mktemp("runs") / "pricing-random"
    t = build_run(RunConfig(scenario=load_scenario("pricing"), algo="random", steps=400, n_envs=8,
                          seed=1, out_dir=run_dir))
    init_run_dir(t, run_dir)
    t.run()
    assert (run_dir / "checkpoints" / "latest.pt").is_file()
    return run_dir


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(finished_run, dst)
    return dst


def stopped_run(tmp_path: Path) -> Path:
    """A run stopped half way (budget 800, checkpoint at 400)."""
    run_dir = tmp_path / "stopped"
    t = build_run(RunConfig(scenario=load_scenario("pricing"), algo="random", steps=400, n_envs=8,
                          seed=1, out_dir=run_dir))
    init_run_dir(t, run_dir)
    t.run()
    ckpt = read_checkpoint(run_dir / "checkpoints" / "latest.pt")
    ckpt["config"]["total_steps"] = 800
    for p in (run_dir / "checkpoints").glob("*.pt"):
        p.unlink()
    torch.save(ckpt, run_dir / "checkpoints" / "latest.pt")
    config = run_dir / "config.toml"
    config.write_text(config.read_text().replace("steps = 400", "steps = 800"))
    return run_dir


# --------------------------------------------------------------------------- scenario files


def test_corpus_is_large_enough() -> None:
    assert len(SCENARIOS) >= 45
    assert len(BAD_CHECKPOINTS) >= 5


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_bad_scenario_file(path: Path, cli, workdir: Path) -> None:
    lines = path.read_bytes().decode("utf-8", "replace").splitlines()
    expects = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("# expect:")]
    assert expects, f"{path.name} has no '# expect:' line"
    args = [a for ln in lines if ln.startswith("# args:") for a in ln.split(":", 1)[1].split()]
    before = snapshot(CORPUS)
    out = workdir / "out"
    assert_refused(cli("train", path, *args, "--steps", "100", "--out", out), str(path), *expects)
    assert not out.exists()
    assert list(workdir.iterdir()) == []
    assert snapshot(CORPUS) == before


@pytest.mark.parametrize("path", SCENARIOS[:3], ids=[p.stem for p in SCENARIOS[:3]])
def test_bad_scenario_file_in_info_and_run(path: Path, cli, workdir: Path) -> None:
    assert_refused(cli("info", path), str(path))
    assert_refused(cli("run", path), str(path))


# --------------------------------------------------------------------------- options


BAD_OPTIONS = [
    (["train", "pricing", "--algo", "dqn"], ["unknown algorithm 'dqn'", "mappo"]),
    (["train", "pricing", "--algo", "mapo"], ["unknown algorithm 'mapo' (did you mean 'mappo'?)"]),
    (["train", "pricng"], ["no scenario named 'pricng' (did you mean 'pricing'?)"]),
    (["info", "pricing.toml"], ["scenario file pricing.toml does not exist (did you mean 'pricing'?)"]),
    # Integer ranges are Typer's (min/max from config's declarations), so Typer words them.
    (["train", "pricing", "--steps", "0"], ["'--steps'", "greater than or equal to 1"]),
    (["train", "pricing", "--steps", "-5"], ["'--steps'", "greater than or equal to 1"]),
    (["train", "pricing", "--steps", "abc"], ["--steps", "integer"]),
    (["train", "pricing", "--envs", "0"], ["'--envs'", "greater than or equal to 1"]),
    (["train", "pricing", "--envs", "2000000"], ["'--envs'", "less than or equal to 1000000"]),
    (["train", "pricing", "--seed", "-1"], ["'--seed'", "greater than or equal to 0"]),
    (["train", "pricing", "--gamma", "1.5"], ["--gamma 1.5", "must be >= 0 and < 1", "discount factor"]),
    (["train", "pricing", "--gamma", "-0.1"], ["--gamma -0.1", "must be >= 0 and < 1"]),
    (["train", "pricing", "--lr", "0"], ["--lr 0", "must be > 0 and <= 1", "learning rate"]),
    (["train", "pricing", "--algo", "qmix", "--explore", "-0.5"], ["--explore -0.5", "must be >= 0"]),
    (["train", "pricing", "--device", "tpu"], ["--device 'tpu'", "auto, cpu or cuda"]),
    (["train", "pricing", "--algo", "random", "--explore", "0.1"], ["--explore", "random"]),
    (["train", "pricing", "--checkpoint-every", "-1"], ["'--checkpoint-every'", "greater than or equal to 0"]),
    (["train", "pricing", "--bogus"], ["--bogus"]),
    (["train", "no-such-scenario"], ["no scenario named 'no-such-scenario'", "pricing"]),
    (["train", "missing/file.toml"], ["missing/file.toml", "does not exist"]),
    (["train", "pricing", "--algo", "oracle", "--steps", "10", "--envs", "2", "--seed", "x"], ["--seed"]),
    (["run", "pricing", "--algo", "dqn"], ["unknown algorithm 'dqn'"]),
    (["run", "pricing", "--steps", "0"], ["'--steps'", "greater than or equal to 1"]),
    (["run", "pricing", "--envs", "0"], ["'--envs'", "greater than or equal to 1"]),
    (["run", "pricing", "--gamma", "2"], ["--gamma 2"]),
    (["eval", "no/such/run"], ["no/such/run", "no such run directory"]),
    (["resume", "no/such/run"], ["no/such/run", "no such run directory"]),
    (["nosuchcommand"], ["nosuchcommand"]),
]


@pytest.mark.parametrize("args,words", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_option(args: list[str], words: list[str], cli, workdir: Path) -> None:
    if args[0] == "train":
        args = [*args, "--out", str(workdir / "out")]
    assert_refused(cli(*args), *words)
    assert list(workdir.iterdir()) == []


def test_cuda_without_gpu(cli, workdir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    assert_refused(cli("train", "pricing", "--device", "cuda", "--out", workdir / "out"),
                   "--device cuda", "--device cpu")
    assert list(workdir.iterdir()) == []


def test_out_folder_with_files_is_not_written_over(cli, workdir: Path, finished_run: Path) -> None:
    before = snapshot(finished_run)
    assert_refused(cli("train", "pricing", "--steps", "100", "--out", finished_run),
                   str(finished_run), "already holds files", "marl-tui resume")
    assert snapshot(finished_run) == before


def test_out_is_a_file(cli, workdir: Path) -> None:
    f = workdir / "afile"
    f.write_text("keep me")
    assert_refused(cli("train", "pricing", "--steps", "100", "--out", f), "a file with that name exists")
    assert f.read_text() == "keep me"


def test_out_cannot_be_written(cli, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Disk full (or a read-only folder) while the run directory is made: one line, no traceback."""
    import errno

    from marl_tui.train import rundir

    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(rundir, "atomic_write_bytes", full)
    out = workdir / "out"
    assert_refused(cli("train", "pricing", "--algo", "random", "--steps", "100", "--out", out),
                   f"--out {out}: cannot write", os.strerror(errno.ENOSPC), "choose another --out")


def test_pettingzoo_adapter_without_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """PettingZoo is an optional extra: without it the adapter says, in one line, how to get it."""
    import importlib

    from marl_tui.errors import UserError

    monkeypatch.setitem(sys.modules, "pettingzoo", None)  # `import pettingzoo` now fails
    monkeypatch.delitem(sys.modules, "marl_tui.envs.external.pettingzoo", raising=False)
    with pytest.raises(UserError) as err:
        importlib.import_module("marl_tui.envs.external.pettingzoo")
    line = str(err.value)
    assert err.value.exit_code == 2 and "\n" not in line
    assert "pip install 'marl-tui[pettingzoo]'" in line


# --------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("command", ["eval", "resume", "run-load"])
@pytest.mark.parametrize("path", BAD_CHECKPOINTS, ids=[p.name for p in BAD_CHECKPOINTS])
def test_bad_checkpoint_file(path: Path, command: str, cli, workdir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "victim"
    (run_dir / "checkpoints").mkdir(parents=True)
    target = run_dir / "checkpoints" / "latest.pt"
    shutil.copyfile(path, target)
    before = snapshot(run_dir)
    args = {"eval": ["eval", target], "resume": ["resume", run_dir],
            "run-load": ["run", "--load", target]}[command]
    line = assert_refused(cli(*args), str(target))
    assert any(w in line for w in ("refused", "not a marl-tui checkpoint", "not a readable checkpoint"))
    if path.stem == "code":
        assert "refused" in line and "code" in line
    assert snapshot(run_dir) == before
    assert not (workdir / "PWNED").exists() and not Path("PWNED").exists()
    assert list(workdir.iterdir()) == []


def test_truncated_checkpoint(cli, workdir: Path, run_copy: Path) -> None:
    latest = run_copy / "checkpoints" / "latest.pt"
    data = latest.read_bytes()
    for p in (run_copy / "checkpoints").glob("step-*.pt"):
        p.unlink()
    latest.unlink()  # a hard link to the step file: write a fresh, cut file
    latest.write_bytes(data[: len(data) // 2])
    before = snapshot(run_copy)
    assert_refused(cli("eval", run_copy), str(latest), "truncated")
    assert_refused(cli("resume", run_copy, "--steps", "10000"), str(latest), "truncated")
    assert snapshot(run_copy) == before


def _rewrite_checkpoint(run_dir: Path, change) -> Path:
    latest = run_dir / "checkpoints" / "latest.pt"
    ckpt = read_checkpoint(latest)
    change(ckpt)
    for p in (run_dir / "checkpoints").glob("*.pt"):
        p.unlink()
    torch.save(ckpt, latest)
    return latest


def test_checkpoint_from_a_newer_version(cli, workdir: Path, run_copy: Path) -> None:
    latest = _rewrite_checkpoint(run_copy, lambda c: c.update(version=99))
    before = snapshot(run_copy)
    for args in (["resume", run_copy, "--steps", "10000"], ["eval", run_copy], ["run", "--load", latest]):
        assert_refused(cli(*args), str(latest), "newer marl-tui", "format 99", "upgrade")
    assert snapshot(run_copy) == before


def test_incomplete_checkpoint(cli, workdir: Path, run_copy: Path) -> None:
    latest = _rewrite_checkpoint(run_copy, lambda c: c.pop("trainer"))
    before = snapshot(run_copy)
    assert_refused(cli("resume", run_copy, "--steps", "10000"), str(latest), "incomplete", "trainer")
    assert snapshot(run_copy) == before


def test_checkpoint_whose_networks_do_not_fit(cli, workdir: Path, run_copy: Path) -> None:
    def break_env(c: dict) -> None:
        c["env"] = {"nonsense": torch.zeros(1)}

    latest = _rewrite_checkpoint(run_copy, break_env)
    before = snapshot(run_copy)
    assert_refused(cli("resume", run_copy, "--steps", "10000"), str(latest), "does not fit")
    assert snapshot(run_copy) == before


def test_checkpoint_of_another_algorithm_or_scenario(cli, workdir: Path, finished_run: Path) -> None:
    latest = finished_run / "checkpoints" / "latest.pt"
    before = snapshot(finished_run)
    assert_refused(cli("run", "--load", latest, "--algo", "mappo"), str(latest),
                   "a checkpoint of random, not mappo")
    assert_refused(cli("run", "pricing-logit", "--load", latest), str(latest),
                   "differs", "model", "pricing-logit")
    assert_refused(cli("run", "warehouse", "--load", finished_run), str(latest), "differs", "kind")
    assert_refused(cli("run", "--load", latest, "--envs", "3"), "trained with 8 parallel copies")
    assert_refused(cli("run", "--load", latest, "--lr", "0.01"), "--lr cannot be combined with --load")
    assert_refused(cli("run", "--load", latest, "--steps", "100"), "--steps 100", "already at step 400")
    assert snapshot(finished_run) == before


def test_checkpoint_copied_into_another_run(cli, workdir: Path, run_copy: Path) -> None:
    config = run_copy / "config.toml"
    config.write_text(config.read_text().replace('algo = "random"', 'algo = "mappo"'))
    before = snapshot(run_copy)
    assert_refused(cli("resume", run_copy, "--steps", "10000"), "random", "mappo", "another run")
    assert snapshot(run_copy) == before


def test_checkpoint_of_another_scenario_in_a_run_directory(cli, workdir: Path, run_copy: Path) -> None:
    scenario = run_copy / "scenario.toml"
    scenario.write_text(scenario.read_text().replace("b = 2.0", "b = 3.0"))
    before = snapshot(run_copy)
    assert_refused(cli("resume", run_copy, "--steps", "10000"), "belongs to another run", "scenario")
    assert snapshot(run_copy) == before


def test_loose_checkpoint_cannot_be_resumed(cli, workdir: Path, finished_run: Path, tmp_path: Path) -> None:
    loose = tmp_path / "loose.pt"
    shutil.copyfile(finished_run / "checkpoints" / "latest.pt", loose)
    assert_refused(cli("resume", loose, "--steps", "10000"), str(loose), "run directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "loose.pt"]


# --------------------------------------------------------------------------- run directories


def test_half_written_run_directory(cli, workdir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "half"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.toml").write_text('[run]\nalgo = "mappo"\n')
    (run_dir / "metrics.csv").write_text("env_steps,episodes\n200,1\n")
    before = snapshot(run_dir)
    assert_refused(cli("resume", run_dir), str(run_dir), "no checkpoint", "marl-tui train")
    assert_refused(cli("eval", run_dir), str(run_dir), "no checkpoint")
    assert snapshot(run_dir) == before


def test_folder_that_is_not_a_run(cli, workdir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_refused(cli("resume", empty), str(empty), "not a marl-tui run directory")
    assert list(empty.iterdir()) == []


def test_eval_device(cli, workdir: Path, finished_run: Path) -> None:
    """eval takes --device like every command whose messages suggest it."""
    before = snapshot(finished_run)
    assert_refused(cli("eval", finished_run, "--device", "tpu"), "--device 'tpu'", "auto, cpu or cuda")
    assert snapshot(finished_run) == before
    code, out, err = cli("eval", finished_run, "--device", "cpu", "--episodes", "1")
    assert code == 0 and "mean_price" in out, err


def test_finished_run_needs_a_larger_budget(cli, workdir: Path, finished_run: Path) -> None:
    before = snapshot(finished_run)
    assert_refused(cli("resume", finished_run), "finished", "400 of 400", "--steps")
    assert_refused(cli("resume", finished_run, "--steps", "400"), "--steps 400", "already at step 400")
    assert_refused(cli("resume", finished_run, "--steps", "0"), "'--steps'", "greater than or equal to 1")
    assert_refused(cli("eval", finished_run, "--episodes", "0"), "--episodes 0")
    assert snapshot(finished_run) == before


def test_run_directory_in_use(cli, workdir: Path, tmp_path: Path) -> None:
    run_dir = stopped_run(tmp_path)
    lock = lock_run_dir(run_dir)  # another process training into it
    try:
        before = snapshot(run_dir)
        assert_refused(cli("resume", run_dir), str(run_dir), f"pid {os.getpid()}", "another marl-tui process")
        assert snapshot(run_dir) == before
    finally:
        lock.close()


# --------------------------------------------------------------------------- the app without a terminal


def test_app_needs_a_terminal(cli, workdir: Path, finished_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class NotATTY:
        def isatty(self) -> bool:
            return False

    monkeypatch.setattr(sys, "stdin", NotATTY())
    assert_refused(cli("run", "pricing"), "needs a terminal", "marl-tui train")
    assert_refused(cli(), "needs a terminal")
    before = snapshot(finished_run)
    assert_refused(cli("run", "--load", finished_run), "needs a terminal")
    assert snapshot(finished_run) == before
    assert list(workdir.iterdir()) == []


def test_terminal_too_small(tmp_path: Path) -> None:
    """Under a real but tiny pseudo-terminal `marl-tui run` refuses, in one line."""
    import pty
    import select
    import struct
    import subprocess

    fcntl = pytest.importorskip("fcntl")
    termios = pytest.importorskip("termios")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 8, 30, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "marl_tui", "run", "pricing"], stdin=slave,
                            stdout=slave, stderr=subprocess.PIPE, cwd=tmp_path,
                            env={**os.environ, "TERM": "xterm-256color", "OMP_NUM_THREADS": "1"})
    os.close(slave)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the app started in a 30x8 terminal instead of refusing")
    finally:
        while select.select([master], [], [], 0)[0]:
            try:
                if not os.read(master, 4096):
                    break
            except OSError:
                break
        os.close(master)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in err.decode(), err.decode()
    assert "30x8" in lines[0] and "at least" in lines[0]
    assert list(tmp_path.iterdir()) == []
