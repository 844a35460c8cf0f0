"""Seeds batched in one process: S runs of one algorithm on one scenario, differing only in seed,
trained in lockstep by one stacked learner (issue 20; `marl-tui compare --batched-seeds`).

Each seed is an ordinary Run: its own env, run directory and callbacks, and its own algorithm
built exactly as a solo run builds it. The learner stacks those solos (`stack`): one act over every
seed's copies (rows seeds-major: seed s owns rows s*B..(s+1)*B), one update of every seed; each
seed's Loop steps its own env and accounts for its own episodes, each Run calls its callbacks.
Seed s draws from its solo's own generators, so it follows the solo run of seed s.

The solos are written back (`write_back`) before anything reads them: a checkpoint (and the
greedy episode recorded with it), the run's end. Between those they lag behind the learner, so a
batched run records no training frames (their why-panel numbers would be the solo's stale
weights) and its networks are checked for NaN/inf when a checkpoint is written (losses and
returns are checked every update and episode, as in a solo run).

A seed whose callbacks raise a TrainingFault (NaN, divergence) ends in error alone: the others
are written back, restacked without it and train on.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Protocol, cast

import torch

from marl_tui.algos.base import ActOutput, Algorithm, Transition
from marl_tui.errors import UserError
from marl_tui.train.faults import TrainingFault
from marl_tui.train.loop import EpisodeEnd, StepOutcome
from marl_tui.train.run import STATS_SECONDS, Run


class SeedStackable(Protocol):
    """A learner holding several seeds (what `stack` returns: see /algos, supports_seed_stack)."""

    def act(self, obs: torch.Tensor, state: torch.Tensor, explore: bool) -> ActOutput: ...
    def observe(self, transition: Transition) -> None: ...
    def ready(self) -> bool: ...
    def update_seeds(self) -> list[dict[str, float]]: ...
    def write_back(self, solos: Sequence[Algorithm]) -> None: ...


def stack(solos: Sequence[Algorithm]) -> SeedStackable:
    """The solos' learner, stacked (their class's `stack`)."""
    return cast(SeedStackable, type(solos[0]).stack(solos))  # type: ignore[attr-defined]


def check_stackable(algo: type[Algorithm]) -> None:
    if not algo.supports_seed_stack:
        raise UserError(f"--algo {algo.name}: {algo.title} does not train seeds batched; train each "
                        "seed on its own with `marl-tui train --seed N`")


def cat_transitions(parts: Sequence[Transition]) -> Transition:
    """Every seed's transition as one, seeds-major (dim 0 of every tensor)."""
    tensors = {f.name: torch.cat([getattr(p, f.name) for p in parts])
               for f in dataclasses.fields(Transition) if f.name != "extras"}
    extras = {k: torch.cat([p.extras[k] for p in parts]) for k in parts[0].extras}
    return Transition(**tensors, extras=extras)


def seed_rows(out: ActOutput, s: int, copies: int) -> ActOutput:
    """Seed s's part of an act over every seed's copies, laid out in memory as the whole is."""
    rows = slice(s * copies, (s + 1) * copies)
    return ActOutput(laid_out_as(out.actions[rows], out.actions),
                     {k: laid_out_as(v[rows], v) for k, v in out.extras.items()})


def laid_out_as(part: torch.Tensor, whole: torch.Tensor) -> torch.Tensor:
    """`part` dense, its dims in `whole`'s memory order. A learner's act may return a transposed
    layout (agent-major networks); a solo run's env then reduces over that layout, and summing
    in another order would change the last bits of its KPIs."""
    if whole.is_contiguous():
        return part  # a slice of dim 0 of a contiguous tensor is contiguous
    order = sorted(range(whole.dim()), key=lambda d: -whole.stride(d))
    return part.permute(order).contiguous().permute([order.index(d) for d in range(whole.dim())])


class SeedBatch:
    def __init__(self, runs: Sequence[Run]) -> None:
        if not runs:
            raise ValueError("a seed batch needs at least one run")
        first = runs[0]
        check_stackable(type(first.algo))
        for r in runs[1:]:  # lockstep: one learner, one schedule, one pair of controls
            same = (type(r.algo), r.env.n_envs, r.total_steps, r.env_steps, r.checkpoint_every)
            if same != (type(first.algo), first.env.n_envs, first.total_steps, first.env_steps,
                        first.checkpoint_every) or r.controls is not first.controls:
                raise ValueError("batched seeds must share the algorithm, copies, budget, step, "
                                 "checkpoint interval and controls")
        self.runs = list(runs)
        self.controls = first.controls
        self.copies = first.env.n_envs
        self.learner = self._stack()

    def _stack(self) -> SeedStackable:
        learner = stack([r.algo for r in self.runs])
        for r in self.runs:
            r.learner = cast(Algorithm, learner)
        return learner

    def write_back(self) -> None:
        """Every solo holds its seed's state (what its checkpoint saves, what its views read)."""
        self.learner.write_back([r.algo for r in self.runs])

    @property
    def env_steps(self) -> int:
        return self.runs[0].env_steps

    # ------------------------------------------------------------------ the runs
    def run(self) -> None:
        """Train every seed until the budget is spent or the controls say stop (as Run.run)."""
        for r in self.runs:
            r.begin()
        last_stats = 0.0
        try:
            while self.runs and self.env_steps < self.runs[0].total_steps:
                if not self.controls.wait_turn(on_idle=self._idle):
                    self._set_status("stopped")
                    break
                for r in self.runs:
                    r.resume_rate()
                self.step()
                now = time.monotonic()
                if now - last_stats >= STATS_SECONDS:
                    for r in self.runs:
                        r.publish()
                    last_stats = now
            else:
                self._set_status("finished")
        except Exception as exc:
            for r in self.runs:
                r.fail(exc)
            raise
        finally:
            if self.runs:
                self.write_back()
            for r in self.runs:
                r.end()

    def step(self) -> None:
        """One batched step of every seed: update, act, each env steps, observe, callbacks."""
        if self.learner.ready():
            metrics = {id(r): m for r, m in zip(self.runs, self.learner.update_seeds(), strict=True)}
            for r in self.runs:
                r.loop.updates += 1
            self._each(lambda r: r.record_update(metrics[id(r)]))
        runs = self.runs
        out = self.learner.act(torch.cat([r.loop.obs for r in runs]),
                               torch.cat([r.loop.state for r in runs]), explore=True)
        before = self.env_steps
        taken: list[tuple[StepOutcome, EpisodeEnd | None]] = []
        transitions: list[Transition] = []
        for s, r in enumerate(runs):
            outcome, ended, transition = r.loop.advance(seed_rows(out, s, self.copies), observe=False)
            taken.append((outcome, ended))
            transitions.append(cast(Transition, transition))
        self.learner.observe(cat_transitions(transitions))
        every = runs[0].checkpoint_every
        if every and runs[0].run_config.out_dir is not None and self.env_steps // every > before // every:
            self.write_back()  # a checkpoint falls on this step: the solos save what the learner holds
        by_run = {id(r): t for r, t in zip(runs, taken, strict=True)}
        self._each(lambda r: r.after_step(*by_run[id(r)]))

    def _each(self, call: Callable[[Run], None]) -> None:
        """call(run) for every seed. A seed whose callbacks raise a TrainingFault ends in error;
        the others are restacked without it and go on."""
        failed: list[Run] = []
        for r in self.runs:
            try:
                call(r)
            except TrainingFault as exc:
                r.fail(exc)
                failed.append(r)
        if not failed:
            return
        self.write_back()
        self.runs = [r for r in self.runs if r not in failed]
        for r in failed:
            r.end()
        if self.runs:
            self.learner = self._stack()

    def _set_status(self, status: str) -> None:
        for r in self.runs:
            r.status = status

    def _idle(self) -> None:
        for r in self.runs:
            r.publish()
