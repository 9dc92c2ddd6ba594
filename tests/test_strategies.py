"""The seed's three strategies on real MPI ranks, and the determinism contract between them.

Each run goes through the real launcher: real `mpiexec`, real ranks, real TCP socket.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import events as ev
from engine.predictions import load_predictions
from engine.run_folder import RunFolder
from tests.conftest import assert_no_process_left, run_launcher, run_pids, tiny_config

pytestmark = pytest.mark.mpi
STRATEGIES = ("local", "broadcast", "sequential")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list[ev.Event], object]]:
    """One tiny run per strategy, shared by the tests below (each costs a few seconds of rank start-up)."""
    out = {}
    for strategy in STRATEGIES:
        config = tiny_config(tmp_path_factory.mktemp(strategy), parallel={"strategy": strategy})
        out[strategy] = run_launcher(config)
    return out


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_strategy_trains_every_member_and_reports_live(runs: dict, strategy: str) -> None:
    events, launcher = runs[strategy]
    assert launcher.status == "finished", launcher.reason
    hellos = [e for e in events if isinstance(e, ev.Hello)]
    expected_ranks = {0} if strategy == "sequential" else {0, 1}
    assert {h.rank for h in hellos} == expected_ranks
    assert len({h.pid for h in hellos}) == len(expected_ranks)
    steps = [e for e in events if isinstance(e, ev.Step)]
    assert steps and all(math.isfinite(s.loss) and s.samples_per_s > 0 for s in steps)
    done = {e.member for e in events if isinstance(e, ev.MemberDone)}
    assert done == {0, 1}
    epochs = [e for e in events if isinstance(e, ev.Epoch)]
    assert all(e.val_accuracy is not None and 0 <= e.val_accuracy <= 1 for e in epochs)
    assert isinstance(events[-1], ev.RunDone) and events[-1].status == "finished"
    assert any(isinstance(e, ev.ReportSaved) for e in events)
    assert_no_process_left(run_pids(events) + [launcher.proc.pid])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_run_folder_holds_everything_to_replay_and_rescore(runs: dict, strategy: str) -> None:
    events, launcher = runs[strategy]
    run_dir: Path = launcher.run_dir
    folder = RunFolder(run_dir)
    info = json.loads(folder.info.read_text())
    assert info["status"] == "finished" and info["endpoint"].startswith("127.0.0.1:")
    assert info["ended"] >= info["started"]
    lines = folder.events.read_text().splitlines()
    assert len(lines) == len(events)
    assert all(json.loads(line).get("token", "") == "" for line in lines), "the run token must not be stored"
    for member in (0, 1):
        state = torch.load(folder.checkpoint(member), weights_only=True)
        assert state["member"] == member and state["epoch"] == 1 and "optimizer" in state and "rng" in state
    report = json.loads(folder.report_json.read_text())
    for key in ("ensemble", "members", "uncertainty", "ensemble_size_curve", "ood", "most_uncertain"):
        assert key in report
    assert set(report["ensemble"]) >= {"accuracy", "nll", "brier", "ece", "reliability"}
    assert set(report["uncertainty"]) == {"entropy", "aleatoric", "mutual_information"}
    assert [c["size"] for c in report["ensemble_size_curve"]] == [1, 2]
    assert set(report["ood"]["noise"]) >= {"auroc_entropy", "auroc_mi"}
    assert "## Ensemble vs members" in folder.report_md.read_text()
    assert not list(run_dir.glob("**/*.tmp")), "atomic writes leave no temp files"


def test_at_equal_threads_per_member_the_strategy_changes_speed_never_the_result(runs: dict) -> None:
    """Member i starts from (seed, i), every member sees the batches of (seed, epoch), and every rank here
    computes with one thread: the members are bit-identical whatever the strategy."""
    preds = {s: load_predictions(RunFolder(runs[s][1].run_dir).predictions) for s in STRATEGIES}
    reference = preds["sequential"]["sets"]["test"]
    for strategy in ("local", "broadcast"):
        assert preds[strategy]["members"] == [0, 1]
        np.testing.assert_array_equal(preds[strategy]["sets"]["test"], reference)
    # …and the two members really are different models.
    assert np.abs(reference[0] - reference[1]).max() > 1e-3


def test_deterministic_runs_are_bit_identical_across_strategies(tmp_path: Path) -> None:
    """`parallel.deterministic`: every strategy — fused too — at the same threads per member, same members.

    Two threads per rank: without `deterministic`, two local ranks on this host would be clamped to one
    thread each while sequential kept two, and float reductions would differ.
    """
    parallel = {"threads_per_rank": 2, "deterministic": True, "max_fused": 2}
    preds = {}
    for strategy in ("sequential", "local", "fused"):
        config = tiny_config(tmp_path / strategy, parallel={**parallel, "strategy": strategy})
        events, launcher = run_launcher(config)
        assert launcher.status == "finished", launcher.reason
        assert {e.threads for e in events if isinstance(e, ev.Hello)} == {2}, "threads are kept, not clamped"
        preds[strategy] = load_predictions(RunFolder(launcher.run_dir).predictions)["sets"]["test"]
    np.testing.assert_array_equal(preds["local"], preds["sequential"])
    np.testing.assert_array_equal(preds["fused"], preds["sequential"])
