"""Shell completion: `--show-completion` prints a script, and scenarios, algorithms and devices complete."""

from __future__ import annotations

from pathlib import Path

import pytest

from marl_tui.cli import complete_algo, complete_device, complete_scenario
from marl_tui.config import ALGOS, DEVICES, bundled_names


def test_scenarios_complete_to_bundled_names_and_local_files(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert complete_scenario("") == bundled_names()
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "mine.toml").write_text("")
    assert complete_scenario("pri") == ["pricing", "pricing-guide", "pricing-logit"]
    assert complete_scenario("sc") == [str(Path("scenarios") / "mine.toml")]


def test_algorithms_and_devices_complete() -> None:
    assert complete_algo("") == list(ALGOS)
    assert complete_algo("ma") == ["maddpg", "mappo"]
    assert complete_algo("Q") == ["qmix"]  # --algo QMIX means qmix
    assert complete_device("c") == [d for d in DEVICES if d.startswith("c")] == ["cpu", "cuda"]


def test_show_completion_prints_a_script_for_marl_tui(cli) -> None:
    code, out, err = cli("--show-completion", "bash")
    assert code == 0, err
    assert "_MARL_TUI_COMPLETE=complete_bash" in out and out.rstrip().endswith("marl-tui")


@pytest.mark.parametrize(("words", "expected"), [
    ("marl-tui train pri", ["pricing", "pricing-guide", "pricing-logit"]),
    ("marl-tui run pricing --algo ma", ["maddpg", "mappo"]),
    ("marl-tui train pricing --device a", ["auto"]),
])
def test_the_shell_asks_and_gets_names(words: str, expected: list[str], cli,
                                       monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("_MARL_TUI_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", words)
    monkeypatch.setenv("COMP_CWORD", str(len(words.split()) - 1))
    code, out, err = cli()
    assert code == 0, err
    assert out.split() == expected
