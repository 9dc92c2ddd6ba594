"""A user reads the report's and the dashboard's plots: the size curve over random member subsets with both axes
named, legends under the axes instead of over the data, a reliability diagram that shows how many inputs each bar
holds, OOD histograms on one shared range with a log axis on `l`, the loss plot's log and smoothed views on `v`,
and every tab's content scrolling with the keys as soon as it shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import ContentSwitcher, TabbedContent

from ens_tui.app import EnsTuiApp
from ens_tui.screens.report import TABS, ReportScreen
from ens_tui.screens.run import RunScreen
from ens_tui.widgets.entropy_histogram import rebin
from tests.full_report import full_report, write_run

from .conftest import no_cuda
from .test_pilot import screen_text, sync

SIZES = [(80, 24), (160, 48)]
BRAILLE = re.compile("[\u2800-\u28ff]")


@pytest.fixture
def full_run(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run", full_report())


def drawn(widget: Widget) -> list[str]:
    """What a plot on screen draws, line by line (its whole height, scrolled into view or not)."""
    return widget.render().plain.splitlines()  # type: ignore[union-attr]


def assert_legend_under_the_axes(lines: list[str], labels: list[str]) -> None:
    """Every label is on a line below the plot's frame, none inside it (where it would hide data)."""
    bottom = max(i for i, line in enumerate(lines) if "└" in line)
    for label in labels:
        rows = [i for i, line in enumerate(lines) if label in line]
        assert rows and min(rows) > bottom, (label, "\n".join(lines))


@pytest.mark.parametrize("size", SIZES)
@sync
async def test_the_size_plot_is_the_mean_over_member_subsets_with_named_axes(full_run: Path,
                                                                             size: tuple[int, int]) -> None:
    app = EnsTuiApp(show=full_run, setup_checker=no_cuda)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        lines = drawn(app.screen.query_one("#size-curve"))
        text = "\n".join(lines)
        assert "mean over random member subsets of each size" in text
        assert not re.search(r"[L⅃] [\u2800-\u28ff]", text), "the axes are named, not marked L and ⅃"
        assert_legend_under_the_axes(lines, ["accuracy % (left axis)", "NLL (right axis)", "min–max over the subsets"])
        axis_names = next(line for line in lines if "members" in line and "└" not in line)
        assert axis_names.split()[:2] == ["accuracy", "%"] and axis_names.split()[-1] == "NLL"
        assert "│" in text and "┆" in text, "each size's range over its subsets"


@sync
async def test_an_older_report_says_its_size_curve_is_the_first_k_members(recorded_run: Path) -> None:
    app = EnsTuiApp(show=recorded_run, setup_checker=no_cuda)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause()
        text = "\n".join(drawn(app.screen.query_one("#size-curve")))
        assert "first k members, in member order" in text and "min–max" not in text


@pytest.mark.parametrize("size", SIZES)
@sync
async def test_the_reliability_bars_show_their_counts_and_the_diagonal_never_cuts_one(full_run: Path,
                                                                                      size: tuple[int, int]) -> None:
    app = EnsTuiApp(show=full_run, setup_checker=no_cuda)
    async with app.run_test(size=size) as pilot:
        await pilot.press("2")
        await pilot.pause()
        report = app.screen.report  # type: ignore[attr-defined]
        counts = [b.count for b in report.ensemble.reliability if b.count]
        plot = app.screen.query_one("#reliability")
        lines = drawn(plot)
        assert_legend_under_the_axes(lines, ["accuracy", "perfect", f"inputs per bin: {min(counts)}…{max(counts)}"])
        top = min(i for i, line in enumerate(lines) if "┌" in line)
        bottom = max(i for i, line in enumerate(lines) if "└" in line)
        area = lines[top + 1:bottom]
        for column in range(max(map(len, area))):
            cells = [line[column] if column < len(line) else " " for line in area]
            if "█" in cells:
                below_top = cells[cells.index("█"):]
                assert not any(BRAILLE.match(c) for c in below_top), f"the diagonal cuts the bar in column {column}"
        rendered = plot.render()
        shades = {str(span.style) for span in rendered.spans if "█" in rendered.plain[span.start:span.end]}
        assert len(shades) > 2, "bars are shaded by how many inputs their bin holds"


@pytest.mark.parametrize("size", SIZES)
@sync
async def test_ood_histograms_share_one_range_spell_out_their_scores_and_go_log_on_l(full_run: Path,
                                                                                     size: tuple[int, int]) -> None:
    app = EnsTuiApp(show=full_run, setup_checker=no_cuda)
    async with app.run_test(size=size) as pilot:
        await pilot.press("3")
        await pilot.pause()
        plots = list(app.screen.query("EntropyHistogram").results())
        assert len(plots) == 3
        ticks = set()
        for plot in plots:
            lines = drawn(plot)
            assert "AUROC by entropy" in lines[0] and "by mutual information" in lines[0] and "AUROC H" not in lines[0]
            assert_legend_under_the_axes(lines, ["in-distribution (test)", "(OOD)"])
            ticks.add(lines[max(i for i, line in enumerate(lines) if "└" in line) + 1].strip())
        assert len(ticks) == 1, f"one x range for every set: {ticks}"
        assert "l Log y" in screen_text(app)
        await pilot.press("l")
        await pilot.pause()
        for plot in plots:
            text = "\n".join(drawn(plot))
            assert "share (log)" in text and re.search(r"0\.01┤", text), text
        await pilot.press("l")
        await pilot.pause()
        assert all("share (log)" not in "\n".join(drawn(plot)) for plot in plots)
        await pilot.press("1")
        await pilot.pause()
        assert "Log y" not in screen_text(app), "offered on the OOD tab only"


@sync
async def test_every_tab_takes_the_scroll_keys_as_soon_as_it_shows(full_run: Path) -> None:
    app = EnsTuiApp(show=full_run, setup_checker=no_cuda)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ReportScreen)
        for key, tab in zip("12345678", TABS, strict=True):
            if tab == "predict":  # its path field takes the keys (tests/tui/test_predict_tab.py); this run has none
                continue
            await pilot.press(key)
            await pilot.pause()
            focused = app.focused
            assert isinstance(focused, VerticalScroll) and focused in screen.query_one(f"#{tab}").query("*"), tab
        await pilot.press("3")
        await pilot.pause()
        assert "invert:" not in screen_text(app)
        for _ in range(4):
            await pilot.press("pagedown")
        await pilot.pause()
        assert "invert: AUROC by entropy" in screen_text(app), "the last set's plot scrolled into view"
        await pilot.press("up")
        await pilot.press("right")
        await pilot.pause()
        assert screen.query_one(TabbedContent).active == "inputs"
        await pilot.press("left", "left")
        await pilot.pause()
        assert screen.query_one(TabbedContent).active == "calibration"


@sync
async def test_the_loss_plot_cycles_linear_log_and_smoothed_views_on_v(recorded_run: Path) -> None:
    app = EnsTuiApp(show=recorded_run, setup_checker=no_cuda)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RunScreen)
        plot = app.screen.query_one("#loss")
        seen = {}
        for view in ("linear", "log y", "smoothed", "smoothed, log y", "linear"):
            lines = drawn(plot)
            assert lines[0].strip() == f"training loss per member ({view})"
            assert_legend_under_the_axes(lines, ["━━ m0", "━━ m3"])
            seen.setdefault(view, lines)
            await pilot.press("v")
            await pilot.pause()
            if view == "smoothed, log y":  # the ensemble plot comes between the last view and the first
                assert app.screen.query_one("#run-plots", ContentSwitcher).current == "ens-view"
                await pilot.press("v")
                await pilot.pause()
        assert "v Loss view" in screen_text(app)
        assert len({"\n".join(lines[1:]) for lines in seen.values()}) == 4, "each view draws differently"
        ticks = [float(line.split("┤")[0]) for line in seen["log y"] if "┤" in line]
        ratios = [a / b for a, b in zip(ticks, ticks[1:], strict=False)]
        assert max(ratios) / min(ratios) < 1.3, f"log ticks are evenly spaced in ratio: {ticks}"


def test_recounting_onto_the_shared_range_keeps_every_input() -> None:
    assert rebin([0, 1, 2], [3, 5], [0, 0.5, 1, 1.5, 2, 2.5, 3]) == [1.5, 1.5, 2.5, 2.5, 0, 0]
    assert rebin([0, 0.5, 1], [4, 6], [0, 1, 2]) == [10, 0]
    assert sum(rebin([0, 0.7, 1.4, 2.1], [1, 2, 3], [i / 4 for i in range(13)])) == pytest.approx(6)


@sync
async def test_the_selective_and_shift_legends_sit_under_their_axes(full_run: Path) -> None:
    app = EnsTuiApp(show=full_run, setup_checker=no_cuda)
    async with app.run_test(size=(80, 24)) as pilot:
        for key, plot, labels in (("6", "#risk-coverage", ["ensemble (AURC", "mean member (AURC"]),
                                  ("7", "#shift-accuracy", ["ensemble", "mean member"]),
                                  ("7", "#shift-ece", ["ensemble", "mean member"])):
            await pilot.press(key)
            await pilot.pause()
            assert_legend_under_the_axes(drawn(app.screen.query_one(plot)), labels)
