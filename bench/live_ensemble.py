"""What live ensemble scoring costs training: the same run with `train.live_ensemble` on and off.

    python -m bench.live_ensemble [--repeats 3] [--members 16] [--epochs 3] [--limit 20000] [--val 0.3]

Each run is the real `ens-tui --run-config` (headless) in a subprocess, interleaved off, on, off, on…, so
machine load falls on both alike; throughput is the run's own training window (bench.timing). The workload
is chosen to make scoring weigh as much as it can: many members, short epochs, a large validation split
(every epoch end reads every member's file and scores their average). Also times one scoring of the final
files in this process. Real MNIST when `<data-root>/MNIST/raw` has it, else the bundled digits.
Results go to bench/results/live-ensemble-<machine>-<date>.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.launcher_runs import run_config
from bench.record import write_results
from bench.timing import read_events, training_window
from engine import events as ev
from engine.live import LiveEnsemble, read_labels
from engine.run_folder import RunFolder

REPO = Path(__file__).resolve().parents[1]


def config_text(dataset: str, root: str, members: int, epochs: int, limit: int, val: float, live: bool) -> str:
    return f"""name = "live-{'on' if live else 'off'}"
seed = 0
[data]
dataset = "{dataset}"
root = "{root}"
limit = {limit}
val_fraction = {val}
ood = ["noise"]
[model]
name = "seed-cnn"
[train]
members = {members}
epochs = {epochs}
batch_size = 64
lr = 0.01
momentum = 0.5
live_ensemble = {'true' if live else 'false'}
[parallel]
strategy = "local"
ranks = [{{ count = 2, device = "cpu" }}]
[report]
shift = false
figures = false
"""


def scoring_seconds(folder: Path, epochs: int, repeats: int = 20) -> dict[str, float]:
    """One epoch end's scoring as a rank does it, on the finished run's files: with the finished members' curve
    already cached (most epoch ends), and with it recomputed (an epoch end that finishes a member)."""
    run = RunFolder(folder)
    labels = read_labels(run)
    assert labels is not None
    sent: list[ev.Ensemble] = []
    live = LiveEnsemble(run, labels, epochs, sent.append)
    live.score()
    cached, fresh = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        live.score()
        cached.append(time.perf_counter() - t)
        t = time.perf_counter()
        LiveEnsemble(run, labels, epochs, sent.append).score()
        fresh.append(time.perf_counter() - t)
    return {"val_size": len(labels), "cached_curve_ms": 1000 * statistics.median(cached),
            "new_curve_ms": 1000 * statistics.median(fresh)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live_ensemble", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=20000)
    parser.add_argument("--val", type=float, default=0.3)
    parser.add_argument("--data-root", default="/tmp/data")
    args = parser.parse_args(argv)

    real = (Path(args.data_root) / "MNIST" / "raw").is_dir()
    dataset, root = ("mnist", args.data_root) if real else ("digits", "data")
    load_before = os.getloadavg()
    rates: dict[str, list[float]] = {"off": [], "on": []}
    runs: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        out = Path(tmp)
        configs = {}
        for mode in ("off", "on"):
            configs[mode] = out / f"{mode}.toml"
            configs[mode].write_text(config_text(dataset, root, args.members, args.epochs, args.limit, args.val,
                                                 mode == "on"))
        last_on: Path | None = None
        for repeat in range(args.repeats):
            for mode in ("off", "on"):
                folder = run_config(configs[mode], out / "runs")[0].path
                window = training_window(folder)
                events = read_events(folder)
                rates[mode].append(window.member_epochs_per_s)
                runs.append({"mode": mode, "repeat": repeat, "seconds": window.seconds,
                             "member_epochs": window.member_epochs,
                             "ensemble_events": sum(isinstance(e, ev.Ensemble) for e in events),
                             "load": os.getloadavg()[0]})
                print(f"{mode:>3} #{repeat}: {window.member_epochs_per_s:.3f} member-epochs/s "
                      f"({window.seconds:.1f} s, load {os.getloadavg()[0]:.2f})", flush=True)
                if mode == "on":
                    last_on = folder
        assert last_on is not None
        scoring = scoring_seconds(last_on, args.epochs)
    load_after = os.getloadavg()
    ratio = statistics.median(rates["on"]) / statistics.median(rates["off"])
    paired = [on / off for on, off in zip(rates["on"], rates["off"], strict=True)]
    result = {
        "machine": platform.node(), "date": time.strftime("%Y-%m-%d %H:%M"), "dataset": dataset,
        "members": args.members, "epochs": args.epochs, "limit": args.limit, "val_fraction": args.val,
        "load_before": load_before, "load_after": load_after, "runs": runs, "scoring": scoring,
        "on_over_off_median": ratio, "on_over_off_paired": paired,
        "paired_min": float(np.min(paired)),
    }
    print(f"live scoring on / off: {ratio:.3f} (median of {args.repeats}; paired {', '.join(f'{p:.3f}' for p in paired)})")
    print(f"one scoring: {scoring['cached_curve_ms']:.1f} ms (curve cached), {scoring['new_curve_ms']:.1f} ms "
          f"(curve recomputed); load {load_before[0]:.2f} → {load_after[0]:.2f}")
    path = write_results("live-ensemble", result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
