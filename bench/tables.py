"""The seed-workload benchmark's output: its tables on the console and a text plot of the scaling run.

Reads only the results dict (what goes into the JSON), so old results files render again the same way.
"""

from __future__ import annotations

import re
import statistics
from typing import Any

from bench.timing import PHASES


def seed_table(results: dict[str, Any]) -> Any:
    """Seconds, speed-up over the seed-style baseline and accuracy of every row (skipped rows say why)."""
    from rich.table import Table

    base = results["baseline_seconds"]
    load = results.get("load_before")
    caption = f"load average (1/5/15 min) when the bench began: {' / '.join(f'{v:.2f}' for v in load)}" if load else None
    table = Table(title=f"seed workload: seed-cnn, {results['workload']['members']} members, "
                        f"{results['workload']['epochs']} epochs, {results['workload']['samples']} samples "
                        f"({results['workload']['data']}), batch 64 — medians of {results['repeats']}", caption=caption)
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


def phases_of(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Median of each phase over the runs that recorded them (rows from before phases were kept have none)."""
    recorded = [r["phases"] for r in runs if r.get("phases")]
    return {k: statistics.median(p[k] for p in recorded) for k in recorded[0]} if recorded else {}


def phases_table(results: dict[str, Any]) -> Any:
    """Where each end-to-end row's seconds go, from the run's own events.jsonl and run.json (medians)."""
    from rich.table import Table

    table = Table(title="phases of each end-to-end row, seconds (medians): fixed = launch → first step + last "
                        "step → exit; scoring (last step → predictions saved) is part of last step → report")
    short = {"launch → hello": "launch→hello", "hello → first step": "hello→step 1", "training": "training",
             "last step → report saved": "last step→report", "report saved → exit": "report→exit"}
    for col in ("setup", "strategy", *(short[p] for p in PHASES), "fixed", "scoring", "total", "load"):
        table.add_column(col, justify="left" if col in ("setup", "strategy") else "right")
    for row in results["rows"]:
        phases = row.get("phases")
        if not phases:
            continue
        load = row.get("load")
        table.add_row(row["setup"], row["strategy"], *(f"{phases[p]:.2f}" for p in PHASES), f"{phases['fixed']:.2f}",
                      f"{phases['scoring']:.2f}", f"{phases['total']:.1f}", f"{load:.2f}" if load else "")
    return table


def capacity_lines(results: dict[str, Any]) -> str:
    """The many-members target: the best strategy's training-phase rate against the cores' capacity."""
    c = results["capacity"]
    lines = [f"capacity: one seed-cnn member on 1 thread, in process: {c['one_member_samples_per_s']:,.0f} samples/s "
             f"(runs: {', '.join(f'{r:,.0f}' for r in c['one_member_runs'])}); × {c['cores']} cores = "
             f"{c['capacity_samples_per_s']:,.0f}"]
    for strategy, rate in c["model_samples_per_s"].items():
        each = ", ".join(f"{r['model_samples_per_s']:,.0f}" for r in c["runs"][strategy])
        loads = ", ".join(f"{r['load'][0]:.2f}" for r in c["runs"][strategy] if r.get("load"))
        busy = ", ".join(f"{r['busy']:.1%}" for r in c["runs"][strategy] if "busy" in r)
        lines.append(f"  {strategy} {c['setup']}, {c['members']} members × {c['samples']} samples: training window "
                     f"{rate:,.0f} model-samples/s (runs: {each}; load {loads}) = "
                     f"{rate / c['capacity_samples_per_s']:.1%} of capacity; ranks busy training {busy} of the window")
    if "at_once_samples_per_s" in c:
        lines.append(f"  at once: {c['cores']} one-thread members in {c['cores']} processes at the same moment, summed: "
                     f"{c['at_once_samples_per_s']:,.0f} samples/s (runs: "
                     f"{', '.join(f'{r:,.0f}' for r in c['at_once_runs'])}); the best strategy reaches "
                     f"{c['ratio_at_once']:.1%} of it")
    verdict = "met" if c["met"] else "NOT met"
    lines.append(f"  best: {c['best']}, {c['ratio']:.1%} of capacity (target ≥ {c['target']:.0%}: {verdict})")
    return "\n".join(lines)


def scale_table(results: dict[str, Any]) -> Any:
    """Wall time against members, epochs and samples, beside the fitted line fixed + seconds per unit × units."""
    from rich.table import Table

    sc = results["scale"]
    table = Table(title=f"scale: {sc['strategy']} {sc['setup']}; fit: wall = {sc['fixed_s']:.1f} s + "
                        f"{sc['seconds_per_unit'] * 1e6:.1f} µs × units (units = a rank's members × (epochs × "
                        f"training samples + {sc['estimate_costs']['eval_ratio']:.2f} × images scored))")
    for col in ("members", "epochs", "samples", "units", "training (s)", "fixed (s)", "wall (s)", "fit (s)",
                "fit / wall"):
        table.add_column(col, justify="right")
    for r in sc["runs"]:
        table.add_row(str(r["members"]), str(r["epochs"]), f"{r['samples']:,}", f"{r['units']:,.0f}",
                      f"{r['train_seconds']:.1f}", f"{r['phases']['fixed']:.1f}", f"{r['seconds']:.1f}",
                      f"{r['predicted']:.1f}", f"{r['predicted'] / r['seconds']:.2f}")
    return table


def scaling_table(results: dict[str, Any]) -> Any:
    """Training-phase model-samples/s per member count, and how the cost grows from the first to the last."""
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
    """Throughput against ensemble size as plain text, for the `.txt` beside the JSON."""
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
