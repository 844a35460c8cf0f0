"""Thread-safe controls a view uses to steer the training loop.

Every wait checks for stop, so quitting never hangs: a paused loop wakes on
stop(), and the speed limit sleeps on the same condition.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Batched steps per second offered by the app's +/- keys; None means "as fast as it goes".
SPEEDS: tuple[float | None, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, None)


class Controls:
    def __init__(self, paused: bool = False) -> None:
        self._cond = threading.Condition()
        self._paused = paused
        self._step_budget = 0
        self._stopped = False
        self._speed_index = len(SPEEDS) - 1
        self._greedy = False
        self._last_step = 0.0
        self.save_requested = False

    # --- what views call ----------------------------------------------------
    def pause(self) -> None:
        with self._cond:
            self._paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._step_budget = 0
            self._cond.notify_all()

    def step(self, n: int = 1) -> None:
        """While paused: let exactly n more batched steps run."""
        with self._cond:
            self._step_budget += n
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def faster(self) -> float | None:
        with self._cond:
            self._speed_index = min(self._speed_index + 1, len(SPEEDS) - 1)
            return SPEEDS[self._speed_index]

    def slower(self) -> float | None:
        with self._cond:
            self._speed_index = max(self._speed_index - 1, 0)
            return SPEEDS[self._speed_index]

    def set_speed(self, speed: float | None) -> None:
        """Set the limit to one of SPEEDS (what another process's +/- chose)."""
        with self._cond:
            self._speed_index = SPEEDS.index(speed)
            self._cond.notify_all()

    def set_greedy(self, on: bool) -> None:
        with self._cond:
            self._greedy = on
            self._cond.notify_all()

    def request_save(self) -> None:
        with self._cond:
            self.save_requested = True
            self._cond.notify_all()

    # --- what the loop reads ------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def greedy(self) -> bool:
        return self._greedy

    @property
    def speed(self) -> float | None:
        return SPEEDS[self._speed_index]

    def wait_turn(self, on_save: Callable[[], None] | None = None,
                  on_pause: Callable[[], None] | None = None) -> bool:
        """Block until the loop may take one batched step. False means: stop now.

        A save asked for while paused is done here (on_save), so `s` works on a paused run;
        on_pause is called once as the loop settles into a pause (to say so to views).
        """
        with self._cond:
            announced = False
            while self._paused and self._step_budget == 0 and not self._stopped:
                todo = None
                if self.save_requested and on_save is not None:
                    todo = on_save
                elif not announced and on_pause is not None:
                    todo, announced = on_pause, True
                if todo is None:
                    self._cond.wait(timeout=0.25)
                    continue
                self._cond.release()  # a save takes a while: views may pause/stop meanwhile
                try:
                    todo()
                finally:
                    self._cond.acquire()
            if self._stopped:
                return False
            if self._paused:
                self._step_budget -= 1
                return True
            speed = SPEEDS[self._speed_index]
            if speed is not None:
                deadline = self._last_step + 1.0 / speed
                while not self._stopped and not self._paused:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(timeout=min(left, 0.25))
                if self._stopped:
                    return False
            self._last_step = time.monotonic()
            return True
