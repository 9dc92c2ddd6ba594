"""A user opens a trained run's report, presses 5, types a folder of images, and reads each answer and its verdict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.predictions import load_predictions
from engine.run_folder import RunFolder
from ens_tui.app import EnsTuiApp
from ens_tui.widgets.prediction_card import PredictionCard

from .conftest import no_cuda
from .test_pilot import screen_text, sync, wait_for

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(240)]


def write_digits(run: Path, folder: Path, count: int) -> None:
    """The run's own test images as the PNG files a user would have."""
    images = load_predictions(RunFolder(run).predictions)["images"]
    folder.mkdir()
    for i in range(count):
        Image.fromarray(np.round(images[i, 0] * 255).astype(np.uint8)).save(folder / f"scan-{i}.png")


@sync
async def test_typing_a_folder_scores_every_image_in_it(trained_run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    write_digits(trained_run, folder, 3)
    app = EnsTuiApp(show=trained_run, setup_checker=no_cuda)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        assert app.screen.query_one("#report-tabs").active == "predict"
        await pilot.press(*str(tmp_path / "nowhere"), "enter")
        await wait_for(pilot, lambda: "no input could be scored" in screen_text(app), timeout=60)
        assert "no such file or folder" in screen_text(app)

        field = app.screen.query_one("#predict-path")
        field.value = ""
        await pilot.press(*str(folder), "enter")
        await wait_for(pilot, lambda: len(app.screen.query(PredictionCard)) == 3, timeout=60)
        await pilot.pause()
        text = screen_text(app)
        assert f"3 input(s) from {folder}" in text
        assert all(f"scan-{i}.png" in text for i in range(3))
        assert any(verdict in text for verdict in ("confident", "uncertain", "out-of-distribution"))
        assert "█" in text and "%" in text, "probability bars per class"
        assert "▀" in text, "each image drawn in half-blocks"
