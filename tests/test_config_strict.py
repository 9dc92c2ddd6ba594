"""A user's config mistakes are named, all at once, before anything starts or is written.

Every story runs the real `ens-tui` (in process, or as a process where a traceback could escape) on a real TOML
file: exit code 2, one `ens-tui:` line per problem naming the field and what is allowed, and no run folder.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import (
    MAX_ERRORS,
    ConfigError,
    RunConfig,
    load_config,
    parse_config,
    parse_ranks,
    resume_overrides,
    with_overrides,
)
from engine.preflight import builtin_data_bytes, memory_problem, setup_problem
from tests.conftest import mounted_tmpfs

REPO = Path(__file__).resolve().parents[1]
PRESETS = sorted((REPO / "configs").glob("*.toml"))


def write_config(tmp_path: Path, body: str, output_dir: str | None = None) -> Path:
    """A small digits config whose runs would go to tmp_path/runs, plus `body` (top-level keys, then tables)."""
    path = tmp_path / "cfg.toml"
    out = output_dir if output_dir is not None else str(tmp_path / "runs")
    head = f"name = 'strict'\noutput_dir = {out!r}\n" if "output_dir" not in body else "name = 'strict'\n"
    path.write_text(head + body)
    return path


def refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    """Run the CLI, require exit 2 and no run folder; the stderr lines, `ens-tui: ` taken off."""
    from ens_tui.cli import main

    assert main(list(args)) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert lines and all(line.startswith("ens-tui: ") for line in lines), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "runs").exists(), "a refused config creates nothing"
    return [line.removeprefix("ens-tui: ") for line in lines]


WRONG_TYPE = [
    ("[train]\nmembers = true\n", "train.members: Input should be a valid integer; allowed: 1 ≤ members ≤ 1024",
     "(got boolean true)"),
    ("[train]\nmembers = '4'\n", "train.members: Input should be a valid integer", "(got string '4')"),
    ("[train]\nmembers = 2.0\n", "train.members: Input should be a valid integer", "(got float 2.0)"),
    ("[train]\nlr = '0.1'\n", "train.lr: Input should be a valid number; allowed: 0 < lr ≤ 10", "(got string"),
    ("[train]\nlr = true\n", "train.lr: Input should be a valid number", "(got boolean true)"),
    ("[data]\ncache = 1\n", "data.cache: Input should be a valid boolean", "(got integer 1)"),
    ("[data]\ndownload = 'yes'\n", "data.download: Input should be a valid boolean", "(got string 'yes')"),
    ("[data]\nchannels = true\n", "data.channels: must be 1 (grayscale) or 3 (RGB)", "(got true)"),
    ("[data]\nimage_size = [28, 28.0]\n", "data.image_size[1]: Input should be a valid integer", "(got float 28.0)"),
    ("[report]\nseverities = [1, true]\n", "report.severities[1]: Input should be a valid integer", "(got boolean"),
    ("[[parallel.ranks]]\ncount = '2'\ndevice = 'cpu'\n", "parallel.ranks[0].count: Input should be a valid integer",
     "(got string '2')"),
]


@pytest.mark.parametrize(("body", "expected", "got"), WRONG_TYPE, ids=[w[0].strip() for w in WRONG_TYPE])
def test_a_value_of_the_wrong_type_is_named_not_coerced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, expected: str, got: str
) -> None:
    """`members = true` once trained one member; now it is a mistake the user is told about."""
    path = write_config(tmp_path, body)
    (line,) = refused(tmp_path, capsys, "--run-config", str(path), "--dry-run")
    assert line.startswith(f"{path}: {expected}") and got in line, line


OUT_OF_RANGE = [
    ("[train]\nlr = inf\n", "train.lr: Input should be a finite number; allowed: 0 < lr ≤ 10"),
    ("[train]\nlr = nan\n", "train.lr: Input should be a finite number; allowed: 0 < lr ≤ 10"),
    ("[train]\nlr = 1e30\n", "train.lr: Input should be less than or equal to 10; allowed: 0 < lr ≤ 10"),
    ("[train]\nweight_decay = inf\n", "train.weight_decay: Input should be a finite number; allowed: 0 ≤ weight_decay ≤ 1"),
    ("[train]\nweight_decay = 2\n", "train.weight_decay: Input should be less than or equal to 1"),
    ("[train]\nmomentum = -inf\n", "train.momentum: Input should be a finite number; allowed: 0 ≤ momentum < 1"),
    ("[data]\nval_fraction = nan\n", "data.val_fraction: Input should be a finite number; allowed: 0 ≤ val_fraction < 1"),
    ("[parallel]\nstall_timeout_s = inf\n", "parallel.stall_timeout_s: Input should be a finite number; allowed: 5 ≤"),
]


@pytest.mark.parametrize(("body", "expected"), OUT_OF_RANGE, ids=[o[0].strip() for o in OUT_OF_RANGE])
def test_a_number_out_of_its_range_says_the_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, expected: str
) -> None:
    path = write_config(tmp_path, body)
    (line,) = refused(tmp_path, capsys, "--run-config", str(path), "--dry-run")
    assert line.startswith(f"{path}: {expected}"), line


def test_an_integer_is_still_a_valid_float_and_survives_the_round_trip(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[train]\nlr = 1\nmomentum = 0\nweight_decay = 0\n[data]\nval_fraction = 0\n"
                                  "[parallel]\nstall_timeout_s = 60\n")
    config = load_config(path)
    assert (config.train.lr, config.train.momentum, config.parallel.stall_timeout_s) == (1.0, 0.0, 60.0)
    resolved = tmp_path / "resolved.toml"
    resolved.write_text(config.to_toml())
    assert load_config(resolved) == config


def test_three_mistakes_give_three_lines_in_one_go(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 14 item 13: no more three runs to find three mistakes."""
    path = write_config(tmp_path, "[train]\nmembrs = 3\nlr = inf\n[data]\ncache = 1\n")
    lines = refused(tmp_path, capsys, "--run-config", str(path), "--dry-run")
    assert len(lines) == 3, lines
    assert all(line.startswith(f"{path}: ") for line in lines)
    text = "\n".join(lines)
    assert "unknown key 'train.membrs' (did you mean 'members'?)" in text
    assert "train.lr: Input should be a finite number; allowed: 0 < lr ≤ 10" in text
    assert "data.cache: Input should be a valid boolean" in text


def test_a_file_full_of_mistakes_lists_the_first_ones_and_counts_the_rest() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"report": {"severities": [True] * (MAX_ERRORS + 5)}}, "cfg.toml")
    lines = caught.value.lines
    assert len(lines) == MAX_ERRORS + 1 and lines[-1] == "cfg.toml: … and 5 more problem(s)"
    assert str(caught.value) == "\n".join(lines)


def test_command_line_overrides_keep_working_and_are_checked_the_same_way() -> None:
    """argparse types the overrides, so strict fields take them; the saved config re-validates on resume."""
    saved = load_config(REPO / "configs/quick-digits.toml")
    config = with_overrides(saved, members=3, epochs=20, ranks="cpu:1, CUDA:1", limit=64, deterministic=True)
    assert [(g.count, g.device) for g in config.parallel.ranks] == [(1, "cpu"), (1, "cuda")]
    assert resume_overrides(config, epochs=30, ranks="2").train.epochs == 30
    assert [(g.count, g.device) for g in parse_ranks(" Cuda:1:2")] == [(2, "cuda:1")]
    with pytest.raises(ConfigError) as caught:
        with_overrides(saved, members=0, epochs=0)
    assert caught.value.lines == (
        "command line: train.members: Input should be greater than or equal to 1; allowed: 1 ≤ members ≤ 1024 (got 0)",
        "command line: train.epochs: Input should be greater than or equal to 1; allowed: 1 ≤ epochs ≤ 10000 (got 0)",
    )


def test_a_nul_byte_in_a_path_is_one_line_not_a_traceback(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """It once reached os.mkdir and died with ValueError; the config now refuses it, in a real process."""
    runs = tmp_path / "runs"
    path = tmp_path / "cfg.toml"
    path.write_text(f'output_dir = "{runs}\\u0000x"\n[data]\nroot = "d\\u0000"\nood = ["npz:o\\u0000.npz"]\n'
                    '[model]\nname = "mymodels:Net"\npath = ["m\\u0000"]\n')
    for extra in ([], ["--dry-run"]):
        done = subprocess.run([sys.executable, "-m", "ens_tui", "--run-config", str(path), *extra], cwd=tmp_path,
                              capture_output=True, text=True, env=cli_env, timeout=60)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        lines = done.stderr.splitlines()
        fields = ["output_dir", "data.root", "data.ood[0]", "model.path[0]"]
        assert [line.split(": ")[2] for line in lines] == fields, lines
        assert all(line.startswith(f"ens-tui: {path}: ") and "must not contain a NUL byte" in line for line in lines)
        assert list(tmp_path.iterdir()) == [path], "nothing is created"


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("{file}", "is a file, not a folder"),
        ("{file}/runs", "cannot create it: {file} is a file, not a folder"),
        ("/proc/ens-tui-runs", "/proc is on a pseudo file system"),
        ("/sys/runs", "/sys is on a pseudo file system"),
    ],
)
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "launch"])
def test_an_output_dir_that_cannot_hold_runs_is_refused_by_the_dry_run_as_by_a_launch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, expected: str, dry_run: bool
) -> None:
    """A dry run checks everything a launch checks, and writes nothing while doing so."""
    file = tmp_path / "a-file"
    file.write_text("not a folder")
    out = where.format(file=file)
    path = write_config(tmp_path, "[data]\nlimit = 64\n", output_dir=out)
    before = sorted(tmp_path.iterdir())
    (line,) = refused(tmp_path, capsys, "--run-config", str(path), *["--dry-run"] * dry_run)
    assert line.startswith(f"output_dir {out}: ") and expected.format(file=file) in line, line
    assert sorted(tmp_path.iterdir()) == before and file.read_text() == "not a folder"


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    """A read-only tmpfs, where os.access still says yes to root."""
    yield from mounted_tmpfs(tmp_path / "ro", "ro,size=128m")


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "launch"])
def test_an_output_dir_on_a_read_only_file_system_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], read_only_disk: Path, dry_run: bool
) -> None:
    out = read_only_disk / "runs"
    path = write_config(tmp_path, "[data]\nlimit = 64\n", output_dir=str(out))
    (line,) = refused(tmp_path, capsys, "--run-config", str(path), *["--dry-run"] * dry_run)
    assert line == f"output_dir {out}: {read_only_disk} is on a read-only file system"


def test_a_dry_run_into_a_folder_that_does_not_exist_yet_passes_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ens_tui.cli import main

    out = tmp_path / "not" / "yet" / "runs"
    path = write_config(tmp_path, "[data]\nlimit = 64\n", output_dir=str(out))
    assert main(["--run-config", str(path), "--dry-run"]) == 0, capsys.readouterr().err
    assert f"--run-dir {shlex.quote(str(out) + '/<run-id>')}" in capsys.readouterr().out
    assert not (tmp_path / "not").exists()


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "launch"])
def test_data_that_cannot_fit_in_memory_is_refused_before_launch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dry_run: bool
) -> None:
    """synthetic_size = 1e9 once tried to allocate terabytes on every rank."""
    path = write_config(tmp_path, "[data]\ndataset = 'synthetic'\nsynthetic_size = 1000000000\nlimit = 64\n")
    (line,) = refused(tmp_path, capsys, "--run-config", str(path), *["--dry-run"] * dry_run)
    assert line.startswith("needs at least 6.7 TiB of memory (2 rank(s) × 400 MiB for Python and torch + 2 × 3.3 TiB "
                           "of synthetic images as float32), but "), line
    assert line.endswith(" is available; lower data.synthetic_size")


def test_more_ranks_than_the_memory_holds_are_refused_with_how_many_fit() -> None:
    config = parse_config({"data": {"dataset": "mnist"}, "parallel": {"ranks": [{"count": 16, "device": "cpu"}]}})
    problem = memory_problem(config, builtin_data_bytes(config), available=7 * 2**30)
    assert problem == ("needs at least 9.5 GiB of memory (16 rank(s) × 400 MiB for Python and torch + 16 × 209.4 MiB "
                       "of mnist images as float32), but 7 GiB is available; use at most 11 rank(s) here")
    broadcast = with_overrides(config, strategy="broadcast")
    assert memory_problem(broadcast, builtin_data_bytes(broadcast), available=7 * 2**30) is None, \
        "broadcast: rank 0 alone holds the data"


def test_every_preset_fits_a_modest_machine_and_a_hostfile_skips_the_memory_check() -> None:
    for preset in PRESETS:
        config = load_config(preset)
        assert memory_problem(config, builtin_data_bytes(config), available=4 * 2**30) is None, preset.name
    huge = parse_config({"data": {"dataset": "synthetic", "synthetic_size": 10**9}})
    assert setup_problem(huge) is not None
    assert setup_problem(huge, hostfile="hosts") is None, "other machines' memory cannot be seen from here"
    assert setup_problem(RunConfig()) is None


def test_the_dashboard_lists_every_problem_of_a_preset(tmp_path: Path) -> None:
    from ens_tui.presets import Source, load_preset

    path = write_config(tmp_path, "[train]\nmembers = true\nlr = inf\n")
    preset = load_preset(path, next(iter(Source)))
    assert preset.error is not None and len(preset.error.splitlines()) == 2
