"""How long after `marl-tui` is typed does something appear, and when is the picker there?

    python benchmarks/first_paint.py [--runs N] [--size 120x40] [--against OTHER_TREE]

Starts `marl-tui` (the picker) in a detached tmux window, N times, and polls the pane
(`tmux capture-pane`, every 10 ms) from the moment the command is launched until (1) any text
is on screen and (2) the picker is shown. Each run is quit with ctrl+q before the next.
--against runs another checkout of marl-tui (its root goes on PYTHONPATH) in turns with this
one, so a shared machine's load falls on both alike. The figures include Python's start, the
CLI's imports and tmux's own latency (a few ms); they are wall-clock times, so compare them
only against a run on the same machine at the same time. Prints the medians and writes
benchmarks/results/first_paint.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "first_paint.json"
PICKER_MARK = "pick a scenario"  # the picker's title line
POLL_SECONDS = 0.01
GIVE_UP_SECONDS = 60.0


def pane(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                          text=True, check=False).stdout


def one_run(command: str, size: str, session: str) -> tuple[float, float]:
    """Seconds from launch to any text on screen, and to the picker."""
    width, height = size.split("x")
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, check=False)
    # The command is the window's only process: the pane stays blank until marl-tui draws.
    new = ["tmux", "new-session", "-d", "-s", session, "-x", width, "-y", height, command]
    start = time.perf_counter()
    if subprocess.run(new, capture_output=True, check=False).returncode != 0:
        time.sleep(0.5)  # a tmux server that was just ending (its last session killed)
        start = time.perf_counter()
        subprocess.run(new, check=True)
    try:
        first = picker = None
        while picker is None and time.perf_counter() - start < GIVE_UP_SECONDS:
            text = pane(session)
            now = time.perf_counter() - start
            if first is None and text.strip():
                first = now
            if PICKER_MARK in text:
                picker = now
            time.sleep(POLL_SECONDS)
        if first is None or picker is None:
            raise SystemExit(f"nothing appeared within {GIVE_UP_SECONDS:.0f} s:\n{pane(session)}")
        subprocess.run(["tmux", "send-keys", "-t", session, "C-q"], check=True)
        return first, picker
    finally:
        time.sleep(1.0)  # let it quit (and its fork server end) before the next run
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, check=False)


def measure(trees: dict[str, str], runs: int, size: str) -> dict[str, dict[str, object]]:
    marl = Path(sys.executable).with_name("marl-tui")
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    for k in range(runs):
        for name, root in trees.items():  # in turns: the machine's load falls on each alike
            first, picker = one_run(f"env PYTHONPATH={root} {marl}", size, f"first-paint-{os.getpid()}")
            times[name].append((first, picker))
            print(f"{name} run {k + 1}: first text {first * 1000:.0f} ms, picker {picker * 1000:.0f} ms",
                  flush=True)
    return {name: {"first_text_ms_median": round(statistics.median(f for f, _ in t) * 1000),
                   "picker_ms_median": round(statistics.median(p for _, p in t) * 1000),
                   "first_text_ms": [round(f * 1000) for f, _ in t],
                   "picker_ms": [round(p * 1000) for _, p in t]} for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", default="120x40")
    parser.add_argument("--against", help="another checkout's root, run in turns with this one")
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is needed: apt-get install tmux")
    trees = {"this": str(Path(__file__).resolve().parent.parent)}
    if args.against:
        trees["against"] = str(Path(args.against).resolve())
    result = {
        "size": args.size, "runs": args.runs, "trees": trees,
        "results": measure(trees, args.runs, args.size),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    for name, r in result["results"].items():
        print(f"{name}: median first text {r['first_text_ms_median']} ms, picker {r['picker_ms_median']} ms")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
