"""metrics.csv: one row per logging interval, the same bytes for the same seed.

No wall-clock figures go in it (they change run to run); summary.json holds those.
The header is fixed once the algorithm's update metrics are known (after its first
update; at once for baselines that never update), so every row has the same columns.
Rows that arrive before then wait in `pending` (and in checkpoints).

Resuming: a checkpoint records the header, the pending rows and how many rows the
file held when it was taken; `restore` cuts the file back to exactly those rows, so
rows written after the checkpoint (and lost with the process) are not written twice.
(TensorBoard is a callback of its own: train/callbacks/tensorboard.py.)
"""

from __future__ import annotations

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


class MetricsWriter:
    def __init__(self, path: Path | None, base_columns: list[str]) -> None:
        self.path = path
        self.base = base_columns
        self.header: list[str] | None = None
        self.pending: list[dict[str, Any]] = []
        self.rows = 0  # data rows in the file
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
            return
        if self.path is not None:
            new = not self.path.exists() or self.path.stat().st_size == 0
            with self.path.open("ab") as f:
                if new:
                    f.write(_csv_line(self.header))
                for row in self.pending:
                    f.write(_csv_line([_fmt(row.get(k, "")) for k in self.header]))
            self.rows += len(self.pending)
        self.pending.clear()

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
