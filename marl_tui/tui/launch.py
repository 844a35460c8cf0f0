"""`marl-tui` (picker) and `marl-tui run` (straight to the dashboard).

The terminal check (tui/terminal.py) comes first, before textual is imported.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marl_tui.tui.terminal import require_terminal

if TYPE_CHECKING:
    from marl_tui.compare.board import Board
    from marl_tui.learn.lesson import Lesson
    from marl_tui.tui.recording import Recording


def _say(line: str) -> None:
    """One line on stderr, if there still is one (a hang-up takes the terminal away)."""
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


def validate(scenario: Any, algo: str, steps: int | None, n_envs: int | None, device: str,
             overrides: dict[str, Any]) -> None:
    """Bad options fail here as one line (exit 2), before the screen is taken over."""
    from marl_tui.algos.registry import algorithm_class, resolve_hparams
    from marl_tui.config import check_run_options
    from marl_tui.train.run_config import resolve_device

    algorithm_class(algo)
    check_run_options(steps=steps, envs=n_envs, device=device)
    resolve_device(device)  # cuda asked for but not there
    resolve_hparams(algo, scenario, overrides)


def launch_app(scenario: Any = None, algo: str | None = None, steps: int | None = None,
               seed: int | None = None, n_envs: int | None = None, device: str = "cpu",
               overrides: dict[str, Any] | None = None, fast_exit: bool = True,
               load: Path | None = None, watch: bool = False, first_screen: Any = None) -> None:
    """Open the picker (no scenario) or the dashboard for one run.

    load: a checkpoint the requested run continues from (`run --load`; a restart of that run
    does too); runs started later from the picker start fresh.

    fast_exit: once the app has closed (and its runs have saved, waiting up to 30 s), leave
    with os._exit. Tearing down torch at interpreter exit takes a second or two, and `q`
    should bring the prompt back at once; a normal exit would also SIGTERM a training
    process still saving.
    """
    require_terminal()  # again: launch_app is also called without the CLI (scripts)
    overrides = dict(overrides or {})
    request = None
    if scenario is not None:
        from marl_tui.tui.session import RunRequest

        algo = algo or "mappo"
        validate(scenario, algo, steps, n_envs, device, overrides)
        request = RunRequest(scenario=scenario, algo=algo, steps=steps, seed=seed, n_envs=n_envs,
                             device=device, overrides=overrides, load=load, watch=watch)
    from marl_tui.tui.app import MarlApp

    app = MarlApp(request=request, device=device, quit_on_signals=True, first_screen=first_screen)
    app.run()
    code = app.return_code or 0
    try:
        # The screen is back. A stopped run writes its final checkpoint; let it finish.
        if not all(session.wait_stopped(timeout=0.3) for session in app.all_sessions):
            _say("marl-tui: writing the final checkpoint…")
            if not all(session.wait_stopped(timeout=30.0) for session in app.all_sessions):
                _say("marl-tui: the training process is still saving; it finishes on its own")
        for session in app.all_sessions:  # quit before a run was built: leave no empty folder
            session.discard_unused_dir()
        saved = [s for s in app.all_sessions if s.run_dir is not None and s.source is not None]
        where = saved[-1].run_dir if saved else None
        status = saved[-1].source.status if saved else None
        if where is not None and code > 128:  # ended by a signal
            _say(f"marl-tui: stopped by signal {code - 128}; the run is saved: "
                 f"continue it with `marl-tui resume {where}`")
        elif where is not None and status == "finished":
            _say(f"marl-tui: the run is finished and saved in {where}: `marl-tui watch {where}` plays "
                 f"its policy, `marl-tui replay {where}` goes through its history, `marl-tui eval "
                 f"{where}` scores it; `marl-tui run --load {where}` trains on from it")
        elif where is not None and status == "error":
            _say(f"marl-tui: the run in {where} ended with an error (shown in the app); its last "
                 "good checkpoint, if one was written, stays there")
        elif where is not None:
            _say(f"marl-tui: the run is saved in {where}: `marl-tui resume {where}` continues it, "
                 f"`marl-tui eval {where}` scores its greedy policy")
    except KeyboardInterrupt:  # Ctrl-C while it saves: the training process saves on its own
        _say("marl-tui: leaving; the training process finishes its checkpoint on its own")
        code = 130
    if fast_exit:
        # Not a normal exit: that would SIGTERM the (daemon) training processes mid-save. Once
        # our end of the pipe is gone they stop and save by themselves.
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def launch_replay(recording: Recording) -> None:
    """Open the replay of a recorded run (nothing trains, nothing is written)."""
    require_terminal("marl-tui replay")
    from marl_tui.tui.screens.replay import ReplayScreen

    launch_app(first_screen=ReplayScreen(recording.source, recording.scenario))


def launch_lesson(lesson: Lesson) -> None:
    """Open a lesson; its last step starts a live run like the picker does."""
    require_terminal("marl-tui learn")
    from marl_tui.tui.screens.lesson import LessonScreen

    launch_app(first_screen=LessonScreen(lesson))


def launch_compare(board: Board) -> int:
    """Open the comparison screen (its engine, if any, starts first); after it closes, stop the
    runs still training (each saves a checkpoint) and write the results. Returns the exit code."""
    require_terminal("marl-tui compare", instead="`marl-tui compare ... --headless`")
    from marl_tui.tui.app import MarlApp
    from marl_tui.tui.screens.compare import CompareScreen

    engine = board.engine
    if engine is not None:
        engine.start()
    app = MarlApp(first_screen=CompareScreen(board), quit_on_signals=True)
    app.run()
    code = app.return_code or 0
    if engine is not None:
        engine.stop()
        if not engine.join(0.5):
            _say("marl-tui: the runs still training are saving their checkpoints…")
            engine.join()
        board.poll()
        board.write_results()
        unfinished = sum(s.status != "finished" for s in engine.states().values())
        again = (f"; {unfinished} run(s) did not finish: the same command continues them" if unfinished else "")
        _say(f"marl-tui: results in {board.results_dir}{again}")
    return code
