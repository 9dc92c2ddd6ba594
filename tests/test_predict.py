"""A user trains a small ensemble, then asks it about new images: files, folders, arrays, from the shell and Python."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.ensemble import Ensemble, EnsembleError
from engine.predict import FIELDS
from engine.predict import main as predict_main
from engine.predictions import load_predictions
from engine.report_model import Report
from engine.run_folder import RunFolder
from tests.conftest import REPO

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def run(trained_run: Path) -> Path:
    """The session's trained run (tests/conftest.py): 3 members, 1 epoch, 300 digits."""
    return trained_run


@pytest.fixture(scope="module")
def ensemble(run: Path) -> Ensemble:
    return Ensemble.load(run)


@pytest.fixture(scope="module")
def digits(run: Path) -> np.ndarray:
    """The run's own test images as 8-bit grayscale pixels (N, 28, 28), as a user would have them in files."""
    images = load_predictions(RunFolder(run).predictions)["images"]
    return np.round(images[:, 0] * 255).astype(np.uint8)


def predict(run: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ens_tui", "predict", str(run), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def test_files_a_folder_and_an_array_score_as_the_python_api_does(
        run: Path, ensemble: Ensemble, digits: np.ndarray, tmp_path: Path, cli_env: dict[str, str]) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(digits[i]).save(folder / f"digit-{i}.png")
    (folder / "notes.txt").write_text("not an image; a folder's other files are left alone")
    Image.fromarray(digits[3]).save(tmp_path / "single.bmp")
    np.save(tmp_path / "batch.npy", digits[4:6])
    # A colour photo of another size and a grey image with alpha: converted as the training data were.
    Image.fromarray(np.stack([digits[6]] * 3, axis=-1)).resize((40, 36)).save(tmp_path / "photo.jpg", quality=95)
    Image.fromarray(digits[7]).convert("LA").save(tmp_path / "with-alpha.png")

    done = predict(run, str(tmp_path / "single.bmp"), str(folder), str(tmp_path / "batch.npy"),
                   str(tmp_path / "photo.jpg"), str(tmp_path / "with-alpha.png"), "--format", "json", env=cli_env)

    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert [r["input"] for r in records] == [
        str(tmp_path / "single.bmp"), *(str(folder / f"digit-{i}.png") for i in range(3)),
        f"{tmp_path / 'batch.npy'}[0]", f"{tmp_path / 'batch.npy'}[1]",
        str(tmp_path / "photo.jpg"), str(tmp_path / "with-alpha.png"),
    ]
    assert all(list(r) == [*FIELDS, "probabilities"] for r in records)
    gray = ensemble.predict(digits[[3, 0, 1, 2, 4, 5]])
    photo = ensemble.predict(np.asarray(Image.open(tmp_path / "photo.jpg")).transpose(2, 0, 1)[None])  # (1, 3, 36, 40)
    alpha = ensemble.predict(digits[7:8])
    want = ensemble.explain(np.concatenate([gray.member_probs, photo.member_probs, alpha.member_probs], axis=1))
    for k, r in enumerate(records):
        assert r["class_index"] == int(want.prediction[k]) and r["prediction"] == want.class_names[r["class_index"]]
        assert r["probability"] == pytest.approx(float(want.probs[k].max()), abs=1e-6)
        for field in ("entropy", "aleatoric", "mutual_information"):
            assert r[field] == pytest.approx(float(getattr(want, field)[k]), abs=1e-6)
        assert r["member_predictions"] == [want.class_names[c] for c in want.member_predictions[:, k]]
        assert r["verdict"] == want.verdict[k]
        np.testing.assert_allclose(r["probabilities"], want.probs[k], rtol=0, atol=1e-6)
    assert "3 member(s)" in done.stderr
    assert "verdict levels come from only 75 test inputs" in done.stderr, "a small run's verdicts are flagged rough"


def predict_here(run: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The same command in this process (no torch start-up to wait for): exit status, stdout, stderr."""
    status = predict_main([str(run), *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_table_csv_and_out_file(run: Path, digits: np.ndarray, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "two.npy", digits[:2])
    status, table, _ = predict_here(run, str(tmp_path / "two.npy"), capsys=capsys)
    assert status == 0
    assert "two.npy[1]" in table and "verdict" in table and "entropy" in table

    out = tmp_path / "answers.csv"
    status, stdout, _ = predict_here(run, str(tmp_path / "two.npy"), "--format", "csv", "--out", str(out),
                                     capsys=capsys)
    assert status == 0 and stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["input"] for r in rows] == [f"{tmp_path / 'two.npy'}[{i}]" for i in range(2)]
    assert list(rows[0]) == list(FIELDS)
    assert len(rows[0]["member_predictions"].split(";")) == 3

    # Without --format, the file's suffix says which; a 3-D array is a stack of grayscale images, one row each.
    np.save(tmp_path / "three.npy", digits[:3])
    status, _, _ = predict_here(run, str(tmp_path / "three.npy"), "--out", str(tmp_path / "answers.json"),
                                capsys=capsys)
    assert status == 0 and len(json.loads((tmp_path / "answers.json").read_text())) == 3


def test_what_cannot_be_read_is_named_and_skipped(run: Path, digits: np.ndarray, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    Image.fromarray(digits[0]).save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    np.save(tmp_path / "too-bright.npy", np.full((2, 28, 28), 3.5, dtype=np.float32))
    missing = tmp_path / "nowhere.png"

    status, out, err = predict_here(run, str(tmp_path / "broken.png"), str(tmp_path / "good.png"), str(missing),
                                    str(tmp_path / "too-bright.npy"), "--format", "json", capsys=capsys)

    assert status == 0
    assert [r["input"] for r in json.loads(out)] == [str(tmp_path / "good.png")]
    skipped = [line for line in err.splitlines() if ": skipped " in line]
    assert [line.split(": ")[0:2] for line in skipped] == [
        ["ens-tui predict", f"skipped {tmp_path / 'broken.png'}"],
        ["ens-tui predict", f"skipped {missing}"],
        ["ens-tui predict", f"skipped {tmp_path / 'too-bright.npy'}"],
    ]

    status, out, err = predict_here(run, str(tmp_path / "broken.png"), str(missing), "--format", "json",
                                    capsys=capsys)
    assert status == 2 and out == ""
    assert err.splitlines()[-1] == "ens-tui predict: no input could be scored"


def test_a_folder_that_is_no_finished_run_is_refused_in_one_line(
        run: Path, tmp_path: Path, cli_env: dict[str, str]) -> None:
    done = predict(tmp_path, str(tmp_path), env=cli_env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"ens-tui predict: {tmp_path}: not a run folder (expected config.toml and "
                                        "run.json inside)"]

    unfinished = tmp_path / "unfinished"
    shutil.copytree(run, unfinished)
    RunFolder(unfinished).report_json.unlink()
    with pytest.raises(EnsembleError, match="no report.json yet; finish or resume the run first"):
        Ensemble.load(unfinished)

    old = tmp_path / "old"
    shutil.copytree(run, old)
    report = json.loads(RunFolder(old).report_json.read_text())
    del report["inputs"]
    RunFolder(old).report_json.write_text(json.dumps(report))
    with pytest.raises(EnsembleError, match="older ens-tui .* run the config again"):
        Ensemble.load(old)

    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    RunFolder(broken).checkpoint(1).unlink()
    with pytest.raises(EnsembleError, match="member 1's checkpoint is missing"):
        Ensemble.load(broken)

    if not torch.cuda.is_available():
        with pytest.raises(EnsembleError, match="no CUDA device"):
            Ensemble.load(run, device="cuda")


def test_the_api_answers_with_shapes_and_verdicts_from_the_runs_thresholds(ensemble: Ensemble, digits: np.ndarray,
                                                                           run: Path) -> None:
    report = Report.read(RunFolder(run).report_json)
    gray = ensemble.predict(digits[:7])  # uint8 (N, H, W)
    as_float = ensemble.predict(digits[:7, None] / 255.0)  # numpy float64 in [0, 1], (N, C, H, W)

    assert gray.probs.shape == (7, 10) and gray.member_probs.shape == (3, 7, 10)
    assert gray.entropy.shape == gray.aleatoric.shape == gray.mutual_information.shape == (7,)
    assert len(gray.verdict) == 7 and gray.class_names == report.classes
    np.testing.assert_allclose(as_float.probs, gray.probs, atol=1e-6)
    np.testing.assert_allclose(gray.entropy, gray.aleatoric + gray.mutual_information, atol=1e-5)

    assert ensemble.thresholds == report.thresholds.model_dump()
    # Thresholds amid the inputs' own values split them into all three verdicts.
    levels = {"entropy": float(np.median(gray.entropy)), "mutual_information": float(np.sort(gray.mutual_information)[-2])}
    strict = Ensemble(ensemble.module, ensemble.members, ensemble.class_names, levels, ensemble.device, run)
    judged = strict.predict(digits[:7])
    for h, mi, verdict in zip(judged.entropy, judged.mutual_information, judged.verdict, strict=True):
        assert verdict == ("out-of-distribution" if mi > levels["mutual_information"] else
                           "uncertain" if h > levels["entropy"] else "confident")
    assert set(judged.verdict) == {"confident", "uncertain", "out-of-distribution"}

    with pytest.raises(EnsembleError, match=r"float images must lie in \[0, 1\]"):
        ensemble.predict(np.full((1, 28, 28), 255.0, dtype=np.float32))


def test_the_runs_own_test_images_reproduce_its_reported_accuracy(run: Path) -> None:
    saved = load_predictions(RunFolder(run).predictions)
    as_trained = Ensemble.load(run, temperature=False)  # the saved probabilities are the members' own
    out = as_trained.predict(saved["images"])  # [0, 1] floats, de-normalised by the run
    np.testing.assert_allclose(out.member_probs, saved["sets"]["test"], atol=1e-5)
    accuracy = float((out.prediction == saved["labels"]).mean())
    assert accuracy == pytest.approx(Report.read(RunFolder(run).report_json).ensemble.accuracy)


def test_diverged_members_stay_out(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    report = json.loads(RunFolder(copy).report_json.read_text())
    report["diverged"] = [1]
    report["members"][1] = {"member": 1, "diverged": True}
    RunFolder(copy).report_json.write_text(json.dumps(report))

    ensemble = Ensemble.load(copy)

    assert ensemble.members == [0, 2]
    assert ensemble.predict(np.zeros((2, 28, 28), dtype=np.uint8)).member_probs.shape == (2, 2, 10)
