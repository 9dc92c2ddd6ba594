"""The setup screen's edits and the command line's overrides, as a person meets them (issue 14 items 5, 12, 16).

Edits are kept per setup, every field is validated through the config, `s` saves the edited setup, command-line
overrides reach the listed setups in dashboard mode, and `--help` texts are plain and list the presets.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.config import load_config
from ens_tui.app import EnsTuiApp
from ens_tui.dialogs.save_config import SaveConfig
from ens_tui.screens.setup import SetupScreen
from ens_tui.widgets.overrides_form import OverridesForm
from ens_tui.widgets.preset_list import PresetList

from .conftest import REPO, no_cuda
from .test_pilot import Factory, my_config, screen_text, sync, wait_for

SIZES = [(80, 24), (160, 45)]


def setup_app(tmp_path: Path, factory: Factory | None = None, **kwargs: object) -> EnsTuiApp:
    """The app on tmp_path/mine.toml (4 members, 3 epochs, 2 CPU ranks), saving into tmp_path/configs."""
    return EnsTuiApp([my_config(tmp_path)], launcher_factory=factory, setup_checker=no_cuda, cwd=tmp_path,
                     **kwargs)  # type: ignore[arg-type]


def form(app: EnsTuiApp) -> dict[str, str]:
    return app.screen.query_one(OverridesForm).texts()


def highlighted(app: EnsTuiApp) -> str:
    entry = app.screen.query_one(PresetList).selected_entry
    assert entry is not None
    return entry.preset.name


async def launch(pilot, app: EnsTuiApp, factory: Factory):  # noqa: ANN001, ANN201
    await pilot.press("escape", "enter")
    await wait_for(pilot, lambda: factory.configs)
    return factory.configs[-1]


# ---------------------------------------------------------------------- item 12: edits per setup


@pytest.mark.parametrize("size", SIZES)
@sync
async def test_edits_survive_moving_to_another_setup_and_back(
    tmp_path: Path, recorded_run: Path, size: tuple[int, int]
) -> None:
    factory = Factory(recorded_run, tmp_path)
    app = setup_app(tmp_path, factory)
    async with app.run_test(size=size) as pilot:
        assert highlighted(app) == "mine" and form(app)["members"] == "4"
        await pilot.press("m", "7", "escape", "j")
        assert highlighted(app) == "quick-digits" and form(app)["members"] == "5"  # its own, not mine's edit
        await pilot.press("k")
        assert highlighted(app) == "mine" and form(app)["members"] == "7"
        assert "members     7" in screen_text(app)
        config = await launch(pilot, app, factory)
    assert config.train.members == 7 and config.train.epochs == 3


@pytest.mark.parametrize("size", SIZES)
@sync
async def test_lr_strategy_ranks_and_dataset_reach_the_launch(
    tmp_path: Path, recorded_run: Path, size: tuple[int, int]
) -> None:
    factory = Factory(recorded_run, tmp_path)
    app = setup_app(tmp_path, factory)
    async with app.run_test(size=size) as pilot:
        # Escape leaves a field for the list, where the letters are commands again.
        await pilot.press("l", *"0.2", "escape", "t", *"broadcast", "escape", "n", *"cpu:3", "escape", "d",
                          *"synthetic")
        assert form(app) | {"members": "", "epochs": "", "batch_size": ""} == {
            "members": "", "epochs": "", "batch_size": "", "lr": "0.2", "strategy": "broadcast",
            "ranks": "cpu:3", "dataset": "synthetic"}
        text = screen_text(app)
        assert "broadcast" in text and "3 × cpu" in text and "synthetic" in text
        config = await launch(pilot, app, factory)
    assert config.train.lr == 0.2 and config.parallel.strategy == "broadcast"
    assert [(g.count, g.device) for g in config.parallel.ranks] == [(3, "cpu")]
    assert config.data.dataset == "synthetic" and config.train.members == 4


@pytest.mark.parametrize(
    ("keys", "field", "reason"),
    [
        (["m", "0"], "members", "allowed: 1 ≤ members ≤ 1024"),
        (["l", "0"], "lr", "allowed: 0 < lr ≤ 10"),
        (["t", *"ring"], "strategy", "must be one of sequential"),
        (["n", *"gpu:2"], "ranks", "unknown device 'gpu'"),
        (["d", *"imagenet"], "dataset", "must be one of digits"),
    ],
)
@sync
async def test_a_bad_value_shows_its_reason_and_launch_is_disabled(
    tmp_path: Path, recorded_run: Path, keys: list[str], field: str, reason: str
) -> None:
    factory = Factory(recorded_run, tmp_path)
    app = setup_app(tmp_path, factory)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*keys)
        screen = app.screen
        assert isinstance(screen, SetupScreen)
        assert reason in str(screen.query_one(f"#override-{field}-error").render())
        assert reason[:30] in screen_text(app)
        assert screen.query_one(f"#override-{field}").has_class("-invalid")
        assert screen.check_action("launch", ()) is None  # the footer shows Launch disabled
        await pilot.press("enter")  # from the field: told what to fix, nothing launched
        await pilot.press("escape", "enter")  # from the list: the same
        await pilot.pause()
        assert isinstance(app.screen, SetupScreen) and not factory.configs
        assert any(field in n.message and n.severity == "error" for n in app._notifications)
        await pilot.press("s")
        assert not isinstance(app.screen, SaveConfig)  # an invalid setup is not saved either
    assert not (tmp_path / "configs").exists()


@sync
async def test_letters_typed_into_a_field_are_text_not_commands(tmp_path: Path) -> None:
    app = setup_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        # On the list: s saves, r opens the runs, q quits, j/k move, m/e/b/l/t/n/d pick a field.
        await pilot.press("d", *"torchvision:SVHN", *"srqjkmebltnd")
        assert isinstance(app.screen, SetupScreen) and app.is_running
        assert form(app)["dataset"] == "torchvision:SVHNsrqjkmebltnd"


# ---------------------------------------------------------------------- item 12: s saves


@sync
async def test_s_saves_the_edited_setup_and_never_overwrites_without_asking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = setup_app(tmp_path)
    saved = tmp_path / "configs" / "mine-edited.toml"
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("m", "7", "escape", "l", *"0.1", "escape", "s")
        assert isinstance(app.screen, SaveConfig)
        assert app.screen.query_one("#save-name").value == "mine-edited"
        await pilot.press("enter")
        assert isinstance(app.screen, SetupScreen)
        assert any("saved configs/mine-edited.toml" in n.message for n in app._notifications), \
            [n.message for n in app._notifications]
        config = load_config(saved)
        assert (config.name, config.train.members, config.train.lr, config.train.epochs) == ("mine-edited", 7, 0.1, 3)
        assert saved.read_text().startswith("# mine, edited on the setup screen (members 7, lr 0.1).")
        names = [e.preset.name for e in app.screen.query_one(PresetList).entries]
        assert names[-1] == "mine-edited"  # listed now, ready to launch

        # Again: the proposal moves on to a free name; typing an existing one asks before overwriting.
        await pilot.press("s")
        assert app.screen.query_one("#save-name").value == "mine-edited-2"
        before = saved.read_text()
        await pilot.press(*"mine-edited", "enter")
        assert isinstance(app.screen, SaveConfig) and "exists" in screen_text(app)
        assert saved.read_text() == before
        await pilot.press("escape")
        assert isinstance(app.screen, SetupScreen) and saved.read_text() == before
        await pilot.press("m", "9", "escape", "s", *"mine-edited", "enter", "enter")
        assert isinstance(app.screen, SetupScreen)
        assert load_config(saved).train.members == 9
    assert sorted(p.name for p in (tmp_path / "configs").iterdir()) == ["mine-edited.toml"]


# ---------------------------------------------------------------------- item 5: overrides in dashboard mode


@pytest.mark.parametrize("size", SIZES)
@sync
async def test_command_line_overrides_reach_the_dashboard_preview_and_launch(
    tmp_path: Path, recorded_run: Path, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ens_tui.app
    from ens_tui.cli import main

    monkeypatch.chdir(REPO)
    handed: dict[str, object] = {}
    monkeypatch.setattr(ens_tui.app, "run_app", lambda paths, **kwargs: handed.update(kwargs, paths=paths) or 0)
    root = "elsewhere/mnist"
    assert main(["--data-root", str(root), "--members", "3", "configs/seed-cpu2-broadcast.toml"]) == 0
    assert handed["paths"] == [Path("configs/seed-cpu2-broadcast.toml")]
    assert handed["overrides"] == {"data_root": root, "members": 3}

    factory = Factory(recorded_run, tmp_path)
    app = EnsTuiApp(handed["paths"], launcher_factory=factory, setup_checker=no_cuda,  # type: ignore[arg-type]
                    overrides=handed["overrides"])  # type: ignore[arg-type]
    async with app.run_test(size=size) as pilot:
        assert highlighted(app) == "seed-cpu2-broadcast" and form(app)["members"] == "3"
        text = screen_text(app)  # at 80 columns the row wraps: download on the line below the root
        assert f"data root   {root}" in text and "download = true" in text
        await pilot.press("j")  # a built-in gets them too
        assert highlighted(app) == "quick-digits" and form(app)["members"] == "3"
        await pilot.press("k")
        config = await launch(pilot, app, factory)
    assert config.data.root == root and config.data.download and config.train.members == 3
    assert config.parallel.strategy == "broadcast"


def test_a_bad_override_in_dashboard_mode_fails_before_the_screen(capsys: pytest.CaptureFixture[str]) -> None:
    from ens_tui.cli import main

    assert main(["--members", "0"]) == 2
    err = capsys.readouterr().err
    assert "train.members" in err and err.count("\n") == 1


# ---------------------------------------------------------------------- item 5: the download advice


def _truncated_mnist(root: Path) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        # A header promising 10 labels, and only 3 of them: an interrupted download.
        (raw / name).write_bytes(b"\0\0\x08\x01" + (10).to_bytes(4, "big") + b"\1\2\3")


def test_with_download_already_true_the_advice_is_not_to_set_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ens_tui.cli import main

    monkeypatch.chdir(REPO)
    _truncated_mnist(tmp_path)
    code = main(["--run-config", "configs/seed-cpu2-broadcast.toml", "--data-root", str(tmp_path),
                 "--output-dir", str(tmp_path / "runs"), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "truncated" in err and "delete it so that `download = true` fetches it again" in err
    assert "Set `download = true`" not in err and "re-download it (`download = true`)" not in err


def test_the_missing_data_advice_follows_download() -> None:
    from engine.preflight import missing_data_advice

    assert "Set `download = true`" in missing_data_advice(False, "data")
    advice = missing_data_advice(True, "data")
    assert "Set `download = true`" not in advice and "network" in advice and "data is writable" in advice


# ---------------------------------------------------------------------- item 16: --help texts


def test_help_lists_the_presets_without_loading_torch() -> None:
    code = textwrap.dedent("""
        import contextlib, io, sys
        from ens_tui.cli import main
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                main(["--help"])
            except SystemExit:
                pass
        print(out.getvalue())
        print("TORCH LOADED" if "torch" in sys.modules else "torch-free")
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "120"})
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert out.rstrip().endswith("torch-free")
    presets = out[out.index("presets"):]
    assert "quick-digits" in presets and "The quick default: a small ensemble" in presets
    assert "seed-cpu2-broadcast" in presets and "seed-gpu2-sequential" in presets
    assert all(len(line) <= 120 for line in out.splitlines())


def test_bench_help_is_plain_text() -> None:
    done = subprocess.run([sys.executable, "-m", "ens_tui", "bench", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Seed table" in done.stdout and "--repeats" in done.stdout
    assert "**" not in done.stdout and "`" not in done.stdout
