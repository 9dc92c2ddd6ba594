"""Validation accuracy and NLL per member per epoch on the live run screen (`a`), not only in the log."""

from __future__ import annotations

from pathlib import Path

from engine import events as ev
from ens_tui.app import EnsTuiApp
from ens_tui.run_state import MemberProgress, RunState, ValPoint
from ens_tui.screens.run import RunScreen
from ens_tui.widgets.validation_plot import ValidationPlot

from .conftest import ReplayLauncher, no_cuda
from .test_pilot import Factory, launch_and_wait_for_ranks, my_config, screen_text, sync, wait_for
from .test_readable_plots import assert_legend_under_the_axes, drawn

HELD = 30
"""Frames of the recorded run sent before it holds: epochs 1 and 2 of m0 and m1 ended, no member done yet."""


def epochs_sent(recorded_run: Path, frames: int) -> list[ev.Epoch]:
    launcher = ReplayLauncher(recorded_run, recorded_run)
    return [e for e in launcher._frames[:frames] if isinstance(e, ev.Epoch)]


@sync
async def test_a_shows_validation_accuracy_then_nll_per_member_while_the_run_trains(
        tmp_path: Path, recorded_run: Path) -> None:
    factory = Factory(recorded_run, tmp_path, hold_after=HELD)
    app = EnsTuiApp([my_config(tmp_path)], launcher_factory=factory, setup_checker=no_cuda, cwd=tmp_path)
    sent = epochs_sent(recorded_run, HELD)
    async with app.run_test(size=(100, 30)) as pilot:
        await launch_and_wait_for_ranks(pilot, app)
        run = app.screen
        assert isinstance(run, RunScreen)
        await wait_for(pilot, lambda: sum(len(m.val) for m in run.state.members.values()) == len(sent))
        assert run.live
        # The state keeps every epoch's validation scores, member by member.
        for member in (0, 1):
            assert run.state.members[member].val == [
                ValPoint(e.epoch + 1, e.val_accuracy, e.val_nll) for e in sent if e.member == member]
        best = max(sent, key=lambda e: e.val_accuracy or 0)

        await pilot.press("a")
        await wait_for(pilot, lambda: "validation accuracy per member" in screen_text(app))
        plot = run.query_one(ValidationPlot)
        lines = drawn(plot)
        assert lines[0].strip() == (f"validation accuracy per member · best m{best.member} "
                                    f"{best.val_accuracy * 100:.1f}% (epoch {best.epoch + 1})")
        latest = {e.member: e for e in sent}
        assert_legend_under_the_axes(lines, [f"━━ m{m} {e.val_accuracy * 100:.1f}%" for m, e in latest.items()])
        await wait_for(pilot, lambda: "a Val" in screen_text(app))

        await pilot.press("a")
        await pilot.pause()
        lowest = min(sent, key=lambda e: e.val_nll or 1e9)
        assert drawn(plot)[0].strip() == (f"validation NLL per member · best m{lowest.member} "
                                          f"{lowest.val_nll:.3f} (epoch {lowest.epoch + 1})")
        assert_legend_under_the_axes(drawn(plot), [f"━━ m{m} {e.val_nll:.3f}" for m, e in latest.items()])

        await pilot.press("a")
        await pilot.pause()
        assert "training loss per member" in screen_text(app), "a third press brings the loss back"

        # New epochs reach the validation plot while it is shown.
        await pilot.press("a")
        factory.launchers[0].release()
        await wait_for(pilot, lambda: not run.state.running)
        assert [p.epoch for p in run.state.members[3].val] == [1, 2, 3]
        assert "━━ m3 93.8%" in "\n".join(drawn(plot))
        await wait_for(pilot, lambda: app.screen is not run)  # the finished run's report
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is run)
        assert "validation accuracy per member" in screen_text(app)
        await pilot.press("v")
        await pilot.pause()
        assert "training loss per member (linear)" in screen_text(app), "v goes back to the loss plot first"


@sync
async def test_the_validation_plot_fits_80x24_with_every_key_in_the_footer(recorded_run: Path) -> None:
    app = EnsTuiApp(show=recorded_run, setup_checker=no_cuda)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RunScreen) and app.screen.has_class("-compact")
        await pilot.press("a")
        await pilot.pause()
        text = screen_text(app)
        assert "val accuracy · best m2 95.1% (epoch 2)" in text, text
        for label in ("m0 93.8%", "m1 90.3%", "m2 94.4%", "m3 93.8%"):
            assert label in text
        footer = text.splitlines()[-1]
        for key in ("r Report", "n New run", "v Loss view", "a Val", "? Keys", "q Quit"):
            assert key in footer, footer


def test_an_epoch_trained_again_after_a_resume_replaces_the_series_from_there() -> None:
    state = RunState()
    for epoch, acc in ((0, 0.5), (1, 0.6), (2, 0.7), (1, 0.65)):
        state.apply(ev.Epoch(member=0, epoch=epoch, epochs=3, train_loss=1.0, val_accuracy=acc, val_nll=1 - acc,
                             seconds=1.0))
    state.apply(ev.Epoch(member=0, epoch=2, epochs=3, train_loss=1.0, seconds=1.0))  # no validation split
    assert state.members[0].val == [ValPoint(1, 0.5, 0.5), ValPoint(2, 0.65, 0.35)]
    assert MemberProgress(member=1).val == []
