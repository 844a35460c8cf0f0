"""Tests run single-threaded: small tensors are faster that way on a 2-core machine, and it
keeps CPU results identical from run to run."""

import sys
from pathlib import Path

import pytest
import torch

from marl_tui.cli import main

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def own_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Reference answers are cached under XDG_CACHE_HOME (catalogue.py): the tests use a cache of
    their own, not the user's (subprocesses inherit it)."""
    import os

    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run the real `marl-tui` entry point in-process: returns (exit code, stdout, stderr)."""

    def call(*args: object) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["marl-tui", *map(str, args)])
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            main()
        out, err = capsys.readouterr()
        return int(exc.value.code or 0), out, err

    return call


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean current directory: nothing may appear in it (no runs/, no PWNED)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd
