"""`ens-tui bench` (= `python -m engine.bench`): the seed's workload under every setup this machine can run.

Four parts, one process run, written to `bench/results/<machine>-<date>.json` (+ a text plot):

1. **Seed table** — seed-cnn, 2 members, 2 epochs, 60k MNIST-shaped samples, batch 64, SGD(0.01, 0.5).
   Every (setup, strategy) row runs end to end through the real launcher (`ens-tui --run-config` in a
   subprocess: config → mpiexec → ranks → report), beside the seed-style **baseline** measured here in
   this process: torchvision's `MNIST` with `ToTensor`/`Normalize` through a `DataLoader`, members one
   after another. Real MNIST when `<data-root>/MNIST/raw` holds it; otherwise synthetic images of the
   same shape written as idx files, so the baseline still reads them through torchvision.
2. **Scaling** — members 1…32, one epoch, per strategy: model-samples/s of the training phase (first
   member_start to last member_done in the run's events) and end-to-end seconds.
3. **Memory** — peak RSS of a fused rank against the number of members: bytes per extra member,
   beside the estimate (weights + gradients + optimizer state + activations).
4. **Kernels** — per-step time of one seed-cnn member: eager NCHW, channels-last, torch.compile.

All figures are medians over `--repeats` runs; repeats are interleaved so background load spreads evenly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.config import RunConfig, parse_config
from engine.preflight import setup_problem

SETUPS: dict[str, list[dict[str, Any]]] = {
    "CPU×2": [{"count": 2, "device": "cpu"}],
    "GPU×2": [{"count": 2, "device": "cuda"}],
    "CPU×2+GPU×1": [{"count": 2, "device": "cpu"}, {"count": 1, "device": "cuda"}],
    "GPU×1": [{"count": 1, "device": "cuda"}],
    "CPU×1": [{"count": 1, "device": "cpu"}],
}
# The seed's nine rows, then ours. (setup, strategy)
SEED_ROWS = [(s, t) for s in ("CPU×2", "GPU×2", "CPU×2+GPU×1") for t in ("local", "broadcast", "sequential")]
OUR_ROWS = [("CPU×2", "fused"), ("CPU×1", "fused"), ("GPU×1", "fused"), ("CPU×2+GPU×1", "fused")]
SCALING_STRATEGIES = [("CPU×1", "sequential"), ("CPU×2", "local"), ("CPU×2", "fused"), ("CPU×1", "fused")]
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


# --------------------------------------------------------------------------- data


def has_mnist(root: Path) -> bool:
    raw = root / "MNIST" / "raw"
    return all((raw / f).exists() for f in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"))


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file as torchvision's MNIST reads it (big-endian header, uint8 payload)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def synthetic_mnist(root: Path, samples: int, seed: int = 0) -> Path:
    """Seeded MNIST-shaped images written as torchvision MNIST idx files under `root`."""
    from engine.data import _synthetic

    x_train, y_train, x_test, y_test = _synthetic(samples, seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    to_u8 = lambda x: (x.squeeze(1) * 255).round().to(torch.uint8).numpy()  # noqa: E731
    write_idx(raw / "train-images-idx3-ubyte", to_u8(x_train))
    write_idx(raw / "train-labels-idx1-ubyte", y_train.to(torch.uint8).numpy())
    write_idx(raw / "t10k-images-idx3-ubyte", to_u8(x_test))
    write_idx(raw / "t10k-labels-idx1-ubyte", y_test.to(torch.uint8).numpy())
    return root


# --------------------------------------------------------------------------- the seed-style baseline


def baseline(root: Path, members: int, epochs: int, batch_size: int, limit: int | None,
             threads: int | None = None) -> float:
    """The seed's pipeline, in this process: per-sample PIL transforms through a DataLoader, members in turn.

    `threads` None keeps torch's default (one per core, as the seed ran it).
    """
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    from engine.models import SeedCNN

    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads or default_threads)
    start = time.perf_counter()
    try:
        tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
        train = datasets.MNIST(str(root), train=True, download=False, transform=tf)
        test = datasets.MNIST(str(root), train=False, download=False, transform=tf)
        if limit is not None:
            train = Subset(train, range(min(limit, len(train))))
            test = Subset(test, range(min(limit // 4, len(test))))
        for member in range(members):
            torch.manual_seed(member)
            model = SeedCNN()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
            loader = DataLoader(train, batch_size=batch_size, shuffle=True)
            for _ in range(epochs):
                model.train()
                for x, y in loader:
                    optimizer.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    optimizer.step()
            model.eval()
            with torch.no_grad():
                for x, _ in DataLoader(test, batch_size=1000):
                    model(x)
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(default_threads)


# --------------------------------------------------------------------------- runs through the launcher


def bench_config(setup: str, strategy: str, root: Path, out: Path, *, members: int, epochs: int, batch_size: int,
                 limit: int | None, threads: int) -> RunConfig:
    return parse_config(
        {
            "name": f"bench-{strategy}",
            "seed": 0,
            "output_dir": str(out),
            "data": {"dataset": "mnist", "root": str(root), "download": False, "val_fraction": 0.0,
                     "ood": ["noise"], "limit": limit},
            "model": {"name": "seed-cnn"},
            "train": {"members": members, "epochs": epochs, "batch_size": batch_size, "optimizer": "sgd",
                      "lr": 0.01, "momentum": 0.5},
            "parallel": {"strategy": strategy, "ranks": SETUPS[setup], "threads_per_rank": threads},
        },
        f"bench {setup} {strategy}",
    )


def threads_for(setup: str, strategy: str) -> int:
    """One process gets every core; several ranks share them."""
    cores = os.cpu_count() or 1
    ranks = 1 if strategy == "sequential" else sum(g["count"] for g in SETUPS[setup])
    return max(1, cores // ranks)


def launch(config: RunConfig, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one config with `ens-tui --run-config` (the real launcher) and time it end to end."""
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{config.name}-{time.monotonic_ns()}.toml"
    path.write_text(config.to_toml())
    before = set(out.iterdir())
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ens_tui.cli", "--run-config", str(path)], capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "120", **(env or {})})
    seconds = time.perf_counter() - start
    run_dirs = [p for p in set(out.iterdir()) - before if p.is_dir()]
    if done.returncode != 0 or len(run_dirs) != 1:
        tail = (done.stdout + done.stderr).strip().splitlines()[-6:]
        raise RuntimeError(f"{config.name} failed (exit {done.returncode}): " + " | ".join(tail))
    events = [json.loads(line) for line in (run_dirs[0] / "events.jsonl").read_text().splitlines()]
    starts = [e["t"] for e in events if e["type"] == "member_start"]
    ends = [e["t"] for e in events if e["type"] == "member_done"]
    report = json.loads((run_dirs[0] / "report.json").read_text())
    shutil.rmtree(run_dirs[0], ignore_errors=True)
    path.unlink()
    return {"seconds": seconds, "train_seconds": max(ends) - min(starts), "accuracy": report["ensemble"]["accuracy"]}


# --------------------------------------------------------------------------- memory and kernels


def memory_probe(members: int, steps: int) -> None:
    """Child process: train `members` fused seed-cnns for a few steps, print peak RSS in bytes."""
    import resource

    from engine.config import RunConfig
    from engine.trainer import make_member
    from engine.vectorized import StackedMembers

    torch.set_num_threads(1)
    config = RunConfig()
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    stack = StackedMembers([make_member(config, (1, 28, 28), 10, i, torch.device("cpu")) for i in range(members)],
                           config.train)
    for _ in range(steps):
        stack.step(x, y)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def memory_per_member(counts: list[int]) -> dict[str, Any]:
    from engine.models import build_model
    from engine.vectorized import activation_bytes_per_sample, member_bytes

    peaks = {}
    for k in counts:
        done = subprocess.run([sys.executable, "-m", "engine.bench", "--memory-probe", str(k)], capture_output=True,
                              text=True, check=True)
        peaks[k] = int(done.stdout.split()[-1])
    slope = (peaks[counts[-1]] - peaks[counts[0]]) / (counts[-1] - counts[0])
    model = build_model("seed-cnn", (1, 28, 28), 10)
    params = sum(p.numel() * 4 for p in model.parameters())
    config = RunConfig()
    estimate = member_bytes(model, (1, 28, 28), 64, config.train, torch.device("cpu"))
    return {
        "peak_rss_bytes": peaks, "bytes_per_extra_member": slope, "params_bytes": params,
        "activation_bytes_per_sample": activation_bytes_per_sample(model, (1, 28, 28), torch.device("cpu")),
        "estimate_bytes": estimate, "ratio_to_estimate": slope / estimate,
    }


def kernel_timings(steps: int, compile_too: bool) -> dict[str, Any]:
    """ms per training step of one seed-cnn member at batch 64, one thread: what layout/compile buy."""
    from engine.models import SeedCNN

    torch.set_num_threads(1)
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    results: dict[str, Any] = {}
    variants = ["eager NCHW", "eager channels-last"] + (["compiled NCHW", "compiled channels-last"] if compile_too else [])
    for name in variants:
        model = SeedCNN()
        if "channels-last" in name:
            model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
        forward = torch.compile(model) if name.startswith("compiled") else model

        def step(optimizer: torch.optim.Optimizer = optimizer, forward: Any = forward) -> None:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(forward(x), y).backward()
            optimizer.step()

        t0 = time.perf_counter()
        for _ in range(3):
            step()
        warmup = time.perf_counter() - t0
        times = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(steps):
                step()
            times.append((time.perf_counter() - t) / steps * 1e3)
        results[name] = {"ms_per_step": statistics.median(times), "warmup_s": warmup}
    return results


# --------------------------------------------------------------------------- output


def machine_name() -> str:
    gpu = torch.cuda.get_device_name(0).replace(" ", "-") if torch.cuda.is_available() else "nogpu"
    return f"{socket.gethostname()}-{os.cpu_count()}cpu-{gpu}".lower()


def seed_table(results: dict[str, Any]) -> Any:
    from rich.table import Table

    base = results["baseline_seconds"]
    table = Table(title=f"seed workload: seed-cnn, {results['workload']['members']} members, "
                        f"{results['workload']['epochs']} epochs, {results['workload']['samples']} samples "
                        f"({results['workload']['data']}), batch 64 — medians of {results['repeats']}")
    for col in ("setup", "strategy", "seed (s)", "ours (s)", "× baseline", "accuracy"):
        table.add_column(col, justify="left" if col in ("setup", "strategy") else "right")
    table.add_row("seed-style baseline", "torchvision DataLoader", "—", f"{base:.1f}", "1.00×", "")
    if results.get("baseline_1thread_seconds"):
        one = results["baseline_1thread_seconds"]
        table.add_row("  same, 1 torch thread", "", "—", f"{one:.1f}", f"{base / one:.2f}×", "")
    for row in results["rows"]:
        if row.get("skipped"):
            why = "no GPU here" if "CUDA" in row["skipped"] else row["skipped"][:30]
            table.add_row(row["setup"], row["strategy"], "—", "—", "—", f"[dim]skipped: {why}[/]")
        else:
            table.add_row(row["setup"], row["strategy"], "—", f"{row['seconds']:.1f}", f"{base / row['seconds']:.2f}×",
                          f"{row['accuracy']:.3f}")
    return table


def scaling_table(results: dict[str, Any]) -> Any:
    from rich.table import Table

    scaling = results["scaling"]
    counts = scaling["members"]
    table = Table(title=f"scaling: one epoch over {scaling['samples']} samples — training-phase model-samples/s "
                        f"(end-to-end s)")
    table.add_column("strategy")
    for k in counts:
        table.add_column(str(k), justify="right")
    table.add_column(f"cost {counts[-1]} / cost {counts[0]}", justify="right")
    for name, runs in scaling["runs"].items():
        cells = [f"{r['model_samples_per_s']:.0f} ({r['seconds']:.0f}s)" for r in runs]
        ratio = runs[-1]["train_seconds"] / runs[0]["train_seconds"] if len(runs) == len(counts) else float("nan")
        table.add_row(name, *cells, f"{ratio:.1f}×")
    return table


def text_plot(results: dict[str, Any]) -> str:
    import plotext as plt

    plt.clf()
    plt.plotsize(80, 22)
    plt.theme("clear")
    counts = results["scaling"]["members"]
    for name, runs in results["scaling"]["runs"].items():
        plt.plot(counts[: len(runs)], [r["model_samples_per_s"] for r in runs], label=name, marker="dot")
    plt.xscale("log")
    plt.xlabel("members")
    plt.ylabel("model-samples/s")
    plt.title("training throughput vs ensemble size")
    return re.sub(r"\x1b\[[0-9;]*m", "", plt.build())


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
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
    parser.add_argument("--rows", default="", help="only these strategies in the seed table, e.g. 'local,fused'")
    parser.add_argument("--no-baseline", action="store_true", help="skip the seed-style baseline")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-kernels", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile in the kernel part")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2000 synthetic samples, 1 epoch, scaling 1,2, one repeat")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="where the JSON and plot go")
    parser.add_argument("--memory-probe", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        memory_probe(args.memory_probe, steps=3)
        return 0
    if args.quick:
        args.samples, args.epochs, args.repeats, args.scaling, args.scaling_samples = 2000, 1, 1, "1,2", 1000

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
        for repeat in range(args.repeats):
            if not args.no_baseline:
                console.print(f"[dim]repeat {repeat + 1}/{args.repeats}: baseline…[/]")
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
        for row in results["rows"]:
            runs = samples.get((row["setup"], row["strategy"]))
            if runs:
                row.update(runs=[r["seconds"] for r in runs], seconds=statistics.median(r["seconds"] for r in runs),
                           train_seconds=statistics.median(r["train_seconds"] for r in runs),
                           accuracy=statistics.median(r["accuracy"] for r in runs))
        console.print(seed_table(results))

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
        if "scaling" in results:
            stem.with_suffix(".txt").write_text(text_plot(results) + "\n")
        console.print(f"results: {stem.with_suffix('.json')}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
