"""Does the app slow training down, and how fast does the screen answer a key?

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tui_speed.py [--quick] [--repeats N] [--pool EARLIER.json]

1. Training throughput, same run twice: a Trainer on its own thread (what `marl-tui train`
   does) and the same run inside the app (headless Textual via App.run_test; the run in the
   app's training process, the dashboard polling it ten times a second, charts and "why"
   refreshing). Both start paused, are resumed at t0 and timed until the step budget is
   spent; the runs are interleaved, in an order rotated each round, and repeated; rates are
   medians, ratios the median of the per-round ratios (a round runs back to back, so slow
   drifts cancel), with their middle half to say how far one round can be trusted. A third run,
   the app's training process with no screen ("no screen"), separates what the process
   design costs from what the screen's own CPU use costs on a small machine. A fourth, the
   headless run beside a process that keeps NEIGHBOUR_SHARE of a core busy ("busy neighbour",
   about what the screen uses), tells what any such neighbour costs training on this machine.
2. Key-press-to-screen latency inside the app: from sending the key until the status
   line shows its effect (`n` one step while paused, space pause/resume, `+` speed).
   Textual paints the updated widget on its next frame (≤ 1/60 s later), not included.
3. The dashboard's own cost: milliseconds per poll() and per chart redraw while running.

Prints a table and writes benchmarks/results/tui_speed.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from marl_tui.config import load_scenario  # noqa: E402
from marl_tui.train.controls import Controls  # noqa: E402
from marl_tui.train.remote import RemoteControls, TrainerProcess  # noqa: E402
from marl_tui.train.trainer import RunConfig, Trainer  # noqa: E402
from marl_tui.tui.app import MarlApp  # noqa: E402
from marl_tui.tui.session import RunRequest, no_run_dir  # noqa: E402
from marl_tui.tui.widgets.charts import ChartPanel  # noqa: E402
from marl_tui.tui.widgets.status import StatusLine, speed_label  # noqa: E402

# (scenario, algorithm, parallel copies, batched steps)
# About five seconds each: long enough for a steady state (the first second is left out of
# the steady figures), short enough for many rounds (single rounds vary by ±15 % on a
# shared 2-vCPU VM).
CONFIGS = [
    ("pricing", "random", 256, 10_000),
    ("pricing", "mappo", 256, 2_000),
    ("warehouse", "mappo", 64, 1_250),
    ("fulfillment", "qmix", 128, 160),
]
NEIGHBOUR_SHARE = 0.16  # of a core: what the screen measured (app_ui_cpu_share)
NEIGHBOUR = """import time
while True:
    t = time.perf_counter()
    while time.perf_counter() - t < {busy}:
        pass
    time.sleep({idle})
"""
STEADY = "steady_env_steps_per_s"
QUICK = [("pricing", "random", 256, 1500), ("pricing", "mappo", 256, 160)]


def _cpu(thread: threading.Thread) -> float:
    """CPU seconds a thread has used (Linux); nan where it cannot be read."""
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))  # type: ignore[arg-type]
    except (AttributeError, OSError, TypeError):
        return float("nan")


def _process_cpu(pid: int | None) -> float:
    """CPU seconds a process has used (Linux /proc); nan where it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class _Windows:
    """The trainer's own steps/s, one figure per ~1 s window (the same code in every mode):
    the steady rate is their median after the first window (start-up: a fresh process's first
    torch calls, page faults), what a person watching a long run gets."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def see(self, stats: Any) -> None:
        rate = stats.steps_per_second
        if rate > 0 and (not self.rates or rate != self.rates[-1]):
            self.rates.append(rate)

    def steady(self) -> float:
        later = self.rates[1:] or self.rates
        return statistics.median(later) if later else float("nan")


def headless(scenario: str, algo: str, n_envs: int, iters: int) -> dict[str, float]:
    cfg = RunConfig(scenario=load_scenario(scenario), algo=algo, seed=0, n_envs=n_envs,
                    steps=n_envs * iters)
    trainer = Trainer(cfg, controls=Controls(paused=True))
    trainer.record_steps = False  # as `marl-tui train` does
    thread = trainer.start_thread()
    time.sleep(0.2)
    t0 = time.monotonic()
    c0 = _cpu(thread)
    c1 = c0
    windows = _Windows()
    trainer.controls.resume()
    while thread.is_alive():
        c1 = max(c1, _cpu(thread)) if thread.is_alive() else c1
        windows.see(trainer.stats)
        thread.join(timeout=0.02)
    wall = time.monotonic() - t0
    return {"wall_s": wall, "env_steps": trainer.stats.env_steps,
            "env_steps_per_s": trainer.stats.env_steps / wall, "trainer_cpu_s": c1 - c0,
            "steady_env_steps_per_s": windows.steady(), "windows": windows.rates}


def beside_neighbour(scenario: str, algo: str, n_envs: int, iters: int) -> dict[str, float]:
    """headless() while another process keeps NEIGHBOUR_SHARE of a core busy (in 0.1 s cycles)."""
    import subprocess

    busy = 0.1 * NEIGHBOUR_SHARE
    code = NEIGHBOUR.format(busy=busy, idle=0.1 - busy)
    neighbour = subprocess.Popen([sys.executable, "-c", code])
    try:
        return headless(scenario, algo, n_envs, iters)
    finally:
        neighbour.kill()
        neighbour.wait()


def process_only(scenario: str, algo: str, n_envs: int, iters: int) -> dict[str, float]:
    """The app's training process with no screen at all: what the process design itself costs."""
    proc = TrainerProcess(RunConfig(scenario=load_scenario(scenario), algo=algo, seed=0,
                                    n_envs=n_envs, steps=n_envs * iters), RemoteControls(paused=True))
    proc.start()
    if proc.wait_ready() is not None:
        raise RuntimeError(proc.error)
    time.sleep(0.2)
    t0 = time.monotonic()
    windows = _Windows()
    proc.controls.resume()
    while proc.stats.status not in ("finished", "error"):
        windows.see(proc.stats)
        time.sleep(0.01)
    wall = time.monotonic() - t0
    proc.stop(timeout=5.0)
    return {"wall_s": wall, "env_steps_per_s": proc.stats.env_steps / wall,
            "steady_env_steps_per_s": windows.steady(), "windows": windows.rates}


async def _until(cond: Any, timeout: float = 120.0) -> None:
    """Wait on the app's event loop without Pilot.pause (which walks every widget)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError


class _Timed:
    """Wrap a method at class level (timers hold bound methods made at mount)."""

    def __init__(self, cls: type, name: str) -> None:
        self.cls, self.name, self.ms = cls, name, []
        self.original = getattr(cls, name)

    def __enter__(self) -> list[float]:
        original, ms = self.original, self.ms

        def timed(obj: Any, *a: Any, **k: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(obj, *a, **k)
            finally:
                ms.append(1000 * (time.perf_counter() - start))

        setattr(self.cls, self.name, timed)
        return ms

    def __exit__(self, *exc: object) -> None:
        setattr(self.cls, self.name, self.original)


def in_app(scenario: str, algo: str, n_envs: int, iters: int,
           size: tuple[int, int] = (120, 40)) -> dict[str, float]:
    from marl_tui.tui.screens.dashboard import DashboardScreen

    request = RunRequest(scenario=load_scenario(scenario), algo=algo, seed=0, n_envs=n_envs,
                         steps=n_envs * iters)
    app = MarlApp(request=request, start_paused=True, run_dir=no_run_dir)
    out: dict[str, float] = {}

    async def run() -> None:
        async with app.run_test(size=size) as pilot:
            screen = app.screen
            await _until(lambda: screen._started and screen._explained == (False, 0))
            trainer = screen.session.trainer
            await asyncio.sleep(0.2)
            t0 = time.monotonic()
            c0, u0 = _process_cpu(trainer.pid), time.process_time()
            windows = _Windows()
            screen.session.controls.resume()
            while trainer.stats.status not in ("finished", "error") and time.monotonic() - t0 < 600:
                windows.see(trainer.stats)
                await asyncio.sleep(0.02)
            wall = time.monotonic() - t0
            # A finished run's process waits for the app's stop: its CPU time is still there.
            c1, u1 = _process_cpu(trainer.pid), time.process_time()
            out.update(wall_s=wall, env_steps=trainer.stats.env_steps,
                       env_steps_per_s=trainer.stats.env_steps / wall, trainer_cpu_s=c1 - c0,
                       ui_cpu_s=u1 - u0, ui_cpu_share=(u1 - u0) / wall,
                       steady_env_steps_per_s=windows.steady(), windows=windows.rates)
            await pilot.press("q")

    with _Timed(DashboardScreen, "poll") as poll_ms, _Timed(ChartPanel, "draw_plot") as chart_ms:
        asyncio.run(run())
    out["poll_ms_median"] = statistics.median(poll_ms) if poll_ms else float("nan")
    out["poll_ms_p95"] = _p95(poll_ms)
    out["polls"] = len(poll_ms)
    drawn = [x for x in chart_ms if x > 1.0]  # plots, not "no data yet" messages
    out["chart_ms_median"] = statistics.median(drawn) if drawn else float("nan")
    out["chart_redraws"] = len(drawn)
    return out


def _pair_ratios(runs: list[dict[str, Any]], base: list[dict[str, Any]],
                 key: str = "env_steps_per_s") -> list[float]:
    return [r[key] / b[key] for r, b in zip(runs, base, strict=True)]


def _pair_ratio(runs: list[dict[str, Any]], base: list[dict[str, Any]],
                key: str = "env_steps_per_s") -> float:
    return statistics.median(_pair_ratios(runs, base, key))


def _pair_quartiles(runs: list[dict[str, Any]], base: list[dict[str, Any]],
                    key: str = "env_steps_per_s") -> tuple[float, float]:
    """The middle half of the per-round ratios: how far one round can be trusted on this machine."""
    ratios = _pair_ratios(runs, base, key)
    if len(ratios) < 2:
        return ratios[0], ratios[0]
    q = statistics.quantiles(ratios, n=4, method="inclusive")
    return q[0], q[2]


def _p95(xs: list[float]) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(0.95 * len(xs)))]


def latency(repeats: int) -> dict[str, dict[str, float]]:
    """Key press -> status line shows it, on a learning run (MAPPO, pricing, 64 copies)."""
    request = RunRequest(scenario=load_scenario("pricing"), algo="mappo", seed=0, n_envs=64)
    app = MarlApp(request=request, start_paused=True, run_dir=no_run_dir)
    res: dict[str, list[float]] = {"n (one step, paused)": [], "space (pause)": [],
                                   "space (resume)": [], "+ (speed)": []}

    async def run() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            screen = app.screen
            status = screen.query_one(StatusLine)
            await _until(lambda: screen._started and screen._explained == (False, 0))

            async def measure(key: str, cond: Any, name: str) -> None:
                t0 = time.perf_counter()
                app.simulate_key(key)  # as the terminal driver delivers it
                while not cond():
                    await asyncio.sleep(0.0005)
                res[name].append(1000 * (time.perf_counter() - t0))

            for _ in range(repeats):
                before = status.iteration or 0
                await measure("n", lambda b=before: status.iteration == b + 1, "n (one step, paused)")
                await asyncio.sleep(0.1)
            for _ in range(repeats):
                await measure("space", lambda: "running" in status.plain, "space (resume)")
                await asyncio.sleep(0.3)
                await measure("space", lambda: "paused" in status.plain, "space (pause)")
                await asyncio.sleep(0.1)
            for _ in range(9):
                app.simulate_key("minus")
            await asyncio.sleep(0.2)

            def speed_shown() -> bool:
                return speed_label(screen.session.controls.speed) in status.plain

            for _ in range(9):
                await measure("plus", speed_shown, "+ (speed)")
                await asyncio.sleep(0.05)
            await pilot.press("q")

    asyncio.run(run())
    return {k: {"median_ms": statistics.median(v), "p95_ms": _p95(v), "n": len(v)}
            for k, v in res.items() if v}


def _earlier_runs(path: Path) -> dict[tuple[str, str, int, int], dict[str, list[dict[str, Any]]]]:
    """The rounds of an earlier result file (same code, same machine), by configuration."""
    rows = json.loads(path.read_text(encoding="utf-8"))["throughput"]
    return {(r["scenario"], r["algo"], r["envs"], r["batched_steps"]): r["runs"] for r in rows}


def summarise(scenario: str, algo: str, n_envs: int, iters: int,
              runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    h, a, p, nb = runs["headless"], runs["app"], runs["process"], runs["neighbour"]
    return {
        "scenario": scenario, "algo": algo, "envs": n_envs, "batched_steps": iters, "rounds": len(h),
        "headless_env_steps_per_s": statistics.median(x["env_steps_per_s"] for x in h),
        "app_env_steps_per_s": statistics.median(x["env_steps_per_s"] for x in a),
        # Median of the per-pair ratios: a pair runs back to back, so the machine's slow
        # drifts (a shared VM's neighbours) cancel within it.
        "app_vs_headless": _pair_ratio(a, h),
        "app_vs_headless_quartiles": _pair_quartiles(a, h),
        # The trainer's own 1 s figures past the first second (start-up excluded).
        "steady_app_vs_headless": _pair_ratio(a, h, STEADY),
        "steady_app_vs_headless_quartiles": _pair_quartiles(a, h, STEADY),
        "steady_process_vs_headless": _pair_ratio(p, h, STEADY),
        "steady_neighbour_vs_headless": _pair_ratio(nb, h, STEADY),
        "neighbour_vs_headless": _pair_ratio(nb, h),
        "process_env_steps_per_s": statistics.median(x["env_steps_per_s"] for x in p),
        "process_vs_headless": _pair_ratio(p, h),
        "headless_trainer_cpu_s": statistics.median(x["trainer_cpu_s"] for x in h),
        "app_trainer_cpu_s": statistics.median(x["trainer_cpu_s"] for x in a),
        "app_ui_cpu_share": statistics.median(x["ui_cpu_share"] for x in a),
        "poll_ms_median": statistics.median(x["poll_ms_median"] for x in a),
        "poll_ms_p95": max(x["poll_ms_p95"] for x in a),
        "chart_ms_median": statistics.median(x["chart_ms_median"] for x in a),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs")
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "tui_speed.json")
    parser.add_argument("--pool", type=Path, default=None,
                        help="an earlier result file of the same code: its rounds are added to this run's")
    args = parser.parse_args()
    configs = QUICK if args.quick else CONFIGS
    repeats = 1 if args.quick else args.repeats

    pooled = _earlier_runs(args.pool) if args.pool else {}
    rows = []
    for scenario, algo, n_envs, iters in configs:
        kinds = {"headless": headless, "app": in_app, "process": process_only,
                 "neighbour": beside_neighbour}
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
        for i in range(repeats):
            # Interleaved, and the order rotated each round: the machine's load and any
            # first-or-last-in-a-round effect hit every kind alike.
            k = i % len(kinds)
            for kind in (list(kinds) * 2)[k: k + len(kinds)]:
                runs[kind].append(kinds[kind](scenario, algo, n_envs, iters))
        for kind, earlier in pooled.get((scenario, algo, n_envs, iters), {}).items():
            runs[kind] = earlier + runs[kind]
        rows.append(summarise(scenario, algo, n_envs, iters, runs))
        print(f"  {scenario}/{algo}: headless {rows[-1]['headless_env_steps_per_s']:,.0f} env steps/s, "
              f"app {rows[-1]['app_env_steps_per_s']:,.0f} ({rows[-1]['app_vs_headless']:.0%}; "
              f"steady {rows[-1]['steady_app_vs_headless']:.0%}; {rows[-1]['rounds']} rounds)", flush=True)
    lat = latency(5 if args.quick else 15)

    print()
    print("app / headless: whole runs by the wall clock, and steady (the trainer's own 1 s rates, "
          "first second left out); 'middle half' of the per-round ratios")
    print(f"{'run':<20}{'envs':>5}{'headless/s':>12}{'in app/s':>11}{'whole':>7}{'middle half':>13}"
          f"{'steady':>8}{'middle half':>13}{'no screen':>10}{'neighbour':>10}{'UI cpu':>8}{'poll ms':>9}"
          f"{'chart ms':>10}")
    for r in rows:
        q1, q3 = r["app_vs_headless_quartiles"]
        s1, s3 = r["steady_app_vs_headless_quartiles"]
        print(f"{r['scenario'] + '/' + r['algo']:<20}{r['envs']:>5}"
              f"{r['headless_env_steps_per_s']:>12,.0f}{r['app_env_steps_per_s']:>11,.0f}"
              f"{r['app_vs_headless']:>7.0%}{f'{q1:.0%}–{q3:.0%}':>13}"
              f"{r['steady_app_vs_headless']:>8.0%}{f'{s1:.0%}–{s3:.0%}':>13}"
              f"{r['steady_process_vs_headless']:>10.0%}{r['steady_neighbour_vs_headless']:>10.0%}"
              f"{r['app_ui_cpu_share']:>8.0%}{r['poll_ms_median']:>9.2f}{r['chart_ms_median']:>10.1f}")
    print()
    print(f"{'key press -> status line':<26}{'median ms':>11}{'p95 ms':>9}{'n':>5}")
    for k, v in lat.items():
        print(f"{k:<26}{v['median_ms']:>11.1f}{v['p95_ms']:>9.1f}{v['n']:>5}")

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average": load, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                    "threads_at_end": threading.active_count()},
        "pooled_with": str(args.pool) if args.pool else None,
        "throughput": rows, "latency": lat,
        "notes": "headless = Trainer on its own thread; app = same run inside MarlApp.run_test "
                 "(120x40), training in the app's training process, the dashboard polling at "
                 "10 Hz. train cpu = CPU seconds of the training thread (headless) or training "
                 "process (app) for the same work; UI cpu = the app process's CPU time / wall "
                 "time (screen and receiver thread). neighbour = headless beside a process "
                 "that keeps NEIGHBOUR_SHARE of a core busy. On a machine shared with other "
                 "jobs the wall-clock ratio is noisy: read it with the CPU figures. Latency: key "
                 "sent -> status line updated (the frame is painted at most 1/60 s later).",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
