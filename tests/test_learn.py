"""Lessons: the guide's worked examples computed by the real env and networks, their plain text
(snapshot), the lesson screen (keys, the last step's live run; snapshot) and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from marl_tui.learn import maddpg_pricing, mappo_warehouse, qmix_fulfillment
from marl_tui.learn.lesson import LESSONS, lesson_text, load_lesson
from marl_tui.tui.app import MarlApp
from marl_tui.tui.screens.lesson import LessonScreen
from marl_tui.tui.session import no_run_dir


class TextSnapshot(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT
    _file_extension = "txt"


def test_pricing_numbers_are_the_formula_not_the_guides_slips() -> None:
    e = maddpg_pricing.example()
    assert e.prices == pytest.approx((5.2, 4.8, 6.1), abs=1e-5)
    assert e.demand == pytest.approx((95.05, 96.05, 92.80), abs=1e-3)
    assert e.profit == pytest.approx((494.26, 461.04, 566.08), abs=1e-2)
    # y_i = r_i + gamma Q_i^-, through MADDPG.target_values
    for y, r, q in zip(e.y, e.profit, e.Q_next, strict=True):
        assert y == pytest.approx(r * e.reward_scale + 0.99 * q, abs=1e-5)
    assert e.update_critic_loss == pytest.approx(sum(e.critic_loss) / 3, rel=1e-4)
    # the env's true slope D_i - 2 p_i; the actor moves the way its critic's slope points
    assert e.true_slope == pytest.approx(tuple((d - 2 * p) * 1e-3 for d, p in zip(e.demand, e.prices,
                                                                                  strict=True)), rel=1e-4)
    for new, old, slope in zip(e.new_prices, e.prices, e.slope, strict=True):
        assert (new - old) * slope > 0


def test_warehouse_numbers() -> None:
    e = mappo_warehouse.example()
    assert (e.mean, e.std) == pytest.approx((35.0, 8.0))
    assert e.reward == -165.0
    value, ret = e.V, e.G
    assert value == pytest.approx(500.0)
    assert ret == pytest.approx(200.0)
    assert e.A_hat == pytest.approx(-300.0)
    assert e.L_guide == pytest.approx(240.0)  # L = -min(0.8 (-300), clip(0.8) (-300))
    assert e.ratio_new_mean == pytest.approx(0.6714, abs=1e-4)  # the guide's "0.8" is a slip
    assert e.L_new_mean == pytest.approx(240.0)  # the clip binds
    assert e.dL_dmean == pytest.approx(300 * 7 / 64, rel=1e-3)  # descent lowers the mean


def test_fulfillment_cheapest_store_wins_and_strict_is_not_representable() -> None:
    e = qmix_fulfillment.example()
    assert e.raw_w1_min < 0 <= e.w_min
    assert e.guide.own_argmax == e.guide.joint_argmax == (0, 0, 0, 0)
    assert e.ranked.own_argmax == e.ranked.joint_argmax == (1, 0, 0, 0)  # A, the cheapest
    fitted = {j.accepts: j.Q_total for j in e.strict.fitted}
    # monotonic: "both accept" cannot be below both single accepts' values at once, as the truth is
    assert fitted[(1, 1)] > -20 + 1 or fitted[(0, 1)] < -5 - 1


@pytest.mark.parametrize("name", list(LESSONS))
def test_print_is_stable(name: str, snapshot: Any) -> None:
    assert lesson_text(load_lesson(name)) == snapshot(extension_class=TextSnapshot)


def test_cli_lists_prints_and_refuses(cli: Callable[..., tuple[int, str, str]]) -> None:
    code, out, _ = cli("learn")
    assert code == 0 and all(name in out for name in LESSONS)
    code, out, _ = cli("learn", "mappo-warehouse", "--print")
    assert code == 0 and "L = −min(0.8 × (-300)" in out and "marl-tui run warehouse-guide --algo mappo" in out
    code, _, err = cli("learn", "qmix-fulfilment")
    assert code == 2 and err.count("\n") == 1 and "did you mean 'qmix-fulfillment'" in err


async def test_lesson_screen_keys_and_watch(tmp_path: Path) -> None:
    lesson = load_lesson("qmix-fulfillment")
    app = MarlApp(first_screen=LessonScreen(lesson), run_dir=no_run_dir, start_paused=True)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, LessonScreen) and screen.index == 0
        await pilot.press("right", "n")
        assert screen.index == 2
        await pilot.press("left")
        assert screen.index == 1
        await pilot.press("enter")  # not the last step: nothing starts
        assert app.screen is screen
        await pilot.press("end")
        assert screen.at_end
        await pilot.press("home")
        assert screen.index == 0
        await pilot.press("end", "enter")
        from marl_tui.tui.screens.dashboard import DashboardScreen

        assert isinstance(app.screen, DashboardScreen)
        assert app.screen.session.request.algo == "qmix"
        assert app.screen.session.request.scenario.name == "fulfillment"
        for session in app.all_sessions:
            session.stop(timeout=5)


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
def test_lesson_screen_snapshot(size: tuple[int, int], snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await pilot.press("right", "right")

    app = MarlApp(first_screen=LessonScreen(load_lesson("maddpg-pricing")), run_dir=no_run_dir)
    assert snap_compare(app, terminal_size=size, run_before=run_before)
