"""A finished run's report becomes pictures (figures/*.png) and one page to mail (report.html).

Drawn from report.json alone (no torch), so the rank that writes the report, the dashboard's export and
`python -m engine.figures RUN` all give the same files; a section the report lacks draws nothing.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.figures import FIGURES, draw_figures, ensemble_size
from engine.report_html import write_html
from engine.run_folder import RunFolder
from tests.conftest import REPO
from tests.full_report import full_report, recorded_report, write_run

PNG = b"\x89PNG\r\n\x1a\n"
OLD_REPORT_FIGURES = ["reliability", "ensemble_size", "ood_histograms", "uncertain_inputs"]
"""What a report written before issue 10 still has pictures for."""


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunFolder, list[str]]:
    """A run folder whose report has every section, with its figures drawn (once: drawing takes seconds)."""
    report = full_report()
    folder = RunFolder(write_run(tmp_path_factory.mktemp("full") / "run", report))
    return folder, draw_figures(folder, report)


def test_a_full_report_draws_every_figure_as_a_small_png(full_run: tuple[RunFolder, list[str]]) -> None:
    folder, figures = full_run
    assert figures == [f"figures/{name}.png" for name in FIGURES]
    total = 0
    for path in figures:
        data = (folder.path / path).read_bytes()
        assert data.startswith(PNG), path
        with Image.open(folder.path / path) as image:
            image.verify()
        with Image.open(folder.path / path) as image:
            assert min(image.size) >= 300, (path, image.size)
            assert round(image.info["dpi"][0]) == 150
        total += len(data)
    assert total < 600_000, f"{total} bytes for {len(figures)} figures"


def test_an_old_report_draws_what_it_has_and_drops_stale_figures(tmp_path: Path) -> None:
    folder = RunFolder(write_run(tmp_path / "run", full_report()))
    folder.figures.mkdir()
    (folder.figures / "shift.png").write_bytes(PNG)  # left by an earlier draw of a report that had shift
    figures = draw_figures(folder, recorded_report())
    assert figures == [f"figures/{name}.png" for name in OLD_REPORT_FIGURES]
    assert sorted(p.name for p in folder.figures.iterdir()) == sorted(f"{name}.png" for name in OLD_REPORT_FIGURES)


def test_the_size_figure_shows_the_subset_mean_and_its_range_and_says_so(tmp_path: Path) -> None:
    report, with_subsets = recorded_report(), full_report()
    subsets = with_subsets.ensemble_size_subsets
    legends = {}
    for name, r in (("old", report), ("new", with_subsets)):
        fig = ensemble_size(r)
        assert fig is not None
        legends[name] = [t.get_text() for t in fig.legends[0].get_texts()]
        bands = [c for ax in fig.axes for c in ax.collections]
        assert len(bands) == (2 if name == "new" else 0), name  # the min–max band, on both panels
    assert legends["old"] == ["first k members (member order)", "mean member"]
    assert legends["new"] == ["mean over random subsets of k", "their range (min–max)",
                              "first k members (member order)", "mean member"]
    page = write_html(RunFolder(tmp_path), with_subsets, []).read_text(encoding="utf-8")
    one = subsets[0]
    assert "the mean over random member subsets of each size" in page
    assert f"<td>{one.accuracy:.2%} ± {one.accuracy_sd:.2%}</td>" in page


def test_the_predictions_lend_the_uncertain_inputs_their_colours(tmp_path: Path) -> None:
    report = recorded_report()
    rng = np.random.default_rng(0)
    images = rng.random((report.test_size, 3, 8, 8), dtype=np.float32)
    images[:, 0] = 1.0  # every picture strongly red: a grey thumbnail could not be
    folder = RunFolder(tmp_path)
    draw_figures(folder, report, {"images": images})
    with Image.open(folder.figures / "uncertain_inputs.png") as image:
        rgb = np.asarray(image.convert("RGB"), dtype=int)
    red = (rgb[..., 0] > 200) & (rgb[..., 1] < 150) & (rgb[..., 2] < 150)
    assert red.mean() > 0.1


def test_report_html_is_one_self_contained_page(full_run: tuple[RunFolder, list[str]]) -> None:
    folder, figures = full_run
    report = full_report()
    page = write_html(folder, report, figures).read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", page, re.IGNORECASE)
    assert "<script" not in page and "<link" not in page
    inlined = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert [base64.b64decode(data) for data in inlined] == [
        (folder.path / path).read_bytes() for path in
        ("figures/ensemble_size.png", "figures/reliability.png", "figures/risk_coverage.png",
         "figures/ood_histograms.png", "figures/ood_roc.png", "figures/shift.png", "figures/confusion.png",
         "figures/uncertain_inputs.png")
    ], "every figure inlined once, next to its section's numbers"
    for heading in ("Calibration", "Selective prediction", "Out-of-distribution detection", "Calibration under shift",
                    "Diversity of the members", "Per class", "Most uncertain test inputs"):
        assert f"<h2>{heading}</h2>" in page, heading
    cal = report.calibration
    assert cal is not None and f"{cal.temperature:.3f}" in page
    assert "gaussian_noise" in page and "AUPR-out" in page and "E-AURC" in page


def test_an_old_report_page_shows_the_sections_it_has(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    page = write_html(folder, recorded_report(), []).read_text(encoding="utf-8")
    assert "<h2>Ensemble vs members</h2>" in page and "<h2>Out-of-distribution detection</h2>" in page
    assert "Selective prediction" not in page and "Calibration under shift" not in page
    assert "Temperature scaling is not in this run" in page
    assert "<img" not in page


def test_the_cli_redraws_a_run_from_its_report_json_alone_without_torch(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    RunFolder(run).report_json.write_text(full_report().to_json(), encoding="utf-8")
    code = ("import runpy, sys; sys.argv = ['engine.figures', sys.argv[1]]\n"
            "try:\n    runpy.run_module('engine.figures', run_name='__main__')\n"
            "except SystemExit as done:\n    assert done.code == 0, done.code\n"
            "assert 'torch' not in sys.modules, 'drawing loaded torch'\n")
    done = subprocess.run([sys.executable, "-c", code, str(run)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(p.stem for p in RunFolder(run).figures.iterdir()) == sorted(FIGURES)
    assert RunFolder(run).report_html.stat().st_size > 100_000
    assert f"wrote {len(FIGURES)} figures" in done.stdout


def test_the_cli_says_in_one_line_when_there_is_no_report(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "engine.figures", str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "report.json" in done.stderr
    assert "Traceback" not in done.stderr
