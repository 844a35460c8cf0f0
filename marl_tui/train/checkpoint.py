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
import stat
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from marl_tui import __version__
from marl_tui.config import Scenario, check_run_options, parse_scenario
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
    if not run_dir.is_dir():  # deleted while training: never make a run directory of a checkpoint alone
        raise FileNotFoundError(f"the run directory {run_dir} no longer exists (deleted while training?)")
    folder.mkdir(exist_ok=True)
    path = step_file(run_dir, trainer.env_steps)
    try:
        atomic_write(path, lambda f: torch.save(data, f))
    except RuntimeError as exc:
        # torch.save reports a failed write as "unexpected pos ..."; the OSError is its context.
        cause = exc.__context__
        if isinstance(cause, OSError):
            raise _write_failed(cause, path, trainer) from None
        raise
    except OSError as exc:
        raise _write_failed(exc, path, trainer) from None
    latest = folder / LATEST
    _point(latest, path)
    _prune(folder, keep={path.name})
    return latest


def _write_failed(exc: OSError, path: Path, trainer: Run) -> OSError:
    """The error for a checkpoint that could not be written, worded for the person reading it
    ("no space left on device: ..."), saying that the last good checkpoint is kept."""
    last = trainer.last_checkpoint_step
    kept = (f"the last good checkpoint (step {last:,}) is kept" if last is not None
            else "no checkpoint has been saved yet")
    why = (exc.strerror or str(exc)).lower()
    failed = OSError(f"{why}: {path.name} not written in {path.parent}; {kept}")  # one argument: no "[Errno n]"
    failed.errno = exc.errno
    return failed


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


def _kind_of(path: Path) -> str:
    """'file', 'dir', 'missing' or 'other' (a FIFO, device or socket), without opening it; a
    path the file system cannot take (a name beyond its limit, a loop of links) is a UserError."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        raise UserError(f"{path}: cannot use this path ({exc.strerror}); check it") from None
    if stat.S_ISREG(mode):
        return "file"
    return "dir" if stat.S_ISDIR(mode) else "other"


def _not_regular(path: Path) -> UserError:
    return UserError(f"{path}: not a regular file (a pipe, socket or device, or a link to one); "
                     "a checkpoint is a .pt file under a run's checkpoints/")


def find_checkpoint(target: Path) -> tuple[Path, Path | None]:
    """RUN_DIR or a checkpoint file -> (checkpoint file, its run directory or None)."""
    kind = _kind_of(target)
    if kind == "missing":
        raise UserError(f"{target}: no such run directory or checkpoint file; check the path "
                        "(runs are under runs/ unless --out said otherwise)")
    if kind == "other":
        raise _not_regular(target)
    if kind == "file":
        run_dir = target.parent.parent if target.parent.name == "checkpoints" else None
        return target, run_dir
    folder = checkpoints_dir(target)
    if _kind_of(folder / LATEST) != "missing":
        return folder / LATEST, target
    steps = sorted(folder.glob("step-*.pt")) if folder.is_dir() else []
    if steps:
        return steps[-1], target
    if any((target / name).exists() for name in ("config.toml", "scenario.toml", "metrics.csv")):
        raise UserError(f"{target}: this run has no checkpoint (checkpoints/{LATEST} is missing: it "
                        "stopped before its first save); start it again with `marl-tui train "
                        f"SCENARIO --out {target}`")
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


def _refused_code(path: Path) -> UserError:
    return UserError(f"{path}: refused: the file asks to load Python code or objects, which a marl-tui "
                     "checkpoint never holds (it is loaded with weights_only=True); use a checkpoint "
                     "that marl-tui wrote")


def _damaged(path: Path, why: str) -> UserError:
    return UserError(f"{path}: not a readable checkpoint: the file is truncated or damaged ({why}); "
                     "use a step-*.pt beside it")


# torch.save writes one zip entry per tensor storage plus a handful of records: a checkpoint
# holds a few hundred. Its pickle (the tree of dicts, numbers and strings) is a few megabytes.
MAX_ENTRIES = 10_000
MAX_PICKLE_BYTES = 64 << 20


def inspect_archive(path: Path) -> int:
    """Check the zip archive torch.save writes before anything is unpickled or decompressed;
    returns the bytes its entries hold. torch.save stores entries uncompressed, so an entry
    that is compressed (a 6 MB file that inflates to 6 GiB), entries claiming more bytes than
    the file has, too many entries or an outsized pickle are refused unread."""
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        if _pickle_asks_for_code(path):
            raise _refused_code(path)
        raise UserError(f"{path}: not a marl-tui checkpoint (not the zip archive torch.save writes); "
                        f"use the run's checkpoints/{LATEST} or a step-*.pt beside it")
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise _damaged(path, first_line(exc)) from None
    if len(infos) > MAX_ENTRIES:
        raise UserError(f"{path}: refused: {len(infos):,} archive entries where a checkpoint has a few "
                        f"hundred (limit {MAX_ENTRIES:,}); it was not written by marl-tui")
    packed = [i.filename for i in infos if i.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise UserError(f"{path}: refused: its entry {packed[0]!r} is compressed, and torch.save never "
                        "compresses (a compressed entry can inflate to any size); use a checkpoint "
                        "that marl-tui wrote")
    size = path.stat().st_size
    held = sum(i.file_size for i in infos)
    if held > size:
        raise UserError(f"{path}: refused: its entries claim {held:,} bytes in a file of {size:,}; "
                        "the archive is damaged or crafted")
    pickles = [i for i in infos if i.filename.endswith("/data.pkl") or i.filename == "data.pkl"]
    if len(pickles) != 1:
        raise UserError(f"{path}: not a marl-tui checkpoint (a zip archive, but not one torch.save "
                        f"wrote); use the run's checkpoints/{LATEST} or a step-*.pt beside it")
    if pickles[0].file_size > MAX_PICKLE_BYTES:
        raise UserError(f"{path}: refused: its pickle holds {pickles[0].file_size:,} bytes where a "
                        f"checkpoint's holds a few million (limit {MAX_PICKLE_BYTES:,})")
    return held


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Inspect the archive, torch.load(weights_only=True) it with its tensors mapped from the
    file (nothing is read into memory until used), and check that it is a marl-tui checkpoint."""
    kind = _kind_of(path)
    if kind == "dir":
        return read_checkpoint(find_checkpoint(path)[0])
    if kind == "missing":
        raise UserError(f"{path}: no such checkpoint file; check the path")
    if kind == "other":
        raise _not_regular(path)
    try:
        inspect_archive(path)
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror}); check its permissions") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        if any("GLOBAL" in ln or "global" in ln for ln in str(exc).splitlines()):
            raise _refused_code(path) from None
        raise _damaged(path, first_line(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a crafted pickle can raise anything (IndexError, ...)
        raise _damaged(path, f"{type(exc).__name__}: {first_line(exc)}") from None
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
    every = cfg.get("checkpoint_every")
    # The stored settings pass the rules a flag or a scenario file passes, and a failure names
    # the checkpoint, not a flag: nothing is built from them until they do.
    check_run_options(origin=str(path), steps=cfg["total_steps"], envs=cfg["n_envs"],
                      seed=cfg["seed"], device=cfg["device"].split(":")[0],
                      checkpoint_every=every if isinstance(every, int) else None)
    if not isinstance(data["scenario"].get("text"), str):
        raise UserError(f"{path}: an incomplete marl-tui checkpoint (scenario text missing)")
    if not isinstance(data["trainer"].get("env_steps"), int):
        raise UserError(f"{path}: an incomplete marl-tui checkpoint (trainer.env_steps missing)")
    bad = first_non_finite(data["algorithm"])
    if bad is not None:  # save_checkpoint never writes one: the file was damaged or made so
        raise UserError(f"{path}: its algorithm.{bad} holds NaN/inf, which marl-tui never saves; the checkpoint "
                        "is damaged: use a step-*.pt beside it")
    return data


def scenario_of(ckpt: dict[str, Any], path: Path) -> Scenario:
    sc = ckpt["scenario"]
    return parse_scenario(sc["text"], f"{path} (its saved scenario {sc.get('source', '?')})")


def env_steps_of(ckpt: dict[str, Any]) -> int:
    return int(ckpt["trainer"]["env_steps"])
