"""Make screenshots/ : SVG and PNG captures of the picker and of each scenario kind's dashboard.

    .venv/bin/python scripts/screenshots.py            # everything (about a minute)
    .venv/bin/python scripts/screenshots.py --only picker fulfillment --train-seconds 5

Each capture runs the real app headless (App.run_test), waits for what it shows (the
oracles, some training), and saves the SVG with App.save_screenshot. PNGs come from
`rsvg-convert` (Debian: apt-get install librsvg2-bin); rsvg ignores textLength and drops
leading spaces of a <text> run, so the SVG is tidied for it
first (one <text> per character cell). Runs write no run directory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "screenshots"
sys.path.insert(0, str(ROOT))

from marl_tui.train.run import Run  # noqa: E402

# (file stem, scenario, algorithm, size)
DASHBOARDS = [
    ("dashboard-pricing-maddpg", "pricing", "maddpg", (120, 40)),
    ("dashboard-warehouse-mappo", "warehouse", "mappo", (120, 40)),
    ("dashboard-fulfillment-qmix", "fulfillment", "qmix", (120, 40)),
    ("dashboard-pricing-maddpg-80x24", "pricing", "maddpg", (80, 24)),
    ("dashboard-fulfillment-qmix-80x24", "fulfillment", "qmix", (80, 24)),
    ("dashboard-warehouse-mappo-200x60", "warehouse", "mappo", (200, 60)),
    ("dashboard-fulfillment-qmix-200x60", "fulfillment", "qmix", (200, 60)),
    # An external env (mpe2) with agents of different action sizes: the generic panel.
    ("dashboard-speaker-listener-maddpg", str(ROOT / "scenarios" / "external" / "speaker-listener.toml"),
     "maddpg", (120, 40)),
]
PICKERS = [("picker", (120, 40)), ("picker-80x24", (80, 24))]

_TEXT = re.compile(r'(<text\b[^>]*?\bx=")([\d.]+)("[^>]*?\btextLength=")([\d.]+)("[^>]*>)(.*?)(</text>)')
_TOKEN = re.compile(r"&#?\w+;|.[\u0300-\u036f]*", re.S)  # a combining mark (r̄) stays in its letter's cell
SPACES = {" ", "&#160;"}


def tidy_svg_for_rsvg(svg: str) -> str:
    """Put every character of a text run on its own grid cell.

    rsvg-convert ignores textLength and drops leading spaces, so runs drawn with a
    fallback font (braille, box drawing) come out too wide or shifted. One <text> per
    character at x0 + k * cell keeps the terminal grid exact.
    """

    def fix(m: re.Match[str]) -> str:
        pre, x, mid, length, post, content, end = m.groups()
        tokens = _TOKEN.findall(content)
        if len(tokens) <= 1:
            return m.group(0)
        cell = float(length) / len(tokens)
        out = []
        for k, tok in enumerate(tokens):
            if tok in SPACES:
                continue
            out.append(f"{pre}{float(x) + k * cell:.1f}{mid}{cell:.1f}{post}{tok}{end}")
        return "".join(out)

    return _TEXT.sub(fix, svg)


def to_png(svg_path: Path) -> Path | None:
    exe = shutil.which("rsvg-convert")
    if exe is None:
        print("rsvg-convert not found: apt-get install librsvg2-bin (PNG skipped)", file=sys.stderr)
        return None
    png = svg_path.with_suffix(".png")
    tidy = svg_path.with_suffix(".rsvg.svg")
    tidy.write_text(tidy_svg_for_rsvg(svg_path.read_text(encoding="utf-8")), encoding="utf-8")
    try:
        subprocess.run([exe, "--zoom", "1.0", str(tidy), "-o", str(png)], check=True)
    finally:
        tidy.unlink(missing_ok=True)
    return png


async def _wait(pilot: object, cond: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        await pilot.pause(0.05)  # type: ignore[attr-defined]
    return False


async def _trained_then_one_step(pilot: object, app: object, train_seconds: float) -> None:
    """Let the dashboard's run learn a little, pause it and take one step (`n`): every panel
    then shows exactly that step."""
    await _wait(pilot, lambda: getattr(app.screen, "charts", None) is not None, 60)  # type: ignore[attr-defined]
    screen = app.screen  # type: ignore[attr-defined]
    await _wait(pilot, lambda: False, train_seconds)
    await pilot.press("space")  # type: ignore[attr-defined]
    await _wait(pilot, lambda: screen.progress is not None and screen.progress.status == "paused", 10)
    await pilot.pause(0.3)  # type: ignore[attr-defined]
    before = screen.frame.scene.step if screen.frame else 0
    await pilot.press("n")  # type: ignore[attr-defined]
    await _wait(pilot, lambda: screen.frame is not None and screen.frame.scene.step > before, 10)


async def picker(stem: str, size: tuple[int, int], out: Path) -> Path:
    from marl_tui.tui.app import MarlApp
    from marl_tui.tui.screens.picker import PickerScreen

    app = MarlApp()
    async with app.run_test(size=size) as pilot:
        await _wait(pilot, lambda: isinstance(app.screen, PickerScreen), 10)
        screen = app.screen
        await _wait(pilot, screen.ready.is_set, 120)
        await pilot.pause(0.5)  # the 0.2 s poll copies the answers into the list
        path = Path(app.save_screenshot(f"{stem}.svg", str(out)))
        await pilot.press("q")
    return path


async def dashboard(stem: str, scenario: str, algo: str, size: tuple[int, int], out: Path,
                    train_seconds: float) -> Path:
    from marl_tui.config import load_scenario
    from marl_tui.tui.app import MarlApp
    from marl_tui.tui.session import RunRequest, no_run_dir

    request = RunRequest(scenario=load_scenario(scenario), algo=algo, seed=0, n_envs=64)
    app = MarlApp(request=request, run_dir=no_run_dir)
    async with app.run_test(size=size) as pilot:
        await _trained_then_one_step(pilot, app, train_seconds)
        await pilot.pause(0.5)
        path = Path(app.save_screenshot(f"{stem}.svg", str(out)))
        await pilot.press("q")
    return path


class Failing(Run):
    """A trainer whose third step raises (it is pickled into the app's training process)."""

    def train_step(self) -> None:
        if self.iteration >= 2:
            raise FloatingPointError("critic_loss became nan (a demonstration failure)")
        super().train_step()


async def error_view(stem: str, size: tuple[int, int], out: Path) -> Path:
    """What a training failure looks like: a trainer whose third step raises."""
    from marl_tui.config import load_scenario
    from marl_tui.tui.app import MarlApp
    from marl_tui.tui.session import RunRequest, no_run_dir

    request = RunRequest(scenario=load_scenario("pricing"), algo="mappo", seed=0, n_envs=8)
    app = MarlApp(request=request, run_dir=no_run_dir, run_class=Failing)
    async with app.run_test(size=size) as pilot:
        await _wait(pilot, lambda: getattr(app.screen, "state", lambda: "")() == "error", 60)
        await pilot.pause(0.5)
        path = Path(app.save_screenshot(f"{stem}.svg", str(out)))
        await pilot.press("q")
    return path


async def replay(stem: str, size: tuple[int, int], out: Path) -> Path:
    """A recorded run: a short MAPPO run on pricing, replayed at its first checkpoint's greedy episode."""
    import tempfile

    from marl_tui.config import load_scenario
    from marl_tui.train.build import build_run
    from marl_tui.train.run_config import RunConfig
    from marl_tui.train.rundir import init_run_dir
    from marl_tui.tui.app import MarlApp
    from marl_tui.tui.recording import open_recording
    from marl_tui.tui.screens.replay import ReplayScreen

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "pricing-mappo-s0"
        run = build_run(RunConfig(scenario=load_scenario("pricing"), algo="mappo", seed=0, n_envs=64,
                                  steps=64 * 3000, out_dir=run_dir, checkpoint_every=64 * 1000))
        init_run_dir(run, run_dir)
        run.run()
        recording = open_recording(run_dir)
        app = MarlApp(first_screen=ReplayScreen(recording.source, recording.scenario))
        async with app.run_test(size=size) as pilot:
            await pilot.pause(0.5)
            await pilot.press("right_square_bracket", "right_square_bracket", "enter")
            for _ in range(12):
                await pilot.press("right")
            await pilot.pause(0.5)
            path = Path(app.save_screenshot(f"{stem}.svg", str(out)))
            await pilot.press("q")
    return path


async def lesson(stem: str, name: str, steps: int, size: tuple[int, int], out: Path) -> Path:
    """A lesson of the study guide, `steps` equations in."""
    from marl_tui.learn.lesson import load_lesson
    from marl_tui.tui.app import MarlApp
    from marl_tui.tui.screens.lesson import LessonScreen

    app = MarlApp(first_screen=LessonScreen(load_lesson(name)))
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.5)
        for _ in range(steps):
            await pilot.press("right")
        await pilot.pause(0.5)
        path = Path(app.save_screenshot(f"{stem}.svg", str(out)))
        await pilot.press("q")
    return path


async def doctor(stem: str, size: tuple[int, int], out: Path) -> Path:
    """The doctor's banner: MAPPO on the warehouse with no entropy bonus and a learning rate
    too high (exploration collapses while the answer is still far)."""
    from marl_tui.config import load_scenario
    from marl_tui.tui.app import MarlApp
    from marl_tui.tui.session import RunRequest, no_run_dir

    request = RunRequest(scenario=load_scenario("warehouse"), algo="mappo", seed=0, n_envs=64,
                         overrides={"entropy_coef": 0.0, "lr": 0.05})
    app = MarlApp(request=request, run_dir=no_run_dir)
    async with app.run_test(size=size) as pilot:
        found = await _wait(pilot, lambda: bool(getattr(app.screen, "_findings", ())), 180)
        if found:
            await pilot.press("space")
            await pilot.pause(1.0)
        path = Path(app.save_screenshot(f"{stem}.svg", str(out)))
        await pilot.press("q")
    return path


# (file stem, scenario, algorithm, size, keys pressed in the what-if view)
WHATIFS = [
    ("whatif-pricing-maddpg", "pricing", "maddpg", (120, 40), ("m", "m")),  # store 1 at the collusive price
    ("whatif-fulfillment-qmix-80x24", "fulfillment", "qmix", (80, 24), ("left",)),  # store 1 decides otherwise
]


async def whatif(stem: str, scenario: str, algo: str, size: tuple[int, int], keys: tuple[str, ...], out: Path,
                 train_seconds: float) -> Path:
    """The what-if view on a paused step after some training: `keys` set store 1's alternative."""
    from marl_tui.config import load_scenario
    from marl_tui.tui.app import MarlApp
    from marl_tui.tui.screens.whatif import WhatIfScreen
    from marl_tui.tui.session import RunRequest, no_run_dir

    request = RunRequest(scenario=load_scenario(scenario), algo=algo, seed=0, n_envs=64)
    app = MarlApp(request=request, run_dir=no_run_dir)
    async with app.run_test(size=size) as pilot:
        # The step taken while paused: the run keeps the state it started from, what-if's ground.
        await _trained_then_one_step(pilot, app, train_seconds)
        await pilot.press("w", *keys)
        view = app.screen
        await _wait(pilot, lambda: isinstance(view, WhatIfScreen) and view.answer is not None
                    and view.answer.id == view.asked, 30)
        await pilot.pause(0.5)
        path = Path(app.save_screenshot(f"{stem}.svg", str(out)))
        await pilot.press("q")
    return path


async def main(only: list[str], train_seconds: float, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for stem, size in PICKERS:
        if not only or "picker" in only:
            made.append(await picker(stem, size, out))
    for stem, scenario, algo, size in DASHBOARDS:
        if not only or Path(scenario).stem in only:
            made.append(await dashboard(stem, scenario, algo, size, out, train_seconds))
    if not only or "error" in only:
        made.append(await error_view("dashboard-error-100x30", (100, 30), out))
    if not only or "replay" in only:
        made.append(await replay("replay-pricing-mappo", (120, 40), out))
    if not only or "lesson" in only:
        made.append(await lesson("lesson-mappo-warehouse", "mappo-warehouse", 9, (120, 40), out))
        made.append(await lesson("lesson-qmix-fulfillment-80x24", "qmix-fulfillment", 5, (80, 24), out))
    if not only or "doctor" in only:
        made.append(await doctor("dashboard-doctor-warehouse-mappo", (120, 40), out))
    for stem, scenario, algo, size, keys in WHATIFS:
        if not only or "whatif" in only:
            made.append(await whatif(stem, scenario, algo, size, keys, out, train_seconds))
    for svg in made:
        png = to_png(svg)
        print(f"{svg.relative_to(ROOT) if svg.is_relative_to(ROOT) else svg}"
              + (f"  {png.name}" if png else ""))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", default=[],
                        help="picker, pricing, warehouse, fulfillment, speaker-listener, error, replay, lesson, "
                             "doctor, whatif")
    parser.add_argument("--train-seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    asyncio.run(main(args.only, args.train_seconds, args.out))
