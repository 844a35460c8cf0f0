"""metrics.csv: one row per logging interval, the same bytes for the same seed.

No wall-clock figures go in it (they change run to run); summary.json holds those.
The header is fixed once the algorithm's update metrics are known (after its first
update, or at the end for baselines that never update), so every row has the same columns.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


class MetricsWriter:
    def __init__(self, path: Path | None, base_columns: list[str]) -> None:
        self.path = path
        self.base = base_columns
        self.header: list[str] | None = None
        self.pending: list[dict[str, Any]] = []
        if path is not None and path.exists() and path.stat().st_size > 0:
            with path.open(newline="") as f:  # resuming: keep the existing columns
                self.header = next(csv.reader(f))

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
        if self.path is None or not self.pending:
            self.pending.clear()
            return
        new = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(self.header)
            for row in self.pending:
                writer.writerow([_fmt(row.get(k, "")) for k in self.header])
        self.pending.clear()
