"""A user writes config files; good ones load, bad ones get one clear line and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import (
    OVERRIDE_BY_DEST,
    OVERRIDES,
    ConfigError,
    RunConfig,
    load_config,
    parse_ranks,
    with_overrides,
)

REPO = Path(__file__).resolve().parents[1]
PRESETS = sorted((REPO / "configs").glob("*.toml"))


def test_every_preset_loads_and_the_seed_setups_are_there() -> None:
    names = {p.stem for p in PRESETS}
    for setup in ("cpu2", "gpu2", "cpu2-gpu1"):
        for strategy in ("local", "broadcast", "sequential"):
            assert f"seed-{setup}-{strategy}" in names
    assert {"quick-digits", "ub-mnist-lenet5-x10", "ub-fashion-mnist-lenet5-x10"} <= names
    for path in PRESETS:
        config = load_config(path)
        assert config.name == path.stem
        assert config.data.dataset in ("digits", "mnist", "fashion-mnist")


def test_the_seed_mixed_setup_has_three_ranks_and_sequential_runs_one() -> None:
    mixed = load_config(REPO / "configs/seed-cpu2-gpu1-local.toml")
    assert mixed.parallel.rank_devices() == ["cpu", "cpu", "cuda"]
    sequential = load_config(REPO / "configs/seed-cpu2-gpu1-sequential.toml")
    assert sequential.parallel.world_size == 1
    assert sequential.parallel.rank_devices() == ["cuda"]


def test_resolved_config_round_trips_through_toml(tmp_path: Path) -> None:
    config = load_config(REPO / "configs/quick-digits.toml")
    path = tmp_path / "resolved.toml"
    path.write_text(config.to_toml())
    assert load_config(path) == config


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "bad.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


BAD = [
    ("[train]\nmembrs = 3\n", "unknown key 'train.membrs' (did you mean 'members'?)"),
    ("[train]\nmembers = 0\n", "train.members: Input should be greater than or equal to 1"),
    ("[train]\nmembers = -2\n", "train.members"),
    ("[train]\nepochs = 'two'\n", "train.epochs: Input should be a valid integer"),
    ("[train]\nlr = 0\n", "train.lr: Input should be greater than 0"),
    ("[train]\noptimizer = 'rmsprop'\n", "train.optimizer: must be one of sgd or adam"),
    ("[data]\ndataset = 'imagenet'\n", "data.dataset: must be one of"),
    ("[data]\nval_fraction = 1.5\n", "data.val_fraction"),
    ("[data]\nood = ['gaussian']\n", "unknown OOD set 'gaussian'"),
    ("[model]\nname = 'vgg'\n", "model.name: must be one of seed-cnn, mlp, lenet5, resnet8, torchvision:BUILDER"),
    ("[parallel]\nstrategy = 'ring'\n", "parallel.strategy: must be one of"),
    ("[parallel]\nranks = [{count = 2, device = 'tpu'}]\n", "unknown device 'tpu'"),
    ("[parallel]\nranks = [{count = 0, device = 'cpu'}]\n", "parallel.ranks[0].count"),
    ("[parallel]\nranks = []\n", "parallel.ranks"),
    ("[parallel]\nthreads_per_rank = 0\n", "parallel.threads_per_rank"),
    ("colour = 'blue'\n", "unknown key 'colour'; keys allowed in top level"),
    ("name = 'has spaces'\n", "name: String should match pattern"),
    ("[train\nmembers = 2\n", "invalid TOML"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not a text file"),
    ("seed = -1\n", "seed: Input should be greater than or equal to 0"),
]


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[b[1][:30] for b in BAD])
def test_bad_config_gives_one_clear_line(tmp_path: Path, text: str | bytes, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert expected in message
    assert "\n" not in message


def test_missing_file_and_directory_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_ranks_override_syntax() -> None:
    assert [(g.count, g.device) for g in parse_ranks("3")] == [(3, "cpu")]
    assert [(g.count, g.device) for g in parse_ranks("cpu:2,cuda:1")] == [(2, "cpu"), (1, "cuda")]
    assert [(g.count, g.device) for g in parse_ranks("cuda:1:2")] == [(2, "cuda:1")]
    with pytest.raises(ConfigError, match="--ranks"):
        parse_ranks("cpu:x")
    config = with_overrides(RunConfig(), members=5, strategy="broadcast", ranks="4")
    assert (config.train.members, config.parallel.strategy, config.parallel.world_size) == (5, "broadcast", 4)
    with pytest.raises(ConfigError, match="command line: train.members"):
        with_overrides(RunConfig(), members=0)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--run-config", "{bad}"], "unknown key 'train.membrs'"),
        (["--run-config", "{missing}"], "no such config file"),
        (["--run-config", "configs/quick-digits.toml", "--members", "0"], "train.members"),
        (["--run-config", "configs/quick-digits.toml", "--ranks", "cuda:2"], "needs CUDA"),
        (["--run-config", "{mnist}", "--data-root", "{tmp}"], "mnist: no data under"),
        (["{bad}"], "unknown key 'train.membrs'"),
        (["show", "{tmp}"], "not a run folder"),
        (["--run-config", "configs/quick-digits.toml", "--mpiexec", "{tmp}/nope"], "not found or not executable"),
        (["--run-config", "configs/quick-digits.toml", "--mpiexec", "{badexec}"], "cannot start"),
    ],
)
def test_cli_refuses_bad_input_with_exit_2_and_no_traceback(
    tmp_path: Path, args: list[str], expected: str, cli_env: dict[str, str]
) -> None:
    bad = write(tmp_path, "[train]\nmembrs = 3\n")
    badexec = tmp_path / "badexec"
    badexec.write_text("not a program")
    badexec.chmod(0o755)
    mnist = tmp_path / "mnist.toml"
    mnist.write_text("[data]\ndataset = 'mnist'\ndownload = false\n")
    args = [a.format(bad=bad, missing=tmp_path / "missing.toml", tmp=tmp_path, mnist=mnist, badexec=badexec)
            for a in args]
    cli_env["CUDA_VISIBLE_DEVICES"] = ""
    done = subprocess.run(
        [sys.executable, "-m", "ens_tui", *args, "--output-dir", str(tmp_path / "runs")] if args[0] != "show"
        else [sys.executable, "-m", "ens_tui", *args],
        cwd=REPO, capture_output=True, text=True, env=cli_env, timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert expected in output
    assert "Traceback" not in output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[b[1][:30] for b in BAD])
def test_the_cli_turns_every_bad_config_into_exit_2(
    tmp_path: Path, text: str | bytes, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from ens_tui.cli import main

    path = write(tmp_path, text)
    assert main(["--run-config", str(path), "--output-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ens-tui: ") and expected in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists(), "nothing is created for a refused config"


def test_every_override_lands_on_its_config_field_and_is_an_option_of_the_cli() -> None:
    """One table drives the CLI's options and `with_overrides`: each flag sets exactly its field."""
    from ens_tui.cli import _parser

    values = {int: 7, str: "x", bool: True}
    special = {"--ranks": "3", "--strategy": "broadcast", "--dataset": "synthetic", "--limit": 64}
    options = {a for action in _parser()._actions for a in action.option_strings}
    for override in OVERRIDES:
        assert override.flag in options
        value = special.get(override.flag, values[override.type])
        changed = with_overrides(RunConfig(), **{override.dest: value}).model_dump()
        default = RunConfig().model_dump()
        *parents, field = override.path
        for part in parents:
            changed, default = changed[part], default[part]
        assert changed[field] != default[field], override.flag
    assert OVERRIDE_BY_DEST["strategy"].choices() == ("sequential", "local", "broadcast", "fused")
    assert with_overrides(RunConfig(), deterministic=True).parallel.deterministic
    assert not RunConfig().parallel.deterministic


def test_the_allowed_values_are_spelled_once() -> None:
    from typing import get_args

    from engine.config import DATASETS, OOD_SHIFTS, Dataset, OodShift
    from engine.preflight import FILE_DATASETS

    assert DATASETS == get_args(Dataset) and OOD_SHIFTS == get_args(OodShift)
    assert set(FILE_DATASETS) <= set(DATASETS)
    assert {"digits", "synthetic"} == set(DATASETS) - set(FILE_DATASETS), "only these need no files"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--run-config", "configs/quick-digits.toml", "--members", "many"], "argument --members: invalid int value"),
        (["--run-config", "configs/quick-digits.toml", "--strategy", "ring"], "parallel.strategy: must be one of"),
        (["--members", "0"], "command line: train.members"),  # dashboard mode checks its overrides up front
        (["--dry-run"], "--dry-run needs --run-config TOML or --resume RUN_DIR"),
    ],
)
def test_command_line_mistakes_are_one_line_and_exit_2(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from ens_tui.cli import main

    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own refusals leave through SystemExit, as for a user
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and expected in err and err.count("\n") == 1, err


def test_deterministic_reaches_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    from ens_tui.cli import main

    assert main(["--run-config", "configs/quick-digits.toml", "--deterministic", "--dry-run"]) == 0
    assert ", deterministic" in capsys.readouterr().out


def test_show_needs_a_run_folder_with_events_to_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.run_folder import RunFolder
    from ens_tui.cli import main

    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    folder.config.write_text(RunConfig().to_toml())
    folder.info.write_text('{"status": "failed"}')
    before = sorted(folder.path.iterdir())
    assert main(["show", str(folder.path)]) == 2
    err = capsys.readouterr().err
    assert "no events.jsonl to replay" in err and err.count("\n") == 1
    assert sorted(folder.path.iterdir()) == before
