"""Checkpoints: everything a run needs to continue exactly, in one file.

This module is the file: what it holds, writing it, finding, reading and validating it.
Rebuilding a trainer from one (resume, eval, --load) is in resume.py.

RUN_DIR/checkpoints/ holds step-numbered files (step-000000512000.pt; the newest
KEEP are kept) and latest.pt, a hard link to the newest (a copy where links are
not possible). Each file is written atomically (temp file, fsync, rename), so the
previous checkpoint stays valid until the new one is complete, and a kill at any
moment leaves at worst a stray temp file.

A checkpoint holds only tensors, dicts, lists, numbers, strings and None, so it loads
with torch.load(weights_only=True); anything else (a pickle that asks for code, a
truncated or foreign file, a checkpoint of another scenario or algorithm, a newer
format) is refused with one line (UserError: exit code 2).

Contents (format 1):
    format, version, marl_tui, torch     what wrote it
    scenario: text, source, name, kind   the scenario file as given
    config: algo, seed, total_steps, n_envs, device, hyperparameters,
            checkpoint_every             how to rebuild the same trainer (resume.py)
    algorithm                            Algorithm.state_dict(): networks, targets,
                                         optimisers, replay buffer or rollout, generators
    env                                  BatchedEnv.get_state() (its RNG included)
    rng: torch, numpy, python[, cuda]    the global generators, as tensors and lists
    trainer                              Run.loop_state(): counters, accumulators,
                                         histories, last metrics, current observation
    metrics_writer                       metrics.csv header, rows written, rows pending
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import random
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from marl_tui import __version__
from marl_tui.config import Scenario, parse_scenario
from marl_tui.errors import UserError
from marl_tui.train.faults import ADVICE, TrainingFault
from marl_tui.train.rundir import atomic_write, temp_path

if TYPE_CHECKING:
    from marl_tui.train.run import Run

FORMAT = "marl-tui checkpoint"
VERSION = 1
LATEST = "latest.pt"
KEEP = 2  # step-numbered checkpoints kept (latest.pt is one of them)


def checkpoints_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def step_file(run_dir: Path, env_steps: int) -> Path:
    return checkpoints_dir(run_dir) / f"step-{env_steps:012d}.pt"


# --------------------------------------------------------------------------- global RNGs


def rng_state() -> dict[str, Any]:
    """torch, numpy and python generator states as tensors and plain values."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    version, internal, gauss = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss": None if gauss is None else float(gauss)},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), int(n["pos"]),
                         int(n["has_gauss"]), float(n["cached_gaussian"])))
    p = state["python"]
    random.setstate((int(p["version"]), tuple(int(x) for x in p["state"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(Exception):  # another GPU count: the streams are re-seeded
            torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- saving


def capture(trainer: Run) -> dict[str, Any]:
    run = trainer.run_config
    return {
        "format": FORMAT,
        "version": VERSION,
        "marl_tui": __version__,
        "torch": str(torch.__version__),
        "scenario": {"text": run.scenario.text, "source": run.scenario.source,
                     "name": run.scenario.name, "kind": run.scenario.kind},
        "config": {
            "algo": run.algo, "seed": trainer.seed, "total_steps": trainer.total_steps,
            "n_envs": trainer.env.n_envs, "device": str(trainer.device),
            "hyperparameters": dataclasses.asdict(trainer.hp),
            "checkpoint_every": trainer.checkpoint_every,
        },
        "algorithm": trainer.algo.state_dict(),
        "env": trainer.env.get_state(),
        "rng": rng_state(),
        "trainer": trainer.loop_state(),
        "metrics_writer": trainer.metrics_writer.state_dict(),
    }


def plain(tree: Any, where: str = "checkpoint") -> Any:
    """The same data in types torch.load(weights_only=True) accepts: tensors, dicts, lists,
    tuples, str, int, float, bool, None. numpy values become tensors or numbers; str/int
    subclasses become plain str/int. Anything else is a bug in a state_dict: say where."""
    if tree is None or type(tree) in (bool, int, float, str, torch.Tensor):
        return tree
    if isinstance(tree, torch.Tensor):
        return tree.as_subclass(torch.Tensor) if type(tree) is not torch.nn.Parameter else tree.detach()
    if isinstance(tree, dict):
        return {plain(k, where): plain(v, f"{where}.{k}") for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        items = [plain(v, f"{where}[{i}]") for i, v in enumerate(tree)]
        return items if isinstance(tree, list) else tuple(items)
    if isinstance(tree, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(tree))
    if isinstance(tree, np.generic):
        return tree.item()
    for tp in (bool, int, float, str):
        if isinstance(tree, tp):
            return tp(tree)
    raise TypeError(f"{where} is a {type(tree).__module__}.{type(tree).__name__}, which a checkpoint "
                    "cannot hold (it must load with torch.load(weights_only=True)); state_dict() "
                    "should return tensors, dicts, lists, numbers and strings")


def first_non_finite(tree: Any, where: str = "") -> str | None:
    """The path of the first floating tensor (or float) holding NaN/inf, or None."""
    if isinstance(tree, torch.Tensor):
        if tree.is_floating_point() and not bool(torch.isfinite(tree).all()):
            return where or "tensor"
        return None
    if isinstance(tree, float):
        return None  # plain floats are last-metric records, not parameters
    if isinstance(tree, dict):
        for k, v in tree.items():
            bad = first_non_finite(v, f"{where}.{k}" if where else str(k))
            if bad:
                return bad
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            bad = first_non_finite(v, f"{where}[{i}]")
            if bad:
                return bad
    return None


def save_checkpoint(trainer: Run, run_dir: Path | None = None) -> Path:
    """Write a step-numbered checkpoint and point latest.pt at it; returns latest.pt.

    Refuses (TrainingFault, nothing written) when the algorithm's state holds NaN/inf.
    """
    run_dir = run_dir if run_dir is not None else trainer.run_config.out_dir
    if run_dir is None:
        raise UserError("this run has no run directory to save a checkpoint into")
    data = plain(capture(trainer))
    bad = first_non_finite(data["algorithm"])
    if bad is not None:
        last = trainer.last_checkpoint_step
        keep = f"the last good checkpoint (step {last:,}) stays" if last is not None else "nothing saved"
        raise TrainingFault(
            f"the algorithm's {bad} holds NaN/inf at env step {trainer.env_steps}; checkpoint not "
            f"written, {keep}; {ADVICE}"
        )
    folder = checkpoints_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = step_file(run_dir, trainer.env_steps)
    atomic_write(path, lambda f: torch.save(data, f))
    latest = folder / LATEST
    _point(latest, path)
    _prune(folder, keep={path.name})
    return latest


def _point(latest: Path, target: Path) -> None:
    """Make `latest` the same file as `target`, atomically (a hard link, else a copy)."""
    tmp = temp_path(latest)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(target, tmp)
    except OSError:
        atomic_write(tmp, lambda f: _copy_into(target, f))
    os.replace(tmp, latest)


def _copy_into(src: Path, f: Any) -> None:
    with src.open("rb") as s:
        shutil.copyfileobj(s, f)


def _prune(folder: Path, keep: set[str]) -> None:
    steps = sorted(folder.glob("step-*.pt"))
    for old in steps[:-KEEP]:
        if old.name not in keep:
            with contextlib.suppress(OSError):
                old.unlink()


# --------------------------------------------------------------------------- finding and reading


def find_checkpoint(target: Path) -> tuple[Path, Path | None]:
    """RUN_DIR or a checkpoint file -> (checkpoint file, its run directory or None)."""
    if not target.exists():
        raise UserError(f"{target}: no such run directory or checkpoint file; check the path "
                        "(runs are under runs/ unless --out said otherwise)")
    if target.is_file():
        run_dir = target.parent.parent if target.parent.name == "checkpoints" else None
        return target, run_dir
    folder = checkpoints_dir(target)
    if (folder / LATEST).is_file():
        return folder / LATEST, target
    steps = sorted(folder.glob("step-*.pt")) if folder.is_dir() else []
    if steps:
        return steps[-1], target
    if any((target / name).exists() for name in ("config.toml", "scenario.toml", "metrics.csv")):
        raise UserError(f"{target}: this run has no checkpoint (checkpoints/{LATEST} is missing: it "
                        "stopped before its first save); start it again with `marl-tui train`")
    raise UserError(f"{target}: not a marl-tui run directory (no checkpoints/{LATEST}); give a "
                    "folder under runs/ or a .pt checkpoint file")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


_CODE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"}


def _pickle_asks_for_code(path: Path) -> bool:
    """True for a plain pickle that imports or calls something (read, never executed)."""
    import pickletools

    try:
        with path.open("rb") as f:
            data = f.read(16 << 20)
        return any(op.name in _CODE_OPCODES for op, _, _ in pickletools.genops(data))
    except Exception:  # noqa: BLE001 - not a pickle at all
        return False


def read_checkpoint(path: Path) -> dict[str, Any]:
    """torch.load(weights_only=True) and check that it is a marl-tui checkpoint we can read."""
    if path.is_dir():
        return read_checkpoint(find_checkpoint(path)[0])
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file; check the path")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        globals_asked = any("GLOBAL" in ln or "global" in ln for ln in str(exc).splitlines())
        if globals_asked or _pickle_asks_for_code(path):
            raise UserError(
                f"{path}: refused: the file asks to load Python code or objects, which a marl-tui "
                "checkpoint never holds (it is loaded with weights_only=True); use a checkpoint "
                "that marl-tui wrote"
            ) from None
        raise UserError(f"{path}: not a marl-tui checkpoint (not a torch file, or damaged); use "
                        f"the run's checkpoints/{LATEST} or a step-*.pt beside it") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{path}: not a readable checkpoint: the file is truncated or damaged "
                        f"({first_line(exc)}); use a step-*.pt beside it") from None
    return validate(data, path)


def validate(data: Any, path: Path) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path}: a torch file, but not a marl-tui checkpoint; marl-tui reads only "
                        "the checkpoints/*.pt files it writes")
    version = data.get("version")
    if not isinstance(version, int):
        raise UserError(f"{path}: a marl-tui checkpoint without a format version; it is damaged")
    if version > VERSION:
        raise UserError(f"{path}: written by a newer marl-tui (checkpoint format {version}; this "
                        f"marl-tui {__version__} reads format {VERSION}): upgrade marl-tui "
                        "(pip install -U marl-tui) to use it")
    sections = {"scenario": dict, "config": dict, "algorithm": dict, "env": dict, "rng": dict,
                "trainer": dict, "metrics_writer": dict}
    for key, tp in sections.items():
        if not isinstance(data.get(key), tp):
            raise UserError(f"{path}: an incomplete marl-tui checkpoint (no '{key}' section); use "
                            "a step-*.pt beside it")
    cfg = data["config"]
    needs = {"algo": str, "seed": int, "total_steps": int, "n_envs": int, "device": str,
             "hyperparameters": dict}
    for key, tp in needs.items():
        if not isinstance(cfg.get(key), tp):
            raise UserError(f"{path}: an incomplete marl-tui checkpoint (config.{key} missing)")
    if not isinstance(data["scenario"].get("text"), str):
        raise UserError(f"{path}: an incomplete marl-tui checkpoint (scenario text missing)")
    if not isinstance(data["trainer"].get("env_steps"), int):
        raise UserError(f"{path}: an incomplete marl-tui checkpoint (trainer.env_steps missing)")
    return data


def scenario_of(ckpt: dict[str, Any], path: Path) -> Scenario:
    sc = ckpt["scenario"]
    return parse_scenario(sc["text"], f"{path} (its saved scenario {sc.get('source', '?')})")


def env_steps_of(ckpt: dict[str, Any]) -> int:
    return int(ckpt["trainer"]["env_steps"])
