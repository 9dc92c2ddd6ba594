"""The setup list: command-line configs first, then the built-ins, then ./configs/, each once."""

from __future__ import annotations

from pathlib import Path

from ens_tui.presets import builtin_dir, discover


def test_builtins_are_found_and_quick_digits_leads() -> None:
    folder = builtin_dir()
    assert folder is not None
    presets = [p for p in discover(cwd=Path("/nonexistent")) if p.source == "builtin"]
    names = [p.name for p in presets]
    assert names[0] == "quick-digits"
    for device in ("cpu2", "gpu2", "cpu2-gpu1"):
        for strategy in ("local", "broadcast", "sequential"):
            assert f"seed-{device}-{strategy}" in names
    assert all(p.config is not None for p in presets)


def test_arguments_come_first_and_bad_files_are_listed_with_their_error(tmp_path: Path) -> None:
    good = tmp_path / "mine.toml"
    good.write_text('name = "mine"\n[train]\nmembers = 3\n')
    bad = tmp_path / "typo.toml"
    bad.write_text("[train]\nmembrs = 3\n")
    local = tmp_path / "configs"
    local.mkdir()
    (local / "extra.toml").write_text('name = "extra"\n')
    presets = discover([good, bad], cwd=tmp_path)
    assert [p.name for p in presets[:2]] == ["mine", "typo"]
    assert presets[0].config is not None and presets[0].config.train.members == 3
    assert presets[1].config is None and presets[1].error and "membrs" in presets[1].error
    assert presets[-1].name == "extra" and presets[-1].source == "local"


def test_a_file_reachable_twice_is_listed_once(tmp_path: Path) -> None:
    folder = builtin_dir()
    assert folder is not None
    presets = discover([folder / "quick-digits.toml"], cwd=folder.parent)
    assert [p.name for p in presets].count("quick-digits") == 1
    assert presets[0].source == "argument"



def test_builtins_follow_quick_digits_in_file_name_order() -> None:
    """The order presets.py's comment describes (and the setup-screen snapshots show)."""
    names = [p.name for p in discover(cwd=Path("/nonexistent")) if p.source == "builtin"]
    assert names[:4] == ["quick-digits", "seed-cpu2-broadcast", "seed-cpu2-gpu1-broadcast", "seed-cpu2-gpu1-local"]
    assert names[1:] == sorted(names[1:])


def test_command_line_overrides_apply_to_every_listed_setup(tmp_path: Path) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text('name = "mine"\n[data]\ndataset = "mnist"\ndownload = true\n')
    presets = discover([mine], cwd=tmp_path, overrides={"data_root": "elsewhere", "members": 3, "seed": None})
    assert all(p.config is not None for p in presets)
    assert {(p.config.data.root, p.config.train.members) for p in presets if p.config} == {("elsewhere", 3)}
    assert presets[0].overridden == ("--data-root", "--members") and presets[0].config.data.download
    broken = discover([mine], cwd=tmp_path, overrides={"members": 0})[0]
    assert broken.config is None and broken.error and "train.members" in broken.error


def test_a_preset_describes_itself_in_one_line(tmp_path: Path) -> None:
    names = {p.name: p.description for p in discover(cwd=Path("/nonexistent"))}
    assert names["quick-digits"].startswith("The quick default: a small ensemble on scikit-learn's bundled digits")
    assert "\n" not in names["seed-cpu2-broadcast"] and "2 epochs over MNIST" in names["seed-cpu2-broadcast"]
    bare = tmp_path / "bare.toml"
    bare.write_text('name = "bare"\n[train]\nmembers = 3\n')
    assert discover([bare], cwd=tmp_path)[0].description.startswith("3 × seed-cnn on digits")
