"""Shared vs per-member batch order (`train.data_order`): what the ensemble gains, and what it costs in speed.

    python -m bench.data_order [--seeds 0,1,2] [--members 4] [--epochs 2] [--datasets mnist,fashion-mnist]

Each run is the real `ens-tui --run-config` (headless) in a subprocess: seed-cnn, strategy local on 2 CPU
ranks, the whole training split (`val_fraction = 0`), the other dataset as the OOD set. Policies are
interleaved (shared, per-member, shared, …) so machine load falls on both alike. Quality comes from each
run's report.json, speed from its events.jsonl (training window, bench.timing) and the process's wall time.
Needs real MNIST and Fashion-MNIST under `--data-root` (see /work/shared/data/README.md).
Results go to bench/results/data-order-<machine>-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.launcher_runs import run_config
from bench.record import write_results
from bench.timing import training_window
from engine.run_folder import RunFolder

REPO = Path(__file__).resolve().parents[1]
POLICIES = ("shared", "per-member")
TRAIN_SIZE = 60_000
"""Training images of either dataset, all of them trained on (`val_fraction = 0`)."""
OOD = {"mnist": "fashion-mnist", "fashion-mnist": "mnist"}
"""Each dataset's OOD set: the other one (same shape, so the report scores it as is)."""
METRICS = ("nll", "ece", "accuracy", "disagreement", "auroc_mi", "auroc_entropy", "train_seconds",
           "samples_per_s", "wall_seconds")


def config_text(dataset: str, root: str, policy: str, seed: int, members: int, epochs: int) -> str:
    return f"""name = "order-{policy}"
seed = {seed}
[data]
dataset = "{dataset}"
root = "{root}"
val_fraction = 0.0
ood = ["{OOD[dataset]}"]
[model]
name = "seed-cnn"
[train]
members = {members}
epochs = {epochs}
batch_size = 64
optimizer = "sgd"
lr = 0.01
momentum = 0.5
data_order = "{policy}"
[parallel]
strategy = "local"
ranks = [{{ count = 2, device = "cpu" }}]
[report]
shift = false
figures = false
"""


def measure(folder: Path, ood: str, wall: float) -> dict[str, float]:
    """The figures this bench compares, from one finished run folder."""
    report = json.loads(RunFolder(folder).report_json.read_text())
    window = training_window(folder)
    ensemble, scores = report["ensemble"], report["ood"][ood]
    return {
        "nll": ensemble["nll"], "ece": ensemble["ece"], "accuracy": ensemble["accuracy"],
        "disagreement": report["diversity"]["disagreement"],
        "auroc_mi": scores["auroc_mi"], "auroc_entropy": scores["auroc_entropy"],
        "train_seconds": window.seconds, "member_epochs": window.member_epochs,
        "samples_per_s": window.member_epochs * TRAIN_SIZE / window.seconds,
        "wall_seconds": wall,
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """dataset → policy → metric → mean and sd over seeds."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        for policy in POLICIES:
            rows = [r for r in runs if r["dataset"] == dataset and r["policy"] == policy]
            out.setdefault(dataset, {})[policy] = {
                **{f"{m}_mean": statistics.fmean(r[m] for r in rows) for m in METRICS},
                **{f"{m}_sd": statistics.stdev(r[m] for r in rows) if len(rows) > 1 else 0.0 for m in METRICS},
            }
    return out


def table(stats: dict[str, dict[str, dict[str, float]]], seeds: int) -> str:
    """The README's markdown table: mean ± sd over the seeds."""
    digits = {"nll": 4, "ece": 4, "accuracy": 4, "disagreement": 4, "auroc_mi": 3, "auroc_entropy": 3,
              "train_seconds": 1, "samples_per_s": 0, "wall_seconds": 1}
    head = ("| dataset | data_order | NLL | ECE | accuracy | disagreement | OOD AUROC (MI) | OOD AUROC (entropy) "
            "| training (s) | samples/s | end to end (s) |")
    lines = [f"Mean ± sd over {seeds} seeds.", "", head, "|" + "---|" * 11]
    for dataset, policies in stats.items():
        for policy, s in policies.items():
            cells = [f"{s[f'{m}_mean']:.{d}f} ± {s[f'{m}_sd']:.{d}f}" for m, d in digits.items()]
            lines.append(f"| {dataset} | {policy} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.data_order", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--datasets", default="mnist,fashion-mnist")
    parser.add_argument("--data-root", default="/tmp/data")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    datasets = args.datasets.split(",")
    folders = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
    missing = [d for d in datasets if not (Path(args.data_root) / folders[d] / "raw").is_dir()]
    if missing:
        raise SystemExit(f"no {', '.join(missing)} under {args.data_root} (see /work/shared/data/README.md)")

    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-order-") as tmp:
        out = Path(tmp)
        for dataset in datasets:
            for seed in seeds:
                for policy in POLICIES:
                    config = out / f"{dataset}-{seed}-{policy}.toml"
                    config.write_text(config_text(dataset, args.data_root, policy, seed, args.members, args.epochs))
                    load = os.getloadavg()[0]
                    run, wall = run_config(config, out / "runs")
                    row = {"dataset": dataset, "seed": seed, "policy": policy, "load_at_start": load,
                           **measure(run.path, OOD[dataset], wall)}
                    runs.append(row)
                    print(f"{dataset} seed {seed} {policy:>10}: nll {row['nll']:.4f} ece {row['ece']:.4f} "
                          f"acc {row['accuracy']:.4f} dis {row['disagreement']:.4f} auroc(mi) {row['auroc_mi']:.3f} "
                          f"{row['samples_per_s']:,.0f} samples/s ({row['train_seconds']:.1f} s training, "
                          f"{wall:.1f} s end to end, load {load:.2f})", flush=True)
    load_after = os.getloadavg()
    stats = summary(runs)
    result = {
        "machine": platform.node(), "date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
        "model": "seed-cnn", "strategy": "local", "ranks": 2, "members": args.members, "epochs": args.epochs,
        "batch_size": 64, "seeds": seeds, "load_before": load_before, "load_after": load_after,
        "runs": runs, "summary": stats,
    }
    print(table(stats, len(seeds)))
    print(f"load {load_before} → {load_after}")
    path = write_results("data-order", result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
