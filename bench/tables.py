"""The seed-workload benchmark's output: its tables on the console and a text plot of the scaling run.

Reads only the results dict (what goes into the JSON), so old results files render again the same way.
"""

from __future__ import annotations

import re
from typing import Any


def seed_table(results: dict[str, Any]) -> Any:
    """Seconds, speed-up over the seed-style baseline and accuracy of every row (skipped rows say why)."""
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
