"""metrics.csv: one row per logging interval, the same bytes for the same seed.

No wall-clock figures go in it (they change run to run); summary.json holds those.
The header is fixed once the algorithm's update metrics are known (after its first
update; at once for baselines that never update), so every row has the same columns.
Rows that arrive before then wait in `pending` (and in checkpoints).

Resuming: a checkpoint records the header, the pending rows and how many rows the
file held when it was taken; `restore` cuts the file back to exactly those rows, so
rows written after the checkpoint (and lost with the process) are not written twice.

TensorBoard: when the optional `tensorboard` package is installed, every row also goes
to event files in RUN_DIR/tensorboard (so `tensorboard --logdir runs/` works). Without
it nothing happens.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
from pathlib import Path
from typing import Any

from marl_tui.errors import UserError
from marl_tui.train.rundir import atomic_write_bytes


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def _csv_line(values: list[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerow(values)
    return buf.getvalue().encode()


def _read_existing(path: Path) -> tuple[list[str], int]:
    """(header, data rows) of a metrics.csv already in a run directory; UserError when it is not
    one marl-tui wrote (binary, not UTF-8, not CSV), before anything is written over it."""
    try:
        text = path.read_bytes().decode("utf-8")
        if "\0" in text:
            raise ValueError("it holds NUL bytes")
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader)
        rows = sum(1 for _ in reader)
    except (UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise UserError(f"{path}: not a metrics.csv marl-tui wrote ({str(exc)[:80]}); move it aside "
                        "and try again (a new one starts at the checkpoint's step)") from None
    if not header or header[0] != "env_steps":
        raise UserError(f"{path}: not a metrics.csv marl-tui wrote (its first column is not "
                        "env_steps); move it aside and try again")
    return header, rows


def tensorboard_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


class MetricsWriter:
    def __init__(self, path: Path | None, base_columns: list[str],
                 tensorboard_dir: Path | None = None, kpi_names: tuple[str, ...] = ()) -> None:
        self.path = path
        self.base = base_columns
        self.header: list[str] | None = None
        self.pending: list[dict[str, Any]] = []
        self.rows = 0  # data rows in the file
        self.tensorboard_dir = tensorboard_dir
        self.kpi_names = set(kpi_names)
        self._tb: Any = None
        self._tb_purge_step: int | None = None
        self._tb_failed = False
        if path is not None and path.exists() and path.stat().st_size > 0:
            self.header, self.rows = _read_existing(path)  # an existing file: keep its columns

    # ------------------------------------------------------------------ writing
    def add(self, row: dict[str, Any], metric_keys: list[str] | None) -> None:
        self.pending.append(row)
        if self.header is None and metric_keys is not None:
            self.header = self.base + [k for k in metric_keys if k not in self.base]
        if self.header is not None:
            self.flush()

    def flush(self, final: bool = False) -> None:
        if self.header is None:
            if not final or not self.pending:
                return
            self.header = list(self.base)
        if not self.pending:
            if final:
                self._close_tensorboard()
            return
        if self.path is not None:
            new = not self.path.exists() or self.path.stat().st_size == 0
            with self.path.open("ab") as f:
                if new:
                    f.write(_csv_line(self.header))
                for row in self.pending:
                    f.write(_csv_line([_fmt(row.get(k, "")) for k in self.header]))
            self.rows += len(self.pending)
        self._to_tensorboard(self.pending)
        self.pending.clear()
        if final:
            self._close_tensorboard()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "header": list(self.header) if self.header is not None else None,
            "pending": [dict(r) for r in self.pending],
            "rows": self.rows,
        }

    def restore(self, state: dict[str, Any], keep_rows: bool, env_steps: int) -> str | None:
        """Continue from a checkpoint. keep_rows: the file is the one the checkpoint was
        taken beside (a resume), so keep its first `rows` rows and drop any written later.
        Otherwise (a checkpoint loaded into a new run) this file starts empty.
        Returns a warning line when rows the checkpoint expects are missing from the file."""
        self.header = list(state["header"]) if state["header"] is not None else None
        self.pending = [dict(r) for r in state["pending"]]
        want = int(state["rows"]) if keep_rows and self.header is not None else 0
        self._tb_purge_step = env_steps + 1  # events past the checkpoint are dropped
        self._close_tensorboard()
        warning = None
        if self.path is None:
            self.rows = want
            return None
        old = self.path.read_bytes() if self.path.exists() else b""
        lines = old.splitlines(keepends=True)
        kept: list[bytes] = []
        if want and lines and self.header is not None and lines[0] == _csv_line(self.header):
            kept = lines[1 : 1 + want]
        if len(kept) < want:
            warning = (f"{self.path}: holds {len(kept)} of the {want} rows written before the "
                       "checkpoint; the missing rows cannot be recovered")
        new = (_csv_line(self.header) + b"".join(kept)) if kept and self.header else b""
        if new != old:
            atomic_write_bytes(self.path, new)
        self.rows = len(kept)
        return warning

    # ------------------------------------------------------------------ tensorboard
    def _to_tensorboard(self, rows: list[dict[str, Any]]) -> None:
        if self.tensorboard_dir is None or self._tb_failed:
            return
        if self._tb is None:
            if not tensorboard_available():
                self._tb_failed = True
                return
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.tensorboard_dir), purge_step=self._tb_purge_step)
                self._tb_purge_step = None
            except Exception:  # noqa: BLE001 - optional: a broken install must not stop training
                self._tb_failed = True
                return
        for row in rows:
            step = int(row["env_steps"])
            for k, v in row.items():
                if k == "env_steps" or isinstance(v, bool) or not isinstance(v, (int, float)):
                    continue
                if isinstance(v, float) and not math.isfinite(v):
                    continue
                self._tb.add_scalar(self._tag(k), v, step)

    def _tag(self, key: str) -> str:
        if key == "team_return":
            return "return/team"
        if key.startswith("return_"):
            return f"return/agent_{key[len('return_'):]}"
        if key in ("episodes", "updates"):
            return f"progress/{key}"
        if key in self.kpi_names:
            return f"kpi/{key}"
        return f"train/{key}"

    def _close_tensorboard(self) -> None:
        if self._tb is not None:
            with contextlib.suppress(Exception):
                self._tb.close()
            self._tb = None

    def close(self) -> None:
        self._close_tensorboard()
