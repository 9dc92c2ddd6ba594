"""ens-tui bench (= python -m bench.seed_workload): the seed's workload under every setup this machine can run.

Four parts, one process run, written to bench/results/<machine>-<date>.json (+ a text plot):

1. Seed table: seed-cnn, 2 members, 2 epochs, 60k MNIST-shaped samples, batch 64, SGD(0.01, 0.5).
   Every (setup, strategy) row runs end to end through the real launcher (ens-tui --run-config in a
   subprocess: config → mpiexec → ranks → report), beside the seed-style baseline measured here in
   this process: torchvision's MNIST with ToTensor/Normalize through a DataLoader, members one
   after another. Real MNIST when <data-root>/MNIST/raw holds it; otherwise synthetic images of the
   same shape written as idx files, so the baseline still reads them through torchvision.
2. Scaling: members 1…32, one epoch, per strategy: model-samples/s of the training phase (first
   member_start to last member_done in the run's events, bench.timing) and end-to-end seconds.
3. Capacity: 32 seed-cnn members, one rank per core, against cores × one member's 1-thread samples/s
   measured in this process between the runs (target: the best strategy's training window ≥ 95 %).
4. Scale: wall time over a grid of members, epochs and samples, fitted as fixed + seconds per unit of
   work; the fit is what --dry-run and the setup screen estimate runs with (the results' estimate_costs).
5. Memory: peak RSS of a fused rank against the number of members: bytes per extra member,
   beside the estimate (weights + gradients + optimizer state + activations).
6. Kernels: per-step time of one seed-cnn member: eager NCHW, channels-last, torch.compile.

Every end-to-end run also records its phases (launch → hello → first step → training → report → exit,
from its events.jsonl and run.json) and the load average when it started.

All figures are medians over --repeats runs; repeats are interleaved so background load spreads evenly.
This module runs the parts in order; each part lives in its own module (bench.baseline,
bench.launcher_runs, bench.capacity, bench.scale, bench.memory, bench.kernels; tables and plot in
bench.tables).
This text is also what ens-tui bench --help prints, so it stays plain text (the README has the Markdown).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.baseline import baseline
from bench.capacity import capacity
from bench.kernels import kernel_timings
from bench.launcher_runs import bench_config, launch, threads_for
from bench.memory import memory_per_member
from bench.mnist_files import has_mnist, synthetic_mnist
from bench.scale import GRID, QUICK_GRID, scale
from bench.tables import capacity_lines, phases_of, phases_table, scale_table, scaling_table, seed_table, text_plot
from engine.estimate import Costs, keep
from engine.preflight import setup_problem

# The seed's nine rows, then ours. (setup, strategy); setups are named in bench.launcher_runs.SETUPS.
SEED_ROWS = [(s, t) for s in ("CPU×2", "GPU×2", "CPU×2+GPU×1") for t in ("local", "broadcast", "sequential")]
OUR_ROWS = [("CPU×2", "fused"), ("CPU×1", "fused"), ("GPU×1", "fused"), ("CPU×2+GPU×1", "fused")]
SCALING_STRATEGIES = [("CPU×1", "sequential"), ("CPU×2", "local"), ("CPU×2", "fused"), ("CPU×1", "fused")]


def machine_name() -> str:
    """Names the results file: host, cores and GPU, since figures only compare on the same machine."""
    gpu = torch.cuda.get_device_name(0).replace(" ", "-") if torch.cuda.is_available() else "nogpu"
    return f"{socket.gethostname()}-{os.cpu_count()}cpu-{gpu}".lower()


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for, print each one's table as it finishes, then write the JSON (and plot)."""
    parser = argparse.ArgumentParser(prog="ens-tui bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=None,
                        help="torchvision root with MNIST/raw (default: ./data, then /tmp/data; synthetic otherwise)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per row of the seed table (median)")
    parser.add_argument("--samples", type=int, default=60000, help="training samples of the seed workload")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--scaling", default="1,2,4,8,16,32", help="member counts of the scaling run ('' = skip)")
    parser.add_argument("--scaling-samples", type=int, default=6000, help="training samples per scaling epoch")
    parser.add_argument("--rows", default="", help="only these strategies in the seed table, e.g. 'local,fused' "
                        "('none' = no seed table)")
    parser.add_argument("--capacity", type=int, default=32, help="members of the capacity part (0 = skip)")
    parser.add_argument("--capacity-samples", type=int, default=10000, help="synthetic samples of the capacity part")
    parser.add_argument("--capacity-strategies", default="local,fused", help="strategies the capacity part runs")
    parser.add_argument("--capacity-repeats", type=int, default=2)
    parser.add_argument("--no-scale", action="store_true", help="skip the scale part (and the estimate's figures)")
    parser.add_argument("--scale-grid", default="",
                        help="runs of the scale part as MEMBERSxEPOCHSxSAMPLES, comma-separated (default: the grid "
                             "in bench.scale)")
    parser.add_argument("--no-cache", action="store_true",
                        help="do not keep the scale part's figures as this machine's estimate cache")
    parser.add_argument("--no-baseline", action="store_true", help="skip the seed-style baseline")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-kernels", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile in the kernel part")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2000 synthetic samples, 1 epoch, scaling 1,2, one repeat")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="where the JSON and plot go")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.epochs, args.repeats, args.scaling, args.scaling_samples = 2000, 1, 1, "1,2", 1000
        args.capacity, args.capacity_samples, args.capacity_repeats = min(args.capacity, 4), 1000, 1

    from rich.console import Console

    console = Console()
    work = Path(tempfile.mkdtemp(prefix="ens-bench-"))
    try:
        candidates = [args.data_root] if args.data_root else [Path("data"), Path("/tmp/data")]
        root = next((c for c in candidates if has_mnist(c)), None)
        real = root is not None and not args.quick
        if not real:
            root = synthetic_mnist(work / "data", args.samples)
        assert root is not None
        limit = None if args.samples >= 60000 else args.samples
        results: dict[str, Any] = {
            "machine": machine_name(), "date": time.strftime("%Y-%m-%d %H:%M:%S"), "platform": platform.platform(),
            "torch": torch.__version__, "cpus": os.cpu_count(), "repeats": args.repeats,
            "load_before": os.getloadavg(),
            "workload": {"model": "seed-cnn", "members": args.members, "epochs": args.epochs, "batch_size": 64,
                         "samples": args.samples, "data": "MNIST" if real else "synthetic MNIST-shaped"},
        }
        wanted = set(filter(None, args.rows.split(",")))
        rows = [r for r in SEED_ROWS + OUR_ROWS if not wanted or r[1] in wanted]
        say = lambda line: console.print(f"[dim]{line}[/]")  # noqa: E731
        configs = {}
        results["rows"] = []
        for setup, strategy in rows:
            config = bench_config(setup, strategy, root, work / "runs", members=args.members, epochs=args.epochs,
                                  batch_size=64, limit=limit, threads=threads_for(setup, strategy))
            problem = setup_problem(config)
            results["rows"].append({"setup": setup, "strategy": strategy, "threads": config.parallel.threads_per_rank,
                                    **({"skipped": problem} if problem else {})})
            if not problem:
                configs[(setup, strategy)] = config
        samples: dict[Any, list[dict[str, Any]]] = {key: [] for key in configs}
        base_times: list[float] = []
        base_1_times: list[float] = []
        base_loads: list[list[float]] = []
        for repeat in range(args.repeats if configs else 0):
            if not args.no_baseline:
                console.print(f"[dim]repeat {repeat + 1}/{args.repeats}: baseline…[/]")
                base_loads.append(list(os.getloadavg()))
                base_times.append(baseline(root, args.members, args.epochs, 64, limit))
                if (os.cpu_count() or 1) > 1:
                    console.print(f"[dim]repeat {repeat + 1}/{args.repeats}: baseline, one thread…[/]")
                    base_1_times.append(baseline(root, args.members, args.epochs, 64, limit, threads=1))
            for key, config in configs.items():
                console.print(f"[dim]repeat {repeat + 1}/{args.repeats}: {key[0]} {key[1]}…[/]")
                samples[key].append(launch(config))
        results["baseline_runs"] = base_times
        results["baseline_seconds"] = statistics.median(base_times) if base_times else float("nan")
        results["baseline_1thread_runs"] = base_1_times
        results["baseline_1thread_seconds"] = statistics.median(base_1_times) if base_1_times else None
        results["baseline_loads"] = base_loads
        for row in results["rows"]:
            runs = samples.get((row["setup"], row["strategy"]))
            if runs:
                row.update(runs=[r["seconds"] for r in runs], seconds=statistics.median(r["seconds"] for r in runs),
                           train_seconds=statistics.median(r["train_seconds"] for r in runs),
                           accuracy=statistics.median(r["accuracy"] for r in runs),
                           phases=phases_of(runs), phase_runs=[r["phases"] for r in runs],
                           loads=[r["load"] for r in runs], load=statistics.median(r["load"][0] for r in runs))
        if configs:
            console.print(seed_table(results))
            console.print(phases_table(results))
            ran = [r for r in results["rows"] if "seconds" in r]
            if base_times and ran:
                best = min(ran, key=lambda r: r["seconds"])
                loads = [load[0] for load in base_loads] + [r["load"] for r in ran]
                console.print(f"best row: {best['setup']} {best['strategy']}, {best['seconds']:.1f} s = "
                              f"{results['baseline_seconds'] / best['seconds']:.2f}× the seed-style baseline "
                              f"({results['baseline_seconds']:.1f} s) measured side by side in this run; 1-minute load "
                              f"average at the start of each run {min(loads):.2f}–{max(loads):.2f}")

        counts = [int(c) for c in args.scaling.split(",") if c]
        if counts:
            scaling: dict[str, Any] = {"members": counts, "samples": args.scaling_samples, "runs": {}}
            for setup, strategy in SCALING_STRATEGIES:
                name = f"{strategy} {setup}"
                scaling["runs"][name] = []
                for k in counts:
                    console.print(f"[dim]scaling: {name}, {k} member(s)…[/]")
                    config = bench_config(setup, strategy, root, work / "runs", members=k, epochs=1, batch_size=64,
                                          limit=args.scaling_samples, threads=threads_for(setup, strategy))
                    run = launch(config)
                    run["model_samples_per_s"] = k * args.scaling_samples / run["train_seconds"]
                    scaling["runs"][name].append(run)
            results["scaling"] = scaling
            console.print(scaling_table(results))
        strategies = [s for s in args.capacity_strategies.split(",") if s]
        if args.capacity and strategies:
            capacity_root = synthetic_mnist(work / "capacity-data", args.capacity_samples)
            results["capacity"] = capacity(capacity_root, work / "runs", members=args.capacity,
                                           samples=args.capacity_samples, strategies=strategies,
                                           repeats=args.capacity_repeats, say=say)
            console.print(capacity_lines(results))
        if not args.no_scale:
            available = args.samples if not real else 60000
            grid = [tuple(int(v) for v in point.split("x")) for point in args.scale_grid.split(",") if point]
            grid = grid or (QUICK_GRID if args.quick else GRID)
            results["scale"] = scale(root, work / "runs", grid, available, say=say)  # type: ignore[arg-type]
            results["estimate_costs"] = results["scale"]["estimate_costs"]
            console.print(scale_table(results))
        if not args.no_memory:
            results["memory"] = memory_per_member([1, 2, 4] if args.quick else [1, 8, 32])
            m = results["memory"]
            console.print(f"peak memory per extra fused member (CPU, seed-cnn): "
                          f"{m['bytes_per_extra_member'] / 2**20:.2f} MiB; estimate (weights, grads, momentum, "
                          f"activations) {m['estimate_bytes'] / 2**20:.2f} MiB; ratio {m['ratio_to_estimate']:.2f}")
        if not args.no_kernels:
            results["kernels"] = kernel_timings(5 if args.quick else 40, args.compile)
            for name, k in results["kernels"].items():
                console.print(f"one seed-cnn member, batch 64, 1 thread, {name}: {k['ms_per_step']:.2f} ms/step "
                              f"(warm-up {k['warmup_s']:.1f} s)")
        results["load_after"] = os.getloadavg()
        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.out / f"{results['machine']}-{time.strftime('%Y%m%d-%H%M')}{'-quick' if args.quick else ''}"
        stem.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
        if "estimate_costs" in results and not args.no_cache:
            keep(Costs.from_dict(results["estimate_costs"], f"this machine's bench, {stem.with_suffix('.json').name}"))
        if "scaling" in results:
            stem.with_suffix(".txt").write_text(text_plot(results) + "\n")
        console.print(f"results: {stem.with_suffix('.json')}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
