"""Hostile inputs and faults at the edges (issue 14): crafted checkpoints (zip bombs, unpickler
errors, NaN weights, stored settings out of range), run directories that were tampered with,
options that blame the wrong thing, a full disk while checkpointing, the memory estimate, the
bounded evaluation, and a property test over scenario files and CLI values.

Every refusal is one line on stderr, exit code 2, no traceback, nothing written over. Every
crafted file is made here, small, in a temporary folder.
"""

from __future__ import annotations

import errno
import io
import itertools
import os
import resource
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marl_tui.config import load_scenario
from marl_tui.text import printable
from marl_tui.train.build import build_run
from marl_tui.train.checkpoint import LATEST, read_checkpoint
from marl_tui.train.run_config import RunConfig
from marl_tui.train.rundir import init_run_dir
from tests.test_cli_bad_inputs import assert_refused, snapshot


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny finished MAPPO run (its networks are what the NaN test poisons)."""
    run_dir = tmp_path_factory.mktemp("hostile") / "pricing-mappo"
    t = build_run(RunConfig(scenario=load_scenario("pricing"), algo="mappo", steps=512, n_envs=8,
                            seed=3, out_dir=run_dir))
    init_run_dir(t, run_dir)
    t.run()
    return run_dir


@pytest.fixture
def run_copy(finished: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(finished, dst)
    return dst


def rewrite(run_dir: Path, change) -> Path:
    """The run's checkpoint, changed and saved back as its only checkpoint."""
    latest = run_dir / "checkpoints" / LATEST
    ckpt = {k: v for k, v in read_checkpoint(latest).items()}
    change(ckpt)
    for p in (run_dir / "checkpoints").glob("*.pt"):
        p.unlink()
    torch.save(ckpt, latest)
    return latest


def torch_zip(path: Path, pickle_bytes: bytes, extra: dict[str, bytes] | None = None,
              compress: int = zipfile.ZIP_STORED) -> Path:
    """A zip laid out as torch.save lays it out, with the given pickle."""
    with zipfile.ZipFile(path, "w", compression=compress) as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        z.writestr("archive/version", "3\n")
        z.writestr("archive/byteorder", "little")
        for name, data in (extra or {}).items():
            z.writestr(f"archive/data/{name}", data)
    return path


# --------------------------------------------------------------------------- checkpoints


def crafted_checkpoints(tmp: Path) -> dict[str, tuple[Path, list[str]]]:
    """Files that must never load, with words their refusal must hold."""
    out: dict[str, tuple[Path, list[str]]] = {}
    # S2: a few kilobytes that inflate to 64 MiB (the real attack: 6 MB to 6 GiB).
    bomb = torch_zip(tmp / "bomb.pt", b"\x80\x02}q\x00.", {"0": bytes(64 << 20)}, zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1 << 20
    out["zip-bomb"] = (bomb, ["refused", "compressed"])
    many = tmp / "many.pt"
    with zipfile.ZipFile(many, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        for i in range(10_001):
            z.writestr(f"archive/data/{i}", b"")
    out["too-many-entries"] = (many, ["refused", "archive entries"])
    out["unpickler-IndexError"] = (torch_zip(tmp / "index.pt", b"\x80\x02a."), ["not a readable checkpoint",
                                                                              "IndexError"])
    out["unpickler-KeyError"] = (torch_zip(tmp / "key.pt", b"\x80\x02h\x05."), ["not a readable checkpoint"])
    out["no-pickle"] = (torch_zip(tmp / "nopickle.pt", b"").with_name("nopickle.pt"), ["not a readable"])
    text = tmp / "text.pt"
    text.write_bytes(b"PK\x03\x04 this starts like a zip and is not one\n")
    out["zip-magic-text"] = (text, ["truncated or damaged"])
    legacy = tmp / "legacy.pt"
    buf = io.BytesIO()
    torch.save({"format": "marl-tui checkpoint"}, buf, _use_new_zipfile_serialization=False)
    legacy.write_bytes(buf.getvalue())
    out["legacy-format"] = (legacy, ["not a marl-tui checkpoint"])
    return out


@pytest.mark.parametrize("name", ["zip-bomb", "too-many-entries", "unpickler-IndexError", "unpickler-KeyError",
                                  "no-pickle", "zip-magic-text", "legacy-format"])
@pytest.mark.parametrize("command", ["eval", "resume", "run-load"])
def test_crafted_checkpoint(name: str, command: str, cli, workdir: Path, tmp_path: Path) -> None:
    src, words = crafted_checkpoints(tmp_path)[name]
    run_dir = tmp_path / "victim"
    (run_dir / "checkpoints").mkdir(parents=True)
    target = run_dir / "checkpoints" / LATEST
    shutil.copyfile(src, target)
    before = snapshot(run_dir)
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    args = {"eval": ["eval", target], "resume": ["resume", run_dir], "run-load": ["run", "--load", target]}
    assert_refused(cli(*args[command]), str(target), *words)
    # The bomb was never inflated: this process grew by far less than its 64 MiB.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - ru < 32 << 10
    assert snapshot(run_dir) == before
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/null", "/etc/passwd", "/proc/self/status"])
def test_latest_linked_to_a_system_file(target: str, cli, workdir: Path, tmp_path: Path) -> None:
    if not Path(target).exists():
        pytest.skip(f"{target} is not on this system")
    run_dir = tmp_path / "linked"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / LATEST).symlink_to(target)
    for args in (["eval", run_dir], ["resume", run_dir], ["run", "--load", run_dir]):
        line = assert_refused(cli(*args), LATEST)
        assert any(w in line for w in ("not a regular file", "not a marl-tui checkpoint", "damaged"))


def test_checkpoint_with_nan_weights_does_not_evaluate(cli, workdir: Path, run_copy: Path) -> None:
    def poison(c: dict) -> None:
        w = c["algorithm"]["policy"]
        key = next(k for k, v in w.items() if v.is_floating_point())
        w[key] = w[key].clone().fill_(float("nan"))

    latest = rewrite(run_copy, poison)
    before = snapshot(run_copy)
    for args in (["eval", run_copy], ["resume", run_copy, "--steps", "4096"], ["run", "--load", latest]):
        assert_refused(cli(*args), str(latest), "NaN/inf", "algorithm.policy")
    assert snapshot(run_copy) == before


STORED = [
    # S1: the stored config asks for 10**8 copies: refused before anything is built.
    (lambda c: c["config"].update(n_envs=10**8), ["its stored config.envs = 100000000", "out of range"]),
    (lambda c: c["config"].update(total_steps=0), ["its stored config.steps = 0"]),
    (lambda c: c["config"].update(seed=-5), ["its stored config.seed = -5"]),
    (lambda c: c["config"].update(device="tpu"), ["its stored config.device"]),
    (lambda c: c["config"]["hyperparameters"].update(epochs=10**9), ["train.mappo.epochs", "out of range"]),
    (lambda c: (c["config"].update(n_envs=10**6), c["config"]["hyperparameters"].update(rollout_length=100_000)),
     ["its stored", "of memory"]),
    (lambda c: c["scenario"].update(text=c["scenario"]["text"].replace("parallel_envs = 256",
                                                                       "parallel_envs = 0")),
     ["its saved scenario", "'parallel_envs' = 0"]),
]


@pytest.mark.parametrize("change,words", STORED, ids=[w[0] for _, w in STORED])
def test_bad_values_inside_a_checkpoint_blame_the_checkpoint(change, words: list[str], cli, workdir: Path,
                                                            run_copy: Path) -> None:
    latest = rewrite(run_copy, change)
    before = snapshot(run_copy)
    for args in (["eval", run_copy], ["resume", run_copy, "--steps", "4096"], ["run", "--load", latest]):
        line = assert_refused(cli(*args), str(latest), *words)
        assert "--envs" not in line and "--steps" not in line.split(str(latest))[1]
    assert snapshot(run_copy) == before


def test_checkpoint_larger_than_its_settings_could_write(cli, workdir: Path, run_copy: Path) -> None:
    latest = rewrite(run_copy, lambda c: c["trainer"].update(padding=torch.zeros(40 << 20)))
    before = snapshot(run_copy)
    assert_refused(cli("eval", run_copy), str(latest), "refused", "writes at most")
    assert snapshot(run_copy) == before


# --------------------------------------------------------------------------- run directories


def test_metrics_csv_of_random_bytes(cli, workdir: Path, run_copy: Path) -> None:
    latest = rewrite(run_copy, lambda c: c["config"].update(total_steps=4096))
    config = run_copy / "config.toml"
    config.write_text(config.read_text().replace("steps = 512", "steps = 4096"))
    for data in (os.urandom(4096), b"\x00" * 100, b"\xff\xfe garbage", b"not,a,metrics,file\n1,2,3,4\n"):
        (run_copy / "metrics.csv").write_bytes(data)
        before = snapshot(run_copy)
        assert_refused(cli("resume", run_copy), "metrics.csv", "not a metrics.csv marl-tui wrote", "move it aside")
        assert snapshot(run_copy) == before
    assert latest.is_file()


@pytest.mark.parametrize("edit,words", [
    (('seed = 3', 'seed = 4'), ["run.seed = 4 was edited", "(the run has 3)", "undo the edit"]),
    (('envs = 8', 'envs = 64'), ["run.envs = 64 was edited"]),
    (('lr = 0.002', 'lr = 0.5'), ["hyperparameters.lr = 0.5 was edited"]),
    (('[run]', '[run]\nextra = 1'), ["run.extra = 1 was edited"]),
    (('[run]', '[run'), ["not valid TOML"]),
])
def test_edits_to_config_toml_are_refused(edit: tuple[str, str], words: list[str], cli, workdir: Path,
                                          run_copy: Path) -> None:
    config = run_copy / "config.toml"
    assert edit[0] in config.read_text()
    config.write_text(config.read_text().replace(edit[0], edit[1], 1))
    before = snapshot(run_copy)
    assert_refused(cli("resume", run_copy, "--steps", "1024"), str(config), *words)
    assert snapshot(run_copy) == before


def test_an_edited_budget_in_config_toml_is_honoured(cli, workdir: Path, run_copy: Path) -> None:
    config = run_copy / "config.toml"
    config.write_text(config.read_text().replace("steps = 512", "steps = 1024"))
    code, _, err = cli("resume", run_copy)
    assert code == 0, err
    assert read_checkpoint(run_copy / "checkpoints" / LATEST)["trainer"]["env_steps"] == 1024
    config.write_text(config.read_text().replace("steps = 1024", "steps = 256"))
    assert_refused(cli("resume", run_copy), "run.steps = 256", "already at step 1,024")


def test_a_start_up_that_never_finished_can_be_started_again(cli, workdir: Path, tmp_path: Path) -> None:
    """What a kill during start-up may leave (scenario.toml, config.toml, an empty checkpoints/):
    resume says to start again, and the same --out starts again."""
    out = tmp_path / "half"
    (out / "checkpoints").mkdir(parents=True)
    (out / "scenario.toml").write_text("half")
    (out / "config.toml").write_text("[run]\n")
    assert_refused(cli("resume", out), "no checkpoint", f"--out {out}")
    code, _, err = cli("train", "pricing", "--algo", "random", "--steps", "64", "--envs", "8", "--out", out)
    assert code == 0, err
    assert (out / "checkpoints" / LATEST).is_file()


# --------------------------------------------------------------------------- options, paths, text


def test_paths_that_are_not_scenario_files(cli, workdir: Path) -> None:
    folder = workdir / "folder.toml"
    folder.mkdir()
    assert_refused(cli("train", folder), "is a folder, not a file")
    fifo = workdir / "pipe.toml"
    os.mkfifo(fifo)
    assert_refused(cli("info", fifo), "not a regular file")  # never opened: reading would block
    assert_refused(cli("info", "/dev/zero"), "not a regular file")
    long = "x" * 300 + ".toml"
    assert_refused(cli("info", long), "cannot use this path", "too long")
    assert_refused(cli("train", "pricing", "--out", workdir / ("y" * 300) / "run"), "cannot use it", "too long")
    assert_refused(cli("train", "../" * 3 + "etc"), "scenario file")
    assert_refused(cli("train", "x" * 300), "no scenario named")
    assert sorted(p.name for p in workdir.iterdir()) == ["folder.toml", "pipe.toml"]


def test_a_utf8_bom_is_read(cli, workdir: Path) -> None:
    text = (Path(load_scenario("pricing").source).name, load_scenario("pricing").text)[1]
    f = workdir / "bom.toml"
    f.write_bytes(b"\xef\xbb\xbf" + text.replace('name = "pricing"', 'name = "bom"').encode())
    code, out, err = cli("info", f)
    assert code == 0 and out.startswith("bom (pricing)"), err


@pytest.mark.parametrize("args,words", [
    (["--explore", "nan"], ["--explore nan", "finite"]),
    (["--explore", "inf"], ["--explore inf", "finite"]),
    (["--lr", "nan"], ["--lr nan", "finite"]),
    (["--gamma", "-inf"], ["--gamma -inf", "finite"]),
    (["--explore", "1e308"], ["--explore 1e+308", "must be"]),
    (["--algo", "maddpg", "--explore", "5"], ["--explore 5", "<= 1"]),
    (["--algo", "random", "--envs", "1000000"], ["of memory", "--envs"]),
])
def test_option_errors_name_the_option(args: list[str], words: list[str], cli, workdir: Path) -> None:
    line = assert_refused(cli("train", "pricing", *args, "--steps", "64", "--out", workdir / "o"), *words)
    assert "scenarios/pricing.toml" not in line
    assert list(workdir.iterdir()) == []


def test_escape_sequences_never_reach_the_terminal(cli, workdir: Path) -> None:
    evil = "\\u001b]52;c;SGVsbG8=\\u0007 \\u001b[2J \\u009b31m \\u202e"
    text = load_scenario("pricing").text.replace('name = "pricing"', 'name = "evil"')
    text = text.replace(text.split("description = ")[1].split("\n")[0], f'"{evil}"')
    (workdir / "scenarios").mkdir()
    f = workdir / "scenarios" / "evil.toml"
    f.write_text(text)
    for args in (["info", f], ["scenarios"]):
        code, out, err = cli(*args)
        assert code == 0, err
        assert not any(c in out + err for c in "\x1b\x07\x9b\u202e"), repr(out)
    broken = workdir / "bad\x1b[2J.toml"
    broken.write_text("x = [")
    line = assert_refused(cli("info", broken))
    assert "\x1b" not in line


def test_printable() -> None:
    assert printable("a\x1b]52;c;SGVsbG8=\x07b") == "ab"
    assert printable("a\x1b[31mred\x1b[0m\tz\nq") == "ared z q"
    assert printable("x\u202ey\x9b2Jz\x00") == "xyz"
    assert printable("é 中 ✓") == "é 中 ✓"


# --------------------------------------------------------------------------- faults while training


def test_full_disk_while_checkpointing(cli, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second checkpoint's write fails with ENOSPC part way: one warning line saying so, the
    first checkpoint stays whole, training goes on to the end."""
    from marl_tui.train import checkpoint

    real = checkpoint.atomic_write
    writes = []

    def full_after_first(path: Path, write) -> None:
        writes.append(path)
        if len(writes) == 1:
            return real(path, write)

        class Full(io.RawIOBase):
            def __init__(self, f) -> None:
                self.f, self.n = f, 0

            def writable(self) -> bool:
                return True

            def write(self, b) -> int:
                self.n += len(b)
                if self.n > 1000:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return self.f.write(b)

        return real(path, lambda f: write(Full(f)))

    monkeypatch.setattr(checkpoint, "atomic_write", full_after_first)
    out = workdir / "run"
    code, _, err = cli("train", "pricing", "--algo", "random", "--steps", "256", "--envs", "8",
                       "--checkpoint-every", "64", "--out", out)
    assert code == 0, err
    assert "Traceback" not in err and "unexpected pos" not in err
    warning = [ln for ln in err.splitlines() if "no space left on device" in ln]
    assert warning and "the last good checkpoint (step 64) is kept" in warning[0]
    assert "training goes on" in warning[0]
    assert read_checkpoint(out / "checkpoints" / LATEST)["trainer"]["env_steps"] == 64
    assert not list((out / "checkpoints").glob(".*.tmp"))


# --------------------------------------------------------------------------- memory and evaluation


def test_memory_estimate_names_the_knob(monkeypatch: pytest.MonkeyPatch) -> None:
    from marl_tui.errors import UserError
    from marl_tui.train import budget

    sc = load_scenario("pricing")
    needs = budget.check_budget(RunConfig(scenario=sc, algo="qmix"))
    total = sum(n.bytes for n in needs)
    assert 10 << 20 < total < 1 << 30  # the bundled scenario: tens of MiB
    big = budget.check_budget(RunConfig(scenario=sc, algo="qmix", overrides={"buffer_size": 10**7}))
    assert max(big, key=lambda n: n.bytes).knob == "train.qmix.buffer_size = 10,000,000"
    monkeypatch.setattr(budget, "available_memory", lambda: total // 2)
    with pytest.raises(UserError, match=r"QMIX on pricing would need about .* of memory .* lower "):
        budget.check_budget(RunConfig(scenario=sc, algo="qmix"))


def test_available_memory_is_known() -> None:
    from marl_tui.train.budget import available_memory

    avail = available_memory()
    assert avail is None or avail > 0


def test_a_checkpoint_that_needs_more_memory_than_the_machine(cli, workdir: Path, run_copy: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from marl_tui.train import budget

    monkeypatch.setattr(budget, "available_memory", lambda: 1 << 20)
    latest = run_copy / "checkpoints" / LATEST
    before = snapshot(run_copy)
    assert_refused(cli("eval", run_copy), str(latest), "its stored", "of memory", "available")
    assert snapshot(run_copy) == before


def test_the_final_evaluation_is_bounded_by_the_budget() -> None:
    from marl_tui.train.evaluation import EVALUATION_FLOOR, evaluation_cap, plan_evaluation

    assert evaluation_cap(20_000, 8) == EVALUATION_FLOOR
    assert evaluation_cap(10**8, 100) == 250_000
    plan = plan_evaluation(4, 100_000, evaluation_cap(20_000, 8), 8)
    assert plan.partial and plan.steps == EVALUATION_FLOOR
    assert plan_evaluation(4, 25, 1_000, 1).episodes == 4
    assert plan_evaluation(100, 25, 1_000, 1).episodes == 40


def test_evaluation_plays_exactly_the_episodes_asked() -> None:
    from marl_tui.train.evaluation import plan_evaluation

    plan = plan_evaluation(100, 25, 10**9, 32)  # 25 copies x 4 rounds: no copy plays a spare episode
    assert (plan.episodes, plan.copies, plan.steps) == (100, 25, 100)
    assert plan_evaluation(7, 25, 10**9, 32).copies == 7
    assert plan_evaluation(13, 25, 10**9, 4).copies == 1 and plan_evaluation(13, 25, 10**9, 4).episodes == 13
    assert plan_evaluation(128, 25, 10**9, 32).copies == 32


def test_a_long_episode_evaluates_part_of_one(cli, workdir: Path) -> None:
    text = load_scenario("pricing").text.replace("episode_length = 25", "episode_length = 100000")
    f = workdir / "long.toml"
    f.write_text(text.replace('name = "pricing"', 'name = "long"'))
    code, out, err = cli("train", f, "--algo", "random", "--steps", "64", "--envs", "2", "--out", workdir / "run")
    assert code == 0, err
    assert "the first 1,000 steps of one episode" in out


# --------------------------------------------------------------------------- property test


VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 10**9, 10**12, 1e308, -1e308, 1e-300, 0.0]),
    st.text(max_size=20), st.booleans(), st.lists(st.integers(0, 5), max_size=3),
)
KEYS = {
    "pricing": ["agents", "episode_length", "parallel_envs", "seed", "model.a", "model.b", "model.g",
                "model.cost", "model.mu", "model.price_min", "model.price_max", "model.action_levels",
                "model.reward_scale", "model.demand", "train.mappo.epochs", "train.mappo.hidden",
                "train.mappo.init_log_std", "train.mappo.huber_delta", "train.mappo.rollout_length",
                "train.qmix.buffer_size", "train.qmix.batch_size", "train.maddpg.updates_per_step"],
    "warehouse": ["model.base_demand", "model.amplitude", "model.price", "model.shortage_cost",
                  "model.demand_history", "model.action_levels", "model.truck_capacity"],
}


_EXAMPLES = itertools.count()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(sorted(KEYS)), data=st.data(),
       algo=st.sampled_from(["random", "mappo", "qmix", "maddpg"]),
       envs=st.one_of(st.none(), st.integers(1, 8), st.just(10**6), st.integers(-3, 0)),
       lr=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
       steps=st.integers(1, 48))
def test_any_scenario_file_or_value_gets_a_run_or_one_line(kind: str, data, algo: str, envs, lr, steps: int,
                                                          cli, tmp_path: Path) -> None:
    import tomllib

    key = data.draw(st.sampled_from(KEYS[kind]))
    value = data.draw(VALUES)
    sc = load_scenario(kind)
    doc = tomllib.loads(sc.text)
    *tables, last = key.split(".")
    table = doc
    for t in tables:
        table = table.setdefault(t, {})
    table[last] = value
    import tomli_w

    n = next(_EXAMPLES)  # tmp_path is shared by the examples: each its own file and run directory
    f = tmp_path / f"h{n}.toml"
    f.write_text(tomli_w.dumps(doc))
    out = tmp_path / f"run{n}"
    args = ["train", f, "--algo", algo, "--steps", steps, "--out", out, "--checkpoint-every", "0"]
    args += [] if envs is None else ["--envs", envs]
    args += [] if lr is None else ["--lr", repr(lr)]
    code, stdout, err = cli(*args)
    assert "Traceback" not in stdout + err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("marl-tui: error: "), err
        assert not out.exists()
    else:
        assert code == 0, err
    # Bounded memory: no example came near what a refused size would have taken.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 3 << 20  # KiB: 3 GiB
