"""A user opens a finished run's report and reads the newer tabs: 6 selective prediction, 7 calibration under
shift, 8 the members' diversity (and temperature scaling on 2, every OOD score on 3); an older run says plainly
what it lacks; `e` exports the whole report (every tab), the figures and report.html."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from engine.run_folder import RunFolder
from ens_tui.app import EnsTuiApp
from ens_tui.screens.report import TABS, ReportScreen
from tests.full_report import full_report, write_run

from .conftest import no_cuda
from .test_pilot import screen_text, sync, wait_for

TAB_BAR = "1 summary 2 calibration 3 OOD 4 inputs 5 predict 6 selective 7 shift 8 diversity"
EXPECTED = {
    "2": ("before temperature scaling", "after T = 0.810", "adaptive ECE"),
    "3": ("AUPR-out", "FPR95", "energy"),
    "6": ("AURC", "E-AURC", "acc@95%", "mean member", "risk–coverage, ranked by confidence"),
    "7": ("ECE, clean → severity 5", "accuracy % by severity", "ECE by severity", "gaussian noise"),
    "8": ("disagreement", "KL to ensemble", "error correlation", "accuracy", "true ↓"),
}


@pytest.fixture
def full_run(tmp_path: Path) -> Path:
    """A run folder whose report has every section (the recorded run plus the newer sections)."""
    return write_run(tmp_path / "run", full_report())


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
@sync
async def test_every_new_tab_shows_its_numbers(full_run: Path, size: tuple[int, int]) -> None:
    app = EnsTuiApp(show=full_run, setup_checker=no_cuda)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ReportScreen)
        assert TAB_BAR in " ".join(screen_text(app).split()), "all eight tabs are in sight"
        for key, needles in EXPECTED.items():
            await pilot.press(key)
            await pilot.pause()
            text = screen_text(app)
            for needle in needles:
                assert needle in text, (key, needle)
            assert "not in this run" not in text


@sync
async def test_an_older_run_says_what_is_not_in_it(recorded_run: Path) -> None:
    app = EnsTuiApp(show=recorded_run, setup_checker=no_cuda)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for key, what in (("6", "selective prediction"), ("7", "calibration under shift"), ("8", "diversity")):
            await pilot.press(key)
            await pilot.pause()
            text = " ".join(screen_text(app).split())
            assert f"{what} is not in this run" in text, key
        assert "per-class accuracy and the confusion matrix are not in this run" in text
        await pilot.press("7")
        await pilot.pause()
        assert "[report] shift = true" in " ".join(screen_text(app).split())


def svg_text(svg: str) -> str:
    """The words an SVG screenshot shows, its non-breaking spaces as spaces."""
    return html.unescape(" ".join(re.findall(r">([^<]*)</text>", svg))).replace("\xa0", " ")


@sync
async def test_export_writes_the_whole_report_the_figures_and_the_page(full_run: Path) -> None:
    folder = RunFolder(full_run)
    app = EnsTuiApp(show=full_run, setup_checker=no_cuda)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("e")
        await wait_for(pilot, lambda: any(n.title == "Exported" for n in app._notifications), timeout=120)
        said = next(n.message for n in app._notifications if n.title == "Exported")
    assert said == f"{full_run}/: report.svg (all 8 tabs), report.html, figures/ (8 PNG), report.md, report.json"
    shown = svg_text((full_run / "report.svg").read_text(encoding="utf-8"))
    # One screenful of one tab used to be all it had: every tab is there, each at its full height.
    for needle in ("mean over random member subsets", "before temperature scaling", "invert: AUROC by entropy",
                   "least sure of", "this run was written by an older ens-tui", "risk–coverage, ranked by",
                   "ECE by severity", "error correlation", "true ↓"):
        assert needle in shown, needle
    assert shown.count("1 summary 2 calibration") == len(TABS)
    assert len(list(folder.figures.glob("*.png"))) == 8
    assert "data:image/png;base64," in folder.report_html.read_text(encoding="utf-8")
