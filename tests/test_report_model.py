"""report.json read back as a typed Report: nothing lost, older and newer files still open, bad files explained."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.report import build_report, to_markdown, write_report
from engine.report_model import Report, ReportError
from ens_tui import rundir
from tests.test_report_metrics import full_payload

RECORDED_REPORT = Path(__file__).parent / "tui" / "fixtures" / "recorded-run" / "report.json"


def assert_written_back(written: object, original: object, where: str = "report") -> None:
    """Every key the file had comes back with its value and in its order; keys added since are empty or zero."""
    if isinstance(original, dict):
        assert isinstance(written, dict), where
        assert [k for k in written if k in original] == list(original), f"{where}: key order"
        for key, value in written.items():
            if key in original:
                assert_written_back(value, original[key], f"{where}.{key}")
            else:
                assert not value, f"{where}.{key}: added since the file was written, so empty, not {value!r}"
    elif isinstance(original, list):
        assert isinstance(written, list) and len(written) == len(original), where
        for i, (w, o) in enumerate(zip(written, original, strict=True)):
            assert_written_back(w, o, f"{where}[{i}]")
    else:
        assert written == original, where


def test_a_recorded_report_reads_and_writes_back_unchanged() -> None:
    report = Report.read(RECORDED_REPORT)
    assert_written_back(json.loads(report.to_json()), json.loads(RECORDED_REPORT.read_text()))
    assert report.best_member.member == 0 and set(report.ood) == {"noise", "rotate", "invert"}


def test_a_fresh_report_survives_the_file_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=(3, 40))
    payload = {
        "members": [0, 1, 2], "diverged": [], "dataset": "digits", "classes": ["a", "b", "c"],
        "labels": rng.integers(0, 3, 40), "images": rng.random((40, 1, 8, 8)),
        "sets": {"test": probs, "ood:noise": probs[:, :10]},
    }
    report = build_report(payload)
    json_path, md_path = write_report(tmp_path, report, "t")
    assert Report.read(json_path) == report
    assert md_path.read_text() == to_markdown(report, "t")
    # An AUROC can be NaN (a degenerate set): it is written as JSON's NaN, as json.dumps did, and reads back.
    with_nan = report.model_copy(update={"ood": {"x": report.ood["noise"].model_copy(update={"auroc_mi": math.nan})}})
    assert "NaN" in with_nan.to_json()
    assert math.isnan(Report.model_validate_json(with_nan.to_json()).ood["x"].auroc_mi)


def test_a_report_with_every_section_survives_the_file_round_trip(tmp_path: Path) -> None:
    report = build_report(full_payload())
    assert None not in (report.selective, report.calibration, report.shift, report.diversity, report.per_class)
    json_path, _ = write_report(tmp_path, report, "t")
    assert Report.read(json_path) == report


def test_newer_and_older_reports_still_open(tmp_path: Path) -> None:
    data = json.loads(RECORDED_REPORT.read_text())
    newer = {**data, "frobnication": {"coverage": [1.0]}, "ensemble": {**data["ensemble"], "auc": 0.9}}
    assert Report.model_validate(newer).ensemble.accuracy == data["ensemble"]["accuracy"]
    older = {k: v for k, v in data.items() if k not in ("ood", "most_uncertain", "ensemble_size_curve")}
    report = Report.model_validate(older)
    assert report.ood == {} and report.most_uncertain == [] and report.ensemble_size_curve == []


def test_a_report_from_before_the_subset_size_curve_opens_with_it_empty_and_a_new_one_keeps_it(tmp_path: Path) -> None:
    assert "ensemble_size_subsets" not in json.loads(RECORDED_REPORT.read_text())
    assert Report.read(RECORDED_REPORT).ensemble_size_subsets == []
    report = build_report(full_payload())
    assert len(report.ensemble_size_subsets) == report.members_count
    json_path, _ = write_report(tmp_path, report, "t")
    assert Report.read(json_path).ensemble_size_subsets == report.ensemble_size_subsets


@pytest.mark.parametrize(
    ("text", "why"),
    [("{", "not JSON"), ('{"dataset": "digits"}', "not a valid report: members_count"),
     (json.dumps({**json.loads(RECORDED_REPORT.read_text()), "test_size": "many"}), "test_size")],
)
def test_a_broken_report_gets_a_one_line_reason(tmp_path: Path, text: str, why: str) -> None:
    (tmp_path / "report.json").write_text(text)
    with pytest.raises(ReportError) as err:
        rundir.read_report(tmp_path)
    message = str(err.value)
    assert why in message and str(tmp_path / "report.json") in message and "\n" not in message


def test_no_report_yet_is_none_not_an_error(tmp_path: Path) -> None:
    assert rundir.read_report(tmp_path) is None


def test_reading_a_report_needs_neither_torch_nor_numpy() -> None:
    code = ("import sys; from engine.report_model import Report; "
            f"Report.read({str(RECORDED_REPORT)!r}); print(sorted({{'torch', 'numpy'}} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_report_files_get_the_users_usual_permissions(tmp_path: Path) -> None:
    """report.json and report.md are ordinary files (mkstemp's owner-only 0600 is for secrets, and they hold none)."""
    from engine.atomic import FILE_MODE

    report = Report.read(RECORDED_REPORT)
    for path in write_report(tmp_path, report, "t"):
        assert path.stat().st_mode & 0o777 == FILE_MODE == 0o666 & ~_umask_now()


def _umask_now() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
