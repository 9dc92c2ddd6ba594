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
