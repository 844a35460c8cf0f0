"""Continuing from a checkpoint: rebuild its trainer, restore its state, refuse what does not fit.

checkpoint.py owns the file (what a checkpoint holds, writing and reading it); this module
owns what a reader does with one:

    run_config_from(ckpt, ...)      the RunConfig that rebuilds the checkpoint's trainer
    restore / restore_state         load a checkpoint into a trainer built from that config
    load_algorithm                  only the algorithm (`marl-tui eval`: greedy play)
    trainer_from_checkpoint         both at once
    check_compatible                refuse another algorithm, scenario or number of copies
    check_belongs                   refuse a checkpoint copied into another run's folder
    steps_in_config_file            the budget an edited config.toml asks for (other edits refused)
    load_checkpoint_into            `run --load`: a checkpoint into a trainer built for it
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import torch

from marl_tui.config import Scenario
from marl_tui.errors import UserError
from marl_tui.train.budget import check_budget, gib
from marl_tui.train.build import build_run
from marl_tui.train.checkpoint import (
    find_checkpoint,
    first_line,
    read_checkpoint,
    scenario_of,
    set_rng_state,
)
from marl_tui.train.controls import Controls
from marl_tui.train.run import Run
from marl_tui.train.run_config import RunConfig

# Besides what the estimate counts, a checkpoint holds histories, metrics rows and generator
# states: a few megabytes at most.
SLACK_BYTES = 64 << 20


def run_config_from(ckpt: dict[str, Any], path: Path, *, out_dir: Path | None,
                    steps: int | None = None, device: str | None = None) -> RunConfig:
    """The RunConfig that rebuilds the checkpoint's trainer (same hyperparameters exactly).

    device None: where it trained (cuda, or cpu)."""
    from marl_tui.algos.registry import algorithm_class

    cfg = ckpt["config"]
    algo = cfg["algo"]
    try:
        cls = algorithm_class(algo)
    except UserError:
        raise UserError(f"{path}: a checkpoint of algorithm {algo!r}, which this marl-tui does "
                        "not have") from None
    fields = {f.name for f in dataclasses.fields(cls.Hyperparameters) if f.init}  # type: ignore[attr-defined]
    overrides = {k: v for k, v in cfg["hyperparameters"].items() if k in fields}
    saved_device = cfg["device"]
    if device is None:
        device = "cuda" if saved_device.startswith("cuda") else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise UserError(f"{path}: this run trained on {saved_device}, and no CUDA GPU is visible "
                            "here; add --device cpu to continue on the CPU")
    config = RunConfig(
        scenario=scenario_of(ckpt, path), algo=algo,
        steps=int(cfg["total_steps"]) if steps is None else steps,
        seed=int(cfg["seed"]), n_envs=int(cfg["n_envs"]), device=device,
        overrides=overrides, out_dir=out_dir, checkpoint_every=cfg.get("checkpoint_every"),
    )
    # Before anything is built from it: the stored settings fit this machine, and the file holds
    # no more than a run of those settings could have written.
    needs = check_budget(config, origin=str(path))
    implied = sum(n.bytes for n in needs) + SLACK_BYTES
    held = path.stat().st_size
    if held > implied:
        raise UserError(f"{path}: refused: it holds {gib(held)}, and a run of its stored settings "
                        f"writes at most about {gib(implied)}; it was not written by marl-tui")
    return config


def _does_not_fit(trainer: Run, ckpt: dict[str, Any], path: Path, exc: BaseException) -> UserError:
    """The one line for a checkpoint whose state a trainer cannot take."""
    saved = str(ckpt["config"].get("device", "cpu"))
    if saved.split(":")[0] != trainer.device.type:
        return UserError(f"{path}: trained on {saved}, and its generator states do not carry over "
                         f"to {trainer.device}; continue with --device {saved.split(':')[0]}")
    return UserError(
        f"{path}: does not fit {trainer.run_config.algo} on {trainer.scenario.name} "
        f"({type(exc).__name__}: {first_line(exc)}); it is damaged or from another setup"
    )


def load_algorithm(trainer: Run, ckpt: dict[str, Any], path: Path) -> None:
    """Only the algorithm's state (networks, optimisers, buffers, generators); UserError if it
    does not fit the trainer."""
    try:
        trainer.algo.load_state_dict(ckpt["algorithm"])
    except Exception as exc:  # noqa: BLE001 - a state that does not fit (or is crafted) raises anything
        raise _does_not_fit(trainer, ckpt, path, exc) from None


def restore_state(trainer: Run, ckpt: dict[str, Any], path: Path) -> None:
    """Everything but metrics.csv: algorithm, env, loop state, global RNGs (no file changes)."""
    load_algorithm(trainer, ckpt, path)
    try:
        trainer.env.set_state(ckpt["env"])
        trainer.load_loop_state(ckpt["trainer"])
    except Exception as exc:  # noqa: BLE001 - a state that does not fit (or is crafted) raises anything
        raise _does_not_fit(trainer, ckpt, path, exc) from None
    try:
        set_rng_state(ckpt["rng"])
    except Exception as exc:  # noqa: BLE001 - whatever a damaged state raises
        raise UserError(f"{path}: its random-generator states are damaged ({first_line(exc)})") from None


def restore(trainer: Run, ckpt: dict[str, Any], path: Path, keep_rows: bool) -> str | None:
    """Load a validated checkpoint into a trainer built from the same config.

    keep_rows: the trainer writes into the run directory the checkpoint came from (resume):
    metrics.csv is cut back to the rows written when the checkpoint was taken.
    Returns a warning line, or None.
    """
    restore_state(trainer, ckpt, path)
    return trainer.metrics_writer.restore(ckpt["metrics_writer"], keep_rows, trainer.env_steps)


def trainer_from_checkpoint(path: Path, *, out_dir: Path | None = None, steps: int | None = None,
                            device: str | None = None, controls: Controls | None = None,
                            keep_rows: bool = False) -> tuple[Run, dict[str, Any]]:
    """Build the checkpoint's trainer and restore it. Returns (trainer, checkpoint)."""
    ckpt = read_checkpoint(path)
    trainer = build_run(run_config_from(ckpt, path, out_dir=out_dir, steps=steps, device=device),
                      controls=controls)
    restore(trainer, ckpt, path, keep_rows=keep_rows)
    return trainer, ckpt


def check_compatible(ckpt: dict[str, Any], path: Path, algo: str, scenario: Scenario,
                     n_envs: int | None = None) -> None:
    """Refuse a checkpoint of another algorithm, scenario or number of parallel copies."""
    cfg = ckpt["config"]
    if cfg["algo"] != algo:
        raise UserError(f"{path}: a checkpoint of {cfg['algo']}, not {algo}: use --algo {cfg['algo']} "
                        "(or leave --algo out)")
    saved = scenario_of(ckpt, path)
    differs = [name for name, a, b in (
        ("kind", saved.kind, scenario.kind), ("agents", saved.agents, scenario.agents),
        ("episode_length", saved.episode_length, scenario.episode_length),
        ("model", saved.model, scenario.model)) if a != b]
    if differs:
        raise UserError(
            f"{path}: a checkpoint of scenario {saved.name!r} ({saved.source}), which differs from "
            f"{scenario.source} in {', '.join(differs)}: open it with its own scenario (or leave "
            "the scenario out)"
        )
    if n_envs is not None and int(cfg["n_envs"]) != n_envs:
        raise UserError(f"{path}: trained with {cfg['n_envs']} parallel copies, not {n_envs}: leave "
                        f"--envs out (or give --envs {cfg['n_envs']})")


def check_belongs(ckpt: dict[str, Any], ckpt_path: Path, run_dir: Path) -> None:
    """A checkpoint copied into another run's folder would mix two runs' files: refuse."""
    from marl_tui.config import parse_scenario

    scenario_file = run_dir / "scenario.toml"
    if scenario_file.is_file():
        try:
            here = parse_scenario(scenario_file.read_text(encoding="utf-8"), str(scenario_file))
        except UserError:
            here = None
        if here is not None:
            try:
                check_compatible(ckpt, ckpt_path, ckpt["config"]["algo"], here)
            except UserError:
                raise UserError(f"{ckpt_path}: belongs to another run: its scenario differs from "
                                f"{scenario_file}; resume the run it came from") from None
    config_file = run_dir / "config.toml"
    if config_file.is_file():
        from marl_tui.config import tomllib

        with contextlib.suppress(OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            algo = tomllib.loads(config_file.read_text(encoding="utf-8")).get("run", {}).get("algo")
            if isinstance(algo, str) and algo != ckpt["config"]["algo"]:
                raise UserError(f"{ckpt_path}: belongs to another run: it is a checkpoint of "
                                f"{ckpt['config']['algo']}, but {config_file} says this run trains {algo}; "
                                "resume the run it came from")


def steps_in_config_file(ckpt: dict[str, Any], run_dir: Path) -> int | None:
    """The budget RUN_DIR/config.toml asks for, when it differs from the checkpoint's; None when
    it does not (or there is no file). Resume honours an edited run.steps and refuses any other
    edit (UserError): the checkpoint holds the exact state, so the file cannot change it, and
    ignoring an edit only to write over it later would lose it silently."""
    from marl_tui.config import tomllib
    from marl_tui.train.rundir import run_config_document

    path = run_dir / "config.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read it ({first_line(exc)}); restore it or delete it (the "
                        "checkpoint holds everything resume needs)") from None
    try:
        found = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise UserError(f"{path}: not valid TOML ({first_line(exc)}); undo the edit, or delete the file "
                        "(the checkpoint holds everything resume needs)") from None
    cfg = ckpt["config"]
    saved = run_config_document(ckpt["scenario"].get("name", ""), cfg["algo"], cfg["seed"],
                                cfg["total_steps"], cfg["n_envs"], cfg["device"], cfg["hyperparameters"])
    for section in sorted(set(saved) | set(found)):
        mine, theirs = saved.get(section), found.get(section)
        if not isinstance(mine, dict) or not isinstance(theirs, dict):
            raise UserError(f"{path}: [{section}] was edited; resume continues the run as its checkpoint "
                            "saved it: undo the edit (only run.steps may change)")
        for key in sorted(set(mine) | set(theirs)):
            if section == "run" and key == "steps":
                continue
            if mine.get(key) != theirs.get(key):
                raise UserError(
                    f"{path}: {section}.{key} = {theirs.get(key)!r} was edited (the run has "
                    f"{mine.get(key)!r}); resume continues the run exactly as its checkpoint saved it "
                    "and honours only run.steps: undo the edit, or start a new run with `marl-tui train`")
    steps = found["run"].get("steps")
    if steps == cfg["total_steps"]:
        return None
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise UserError(f"{path}: run.steps = {steps!r}: give a whole number of env steps")
    return steps


def load_checkpoint_into(trainer: Run, path: Path) -> dict[str, Any]:
    """For the app's `--load`: restore a checkpoint into a trainer built for the same algorithm,
    scenario and number of copies (UserError otherwise). Training then continues from it.

    If the trainer writes into the checkpoint's own run directory, metrics.csv continues there;
    into another run directory, its metrics.csv starts at the checkpoint's step. Returns the
    checkpoint's config (algo, seed, total_steps, ...)."""
    path = Path(path)
    ckpt_path, run_dir = find_checkpoint(path)
    ckpt = read_checkpoint(ckpt_path)
    check_compatible(ckpt, ckpt_path, trainer.run_config.algo, trainer.scenario, trainer.env.n_envs)
    out = trainer.run_config.out_dir
    same = out is not None and run_dir is not None and out.resolve() == run_dir.resolve()
    restore(trainer, ckpt, ckpt_path, keep_rows=same)
    return dict(ckpt["config"])
