"""The wall-time estimate (engine.estimate): what a config asks of each rank, where a machine's figures come from,
how `--dry-run` and the setup screen show it, and that it lands within a loose factor of a real run.

Timings are only compared within the broad bounds of the last test (0.2× to 5×), never asserted tightly."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from engine import estimate as est
from engine.config import RunConfig, parse_config

REPO = Path(__file__).resolve().parents[1]


def config(**sections: dict) -> RunConfig:
    base = {"data": {"dataset": "synthetic", "synthetic_size": 600, "ood": ["noise"]},
            "train": {"members": 3, "epochs": 2}, "report": {"shift": False}}
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return parse_config(base, "test")


def costs(**changes: object) -> est.Costs:
    host, cores = est.machine()
    values = {"host": host, "cores": cores, "fixed_s": 6.0, "sample_s": 1e-4, "eval_ratio": 0.4,
              "model_cost": {"seed-cnn": 1.0, "resnet8": 10.0}, "source": "test figures"}
    return est.Costs(**{**values, **changes})  # type: ignore[arg-type]


@pytest.fixture
def no_figures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A machine without bench results or cached figures: the cache in tmp, no results folders."""
    monkeypatch.delenv(est.COSTS_ENV, raising=False)
    monkeypatch.setenv("ENS_TUI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(est, "results_dirs", lambda: [])
    return tmp_path


# --------------------------------------------------------------------------- the model


@pytest.mark.parametrize("data", [
    {"dataset": "synthetic", "synthetic_size": 600, "ood": ["noise", "rotate"], "val_fraction": 0.1},
    {"dataset": "digits", "limit": 400, "ood": ["invert"], "val_fraction": 0.2},
    {"dataset": "digits", "ood": [], "val_fraction": 0.0},
])
@pytest.mark.parametrize("shift", [False, True])
def test_workload_counts_the_images_the_engine_loads(data: dict, shift: bool) -> None:
    from engine.rank import load_local

    cfg = config(data=data, report={"shift": shift, "shift_size": 100, "severities": [1, 3]})
    work = est.workload(cfg)
    splits, eval_sets = load_local(cfg)
    assert (work.train, work.val) == (len(splits.y_train), len(splits.y_val))
    assert work.scored == sum(len(eval_sets[name]) for name in eval_sets)
    assert work.members_per_rank == 2 and work.cost == 1.0 and not work.notes  # 3 members on 2 ranks


def test_wall_is_fixed_plus_a_ranks_share_of_the_members_work() -> None:
    cfg = config()
    work = est.workload(cfg)
    found = est.estimate(cfg, costs())
    assert isinstance(found, est.Estimate)
    units = 2 * (2 * (work.train + 0.4 * work.val) + 0.4 * work.scored)
    assert found.fixed_s == 6.0 and found.work_s == pytest.approx(units * 1e-4)
    assert found.seconds == pytest.approx(6.0 + units * 1e-4)
    more = est.estimate(config(train={"members": 6, "epochs": 4}), costs())
    assert isinstance(more, est.Estimate) and more.work_s > 2 * found.work_s


def test_model_costs_scale_the_work_and_unknown_models_say_they_are_a_guess() -> None:
    seed = est.estimate(config(), costs())
    resnet = est.estimate(config(model={"name": "resnet8"}), costs())
    mlp = est.estimate(config(model={"name": "mlp"}), costs())
    assert isinstance(seed, est.Estimate) and isinstance(resnet, est.Estimate) and isinstance(mlp, est.Estimate)
    assert resnet.work_s == pytest.approx(10 * seed.work_s)
    assert "guess" in mlp.describe() and mlp.describe(brief=True).endswith("(given figures, a guess)")
    assert "guess" not in seed.describe()


def test_gpu_ranks_and_oversubscribed_cores() -> None:
    gpu = config(parallel={"ranks": [{"count": 1, "device": "cuda"}]})
    assert est.estimate(gpu, costs()) == est.NO_GPU_FIGURES
    assert est.estimate_line(gpu, brief=True) == "none yet for GPU ranks"
    two = est.estimate(config(), costs(cores=2))
    crowded = est.estimate(config(parallel={"ranks": [{"count": 4, "device": "cpu"}]}), costs(cores=2))
    assert isinstance(two, est.Estimate) and isinstance(crowded, est.Estimate)
    # 4 ranks on 2 cores: each rank has one member instead of two, but runs at half speed.
    assert crowded.work_s == pytest.approx(two.work_s)


def test_durations_read_as_people_say_them() -> None:
    assert [est.duration(s) for s in (0.4, 8, 70, 659, 3725)] == ["0 s", "8 s", "1 min 10 s", "11 min", "1 h 02 min"]


# --------------------------------------------------------------------------- where the figures come from


def write_results(folder: Path, name: str, date: str, **changes: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps({"date": date, "estimate_costs": {**asdict(costs()), **changes}}))
    return path


def test_the_latest_bench_results_of_this_machine_are_used(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_results(results, "old.json", "2026-01-01 10:00:00", fixed_s=1.0)
    write_results(results, "new.json", "2026-02-01 10:00:00", fixed_s=2.0)
    write_results(results, "other-host.json", "2026-03-01 10:00:00", fixed_s=3.0, host="elsewhere")
    write_results(results, "other-cores.json", "2026-03-01 10:00:00", fixed_s=4.0, cores=999)
    (results / "no-costs.json").write_text(json.dumps({"date": "2026-04-01"}))
    (results / "broken.json").write_text("{")
    found = est.bench_costs([results])
    assert found is not None and found.fixed_s == 2.0 and "new.json" in found.source
    assert est.bench_costs([tmp_path / "empty"]) is None


def test_override_cache_and_probe_in_that_order(no_figures: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probed: list[int] = []

    def fake_probe() -> est.Costs:
        probed.append(1)
        found = costs(source="probed")
        est.keep(found)
        return found

    monkeypatch.setattr(est, "probe", fake_probe)
    assert est.machine_costs() is None and not probed  # the setup screen never probes
    assert "--dry-run measures" in est.estimate_line(config())
    assert est.estimate_line(config(), brief=True) == "unknown: see --dry-run"
    assert est.machine_costs(allow_probe=True).source == "probed" and len(probed) == 1
    assert est.cache_file().is_file() and est.machine_costs(allow_probe=True).source == "probed"
    assert len(probed) == 1, "the probe's figures are cached per machine"
    path = no_figures / "figures.json"
    path.write_text(json.dumps(asdict(costs(fixed_s=42.0))))
    monkeypatch.setenv(est.COSTS_ENV, str(path))
    assert est.machine_costs().fixed_s == 42.0
    monkeypatch.setenv(est.COSTS_ENV, "none")
    assert est.machine_costs(allow_probe=True) is None
    assert est.estimate_line(config(), allow_probe=True) == f"unknown: {est.COSTS_ENV}=none"


def test_the_module_is_torch_free() -> None:
    code = "import sys, engine.estimate; print(sorted(m for m in ('torch', 'mpi4py', 'textual') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stdout.strip() == "[]"


# --------------------------------------------------------------------------- where it shows


def test_dry_run_and_setup_preview_show_the_estimate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from rich.console import Console

    from ens_tui.cli import main
    from ens_tui.presets import Preset
    from ens_tui.widgets.preset_list import Entry
    from ens_tui.widgets.setup_preview import SetupPreview

    path = tmp_path / "figures.json"
    path.write_text(json.dumps(asdict(costs())))
    monkeypatch.setenv(est.COSTS_ENV, str(path))
    monkeypatch.chdir(REPO)
    assert main(["--run-config", "configs/quick-digits.toml", "--dry-run", "--output-dir", str(tmp_path / "runs")]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("estimated wall time: "))
    assert "≈" in line and "fixed 6 s" in line and str(path) in line
    cfg = config()
    entry = Entry(Preset(path=tmp_path / "x.toml", source="builtin", config=cfg))  # type: ignore[arg-type]
    console = Console(width=120, record=True)
    console.print(SetupPreview()._renderable(entry, cfg, None))
    text = console.export_text()
    assert "est. time" in text and est.estimate_line(cfg, brief=True) in text


# --------------------------------------------------------------------------- against a real run


@pytest.mark.mpi
def test_the_estimate_is_within_a_factor_of_a_tiny_real_run(no_figures: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe's figures (measured here, a few seconds) against a real 2-rank run: loose bounds, no flakiness."""
    figures = est.probe()
    assert figures.sample_s > 0 and figures.fixed_s > 0 and est.cached_costs() == figures
    cfg = parse_config({"output_dir": str(no_figures / "runs"),
                        "data": {"dataset": "digits", "limit": 600, "ood": ["noise"]},
                        "train": {"members": 4, "epochs": 2, "batch_size": 32}}, "tiny")
    path = no_figures / "tiny.toml"
    path.write_text(cfg.to_toml())
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ens_tui.cli", "--run-config", str(path)], capture_output=True,
                          text=True, cwd=REPO, timeout=240)
    actual = time.perf_counter() - start
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    found = est.estimate(cfg, figures)
    assert isinstance(found, est.Estimate)
    assert 0.2 < found.seconds / actual < 5, f"estimate {found.describe()} against {actual:.1f} s"
