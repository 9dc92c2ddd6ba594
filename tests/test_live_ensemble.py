"""The ensemble while it trains: `ensemble` events from real ranks, the value of the next member, and stopping
at "enough" — against real mpiexec ranks, the real socket and the real run folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine import events as ev
from engine import uncertainty as U
from engine.live import read, read_labels, size_curve
from engine.predictions import load_predictions
from engine.report_model import Report, SizeLaw
from engine.run_folder import RunFolder
from engine.size_law import fit_size_law
from tests.conftest import run_launcher, tiny_config
from tests.test_config_strict import refused, write_config


def recorded(folder: RunFolder) -> list[ev.Event]:
    return [ev.from_dict(json.loads(line)) for line in folder.events.read_text().splitlines()]


def test_every_epoch_a_member_ends_scores_the_ensemble_of_everyone_s_latest_state(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, train={"members": 3, "epochs": 2}, data={"val_fraction": 0.25})
    events, launcher = run_launcher(config)
    folder = RunFolder(launcher.run_dir)
    ensembles = [e for e in events if isinstance(e, ev.Ensemble)]
    assert len(ensembles) == 3 * 2, "one per member and epoch"
    assert [e.type for e in recorded(folder) if isinstance(e, ev.Ensemble)] == ["ensemble"] * 6, "kept in events.jsonl"

    newest = max(ensembles, key=lambda e: e.member_epochs)
    assert (newest.size, newest.members, newest.member_epochs, newest.finished) == (3, [0, 1, 2], 6, [0, 1, 2])
    assert [p.size for p in newest.curve] == [1, 2, 3] and newest.fit is not None
    assert newest.fit.sizes == 3 and newest.fit.projected[0].size == 4
    # Sizes grow as members report epochs: the first event of each rank saw one member's first epoch at least.
    assert min(e.member_epochs for e in ensembles) >= 1 and all(len(e.finished) <= e.size for e in ensembles)

    # The last state is the trained members: what rank 0 scored for the report, from the same checkpoints.
    pred = load_predictions(folder.predictions)
    labels = pred["val_labels"].astype(np.int64)
    final = U.ensemble_mean(pred["sets"]["val"])
    assert newest.val_nll == pytest.approx(U.nll(final, labels), abs=1e-5)
    assert newest.val_accuracy == pytest.approx(U.accuracy(final, labels), abs=1e-9)
    assert newest.disagreement == pytest.approx(U.disagreement(pred["sets"]["val"]), abs=1e-9)
    assert np.array_equal(read_labels(folder), labels)

    report = Report.read(folder.report_json)
    assert report.size_law is not None and report.size_law.sizes == 3 and report.stopped_early is None
    assert "The value of more members" in folder.report_md.read_text()


def test_live_scoring_off_leaves_no_files_and_sends_no_event(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, train={"live_ensemble": False})
    events, launcher = run_launcher(config)
    assert not any(isinstance(e, ev.Ensemble) for e in events)
    assert not RunFolder(launcher.run_dir).live.exists()
    assert any(isinstance(e, ev.RunDone) and e.status == "finished" for e in events)


def test_once_the_gain_flattens_one_rank_hands_out_no_further_member(tmp_path: Path) -> None:
    """Any gain is below a threshold of 10 nats: the third finished member is the last, on one rank exactly."""
    config = tiny_config(tmp_path, train={"members": 6, "stop_when_nll_gain_below": 10.0},
                         data={"val_fraction": 0.25}, parallel={"strategy": "sequential"})
    events, launcher = run_launcher(config)
    folder = RunFolder(launcher.run_dir)
    assert sorted(e.member for e in events if isinstance(e, ev.MemberStart)) == [0, 1, 2]
    assert any(isinstance(e, ev.Log) and e.message.startswith("no further members are handed out: growing the "
                                                                "ensemble to 2 and then 3 members") for e in events)
    report = Report.read(folder.report_json)
    assert report.members_count == 3 and report.stopped_early is not None
    assert report.stopped_early.members == 3 and "each less than 10" in report.stopped_early.reason
    assert "**Stopped early:** 3 members were trained" in folder.report_md.read_text()
    assert [e.status for e in events if isinstance(e, ev.RunDone)] == ["finished"]


def test_the_member_queue_stops_across_ranks_and_members_in_flight_finish(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, train={"members": 8, "stop_when_nll_gain_below": 10.0},
                         data={"val_fraction": 0.25})
    events, launcher = run_launcher(config)
    started = sorted(e.member for e in events if isinstance(e, ev.MemberStart))
    done = sorted(e.member for e in events if isinstance(e, ev.MemberDone))
    assert started == done == list(range(len(started))) and 3 <= len(started) < 8, started
    report = Report.read(RunFolder(launcher.run_dir).report_json)
    assert report.stopped_early is not None and report.stopped_early.members == report.members_count == len(started)


STOP_REFUSED = [
    ("[train]\nstop_when_nll_gain_below = 0.002\n[parallel]\nstrategy = 'broadcast'\n",
     "train.stop_when_nll_gain_below needs members handed out from a queue"),
    ("[train]\nstop_when_nll_gain_below = 0.002\n[parallel]\nplacement = 'static'\n",
     "train.stop_when_nll_gain_below needs members handed out from a queue"),
    ("[train]\nstop_when_nll_gain_below = 0.002\n[data]\nval_fraction = 0\n",
     "train.stop_when_nll_gain_below judges the gain on the validation split; set data.val_fraction above 0"),
    ("[train]\nstop_when_nll_gain_below = -1\n", "train.stop_when_nll_gain_below: Input should be greater than or equal"),
]


@pytest.mark.parametrize(("body", "expected"), STOP_REFUSED, ids=["broadcast", "static", "no-val", "negative"])
def test_stopping_at_enough_is_refused_where_nothing_could_stop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, expected: str
) -> None:
    path = write_config(tmp_path, "[data]\ndataset = 'digits'\n" + body if "[data]" not in body else body)
    (line,) = refused(tmp_path, capsys, "--run-config", str(path), "--dry-run")
    assert expected in line, line


def test_a_curve_that_follows_the_law_gives_the_law_back() -> None:
    a, b = 0.05, 0.2
    law = fit_size_law([1, 2, 3, 4, 5], [a + b / k for k in range(1, 6)])
    assert isinstance(law, SizeLaw)
    assert law.a == pytest.approx(a, abs=1e-12) and law.b == pytest.approx(b, abs=1e-12)
    assert law.next_gain == pytest.approx(b / 5 - b / 6, abs=1e-12)
    assert law.gain_95 == 20, "under the law, 1 − 1/k ≥ 0.95 at k = 20 members"
    assert [p.size for p in law.projected] == [6, 10, 20] and law.projected[-1].nll == pytest.approx(a + b / 20)
    assert fit_size_law([3], [0.1]) is None and fit_size_law([1, 2], [0.1, float("nan")]) is None
    flat = fit_size_law([1, 2, 3], [0.1, 0.1, 0.1])
    assert flat is not None and flat.gain_95 == 3, "nothing left to gain: the members there are enough"


def test_the_size_curve_is_exact_at_both_ends_and_every_order_counts_alike() -> None:
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4), size=(5, 300))
    labels = rng.integers(0, 4, 300)
    curve = size_curve(probs, labels, orders=64)
    assert curve[-1].nll == pytest.approx(U.nll(probs.mean(0), labels), abs=1e-12)
    assert curve[0].nll == pytest.approx(np.mean([U.nll(p, labels) for p in probs]), rel=0.1)
    reversed_members = size_curve(probs[::-1], labels, orders=64)
    assert curve[-1].nll == pytest.approx(reversed_members[-1].nll, abs=1e-12)


def test_an_ensemble_frame_of_the_largest_run_fits_the_socket() -> None:
    from engine.live import curve_sizes
    from engine.report_model import ProjectedNll, SizePoint

    sizes = curve_sizes(1024)
    assert sizes[0] == 1 and sizes[-1] == 1024 and len(sizes) <= 200 and sizes == sorted(set(sizes))
    law = SizeLaw(a=0.1, b=0.2, sizes=1024, next_gain=1e-7, gain_95=20,
                  projected=[ProjectedNll(size=n, nll=0.1) for n in (1025, 2048, 4096)])
    event = ev.Ensemble(size=1024, members=list(range(1024)), member_epochs=10**6, val_accuracy=0.123456789,
                        val_nll=0.123456789, val_ece=0.123456789, mutual_information=0.123456789,
                        disagreement=0.123456789, finished=list(range(1024)),
                        curve=[SizePoint(size=k, accuracy=0.123456789, nll=0.123456789) for k in sizes], fit=law)
    frame = ev.encode(event)
    assert len(frame) < ev.MAX_FRAME_BYTES and ev.decode(frame) == event


def test_a_file_being_replaced_or_of_another_shape_is_skipped(tmp_path: Path) -> None:
    from engine.live import record

    folder = RunFolder(tmp_path)
    record(folder, 0, 1, np.full((4, 3), 1 / 3, dtype=np.float32))
    record(folder, 1, 2, np.full((4, 3), 1 / 3, dtype=np.float32))
    record(folder, 2, 2, np.full((5, 3), 1 / 3, dtype=np.float32))
    folder.live_member(3).write_bytes(b"PK\x03\x04 half a file")
    snap = read(folder, final=2)
    assert snap is not None and snap.members == [0, 1] and snap.finished == [1]
    record(folder, 1, 2, None)
    snap = read(folder, final=2)
    assert snap is not None and snap.members == [0], "a diverged member is withdrawn"
