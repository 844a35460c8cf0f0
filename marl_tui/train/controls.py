"""Controls as state: how a view wants the run driven, and the run's wait between steps.

A view changes a ControlState (stream/frames.py) and the whole state travels to the run,
which applies it idempotently: flags are set, counters (steps granted, saves and frames asked
for) only grow, so a state that arrives twice, or late, changes nothing. The same class serves
both sides: the app's Controls sends each new state to the training process (`on_change`); the
training process's Controls receives them (`apply`). Every wait checks for stop, so quitting
never hangs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import msgspec

from marl_tui.stream.frames import ControlState, WhatIfQuery

# Batched steps per second offered by the +/- keys; None means "as fast as it goes".
SPEEDS: tuple[float | None, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, None)
IDLE_WAIT = 0.25  # seconds a paused loop sleeps between looks (a change wakes it at once)


class Controls:
    def __init__(self, state: ControlState | None = None,
                 on_change: Callable[[ControlState], None] | None = None) -> None:
        self._cond = threading.Condition()
        self._state = state or ControlState()
        self._on_change = on_change
        self._steps_used = self._state.steps_granted  # grants consumed by paused steps
        self._saves_done = self._state.saves_requested
        self._held = False  # paused by the run itself (an episode ended): until the next state
        self._last_step = 0.0

    # --- changing the state ---------------------------------------------------
    @property
    def state(self) -> ControlState:
        return self._state

    def apply(self, state: ControlState) -> None:
        """Take a view's state. Resuming forfeits grants not used while paused (an `n` pressed
        just before space must not step a later pause)."""
        with self._cond:
            if self._state.paused and not state.paused:
                self._steps_used = state.steps_granted
            self._steps_used = min(self._steps_used, state.steps_granted)
            # A what-if asked while the run holds itself still is a question, not a resume.
            if msgspec.structs.replace(state, whatif=self._state.whatif) != self._state:
                self._held = False
            self._state = state
            self._cond.notify_all()

    def change(self, **fields: object) -> ControlState:
        """A new state from this one with `fields` replaced; applied here and sent on."""
        with self._cond:
            state = msgspec.structs.replace(self._state, **fields)
            self.apply(state)
        if self._on_change is not None:
            self._on_change(state)
        return state

    def pause(self) -> None:
        self.change(paused=True)

    def resume(self) -> None:
        self.change(paused=False)

    def step(self, n: int = 1) -> None:
        """While paused: let exactly n more batched steps run."""
        self.change(steps_granted=self._state.steps_granted + n)

    def stop(self) -> None:
        self.change(stop=True)

    def set_speed(self, speed: float | None) -> None:
        if speed not in SPEEDS:
            raise ValueError(f"speed {speed} is not one of {SPEEDS}")
        self.change(speed=speed)

    def faster(self) -> float | None:
        self.set_speed(SPEEDS[min(SPEEDS.index(self.speed) + 1, len(SPEEDS) - 1)])
        return self.speed

    def slower(self) -> float | None:
        self.set_speed(SPEEDS[max(SPEEDS.index(self.speed) - 1, 0)])
        return self.speed

    def set_greedy(self, on: bool) -> None:
        self.change(greedy=on)

    def request_save(self) -> None:
        self.change(saves_requested=self._state.saves_requested + 1)

    def grant_frame(self) -> None:
        """The view is ready for one more frame."""
        self.change(frames_granted=self._state.frames_granted + 1)

    def ask_what_if(self, greedy: bool, step: int, agent: int, action: float) -> WhatIfQuery:
        """Ask the paused run what agent `agent` doing `action` at `step` would have changed."""
        asked = self._state.whatif
        query = WhatIfQuery(id=(asked.id if asked else 0) + 1, greedy=greedy, step=step, agent=agent,
                            action=action)
        self.change(whatif=query)
        return query

    def hold(self) -> None:
        """Pause from the run's side (pause_each_episode), until the view sends a new state."""
        with self._cond:
            self._held = True

    # --- what the run reads ---------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._state.paused or self._held

    @property
    def stopped(self) -> bool:
        return self._state.stop

    @property
    def greedy(self) -> bool:
        return self._state.greedy

    @property
    def speed(self) -> float | None:
        return self._state.speed

    @property
    def held(self) -> bool:
        return self._held

    @property
    def save_due(self) -> bool:
        return self._state.saves_requested > self._saves_done

    def save_taken(self) -> None:
        self._saves_done = self._state.saves_requested

    def wait_turn(self, on_idle: Callable[[], None] | None = None, greedy_only: bool = False) -> bool:
        """Block until the loop may take one batched step. False means: stop now.

        While paused, on_idle is called as the loop settles into the pause and again after
        every change of state (a save or a frame asked for, a view switched), outside the lock.
        greedy_only: training is over (a finished run the app still shows); only the greedy view
        may step, so the loop waits as if paused while that view is off.
        """
        with self._cond:
            seen: ControlState | None = None
            while not self._state.stop and (
                    (greedy_only and not self._state.greedy)
                    or ((self._state.paused or self._held) and self._steps_used >= self._state.steps_granted)):
                if on_idle is not None and self._state is not seen:
                    seen = self._state
                    self._cond.release()
                    try:
                        on_idle()
                    finally:
                        self._cond.acquire()
                    continue
                self._cond.wait(timeout=IDLE_WAIT)
            if self._state.stop:
                return False
            if self._state.paused or self._held:
                self._steps_used += 1
                return True
            speed = self._state.speed
            if speed is not None:
                deadline = self._last_step + 1.0 / speed
                while not self._state.stop and not self._state.paused:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(timeout=min(left, IDLE_WAIT))
                if self._state.stop:
                    return False
            self._last_step = time.monotonic()
            return True
