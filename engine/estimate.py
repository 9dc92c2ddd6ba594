"""How long a run will take, said before it starts: a fixed part plus work per member, from this machine's figures.

    wall ≈ fixed + members per rank × seconds per sample × model cost × member work
    member work = epochs × (training samples + r × validation samples) + r × images scored once trained

`fixed` is everything a run pays whatever its size (process and torch start-up on every rank, loading the data,
the report, exit); seconds per sample is one seed-cnn member training on one core; r is what scoring one image
costs against training on one sample (a forward pass against forward, backward and step); images scored are
the test split, the validation split, each OOD set and each shift set. Ranks train their members side by side,
so a rank's share of the members is what counts (the dynamic queue gives each rank ceil(members / ranks) at
most).

The figures come from, in this order: `$ENS_TUI_ESTIMATE_COSTS` (a costs JSON file, or `none`), this machine's
latest `ens-tui bench` results (`bench/results/*.json` with an `estimate_costs` section, matched by host name
and core count), the per-machine cache (written by the bench and by the probe), else a probe of a few seconds:
`python -m engine.speed_probe`, run in its own process because this module is torch-free (the setup screen and
`--dry-run` import it; the UI never imports torch).

Known model costs relative to seed-cnn (measured by the bench on MNIST-shaped inputs) scale the per-sample
time; for any other model, or other image sizes, the estimate says it is a seed-cnn-based guess. GPU ranks
have no figures yet, so a setup with one gets no estimate.
"""

from __future__ import annotations

import functools
import json
import math
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.config import RunConfig

COSTS_ENV = "ENS_TUI_ESTIMATE_COSTS"
"""A costs JSON file to use instead of this machine's own figures, or `none` for no estimate (tests, demos)."""
PROBE_TIMEOUT_S = 180.0
NO_GPU_FIGURES = "none: GPU ranks are not measured yet (the bench and the probe time CPU ranks)"

REFERENCE_PIXELS = 28 * 28
"""The bench measures MNIST-shaped inputs; other sizes are scaled by pixel count (a guess)."""

DATASET_SIZES: dict[str, tuple[int, int]] = {
    "mnist": (60000, 10000),
    "fashion-mnist": (60000, 10000),
    "kmnist": (60000, 10000),
    "cifar10": (50000, 10000),
    "digits": (1438, 359),
}
"""Training and test images of the named datasets as the engine loads them (digits: its seeded fifth is test)."""
DATASET_SHAPES: dict[str, tuple[int, int, int]] = {"cifar10": (3, 32, 32)}
"""(C, H, W) where it is not MNIST's (1, 28, 28)."""
ASSUMED_IMAGES = 60000
"""Training images assumed for your own data, whose size is only known once it is loaded."""

DEFAULT_MODEL_COST: dict[str, float] = {"seed-cnn": 1.0}
"""Per-sample training cost relative to seed-cnn, where no bench results say otherwise."""


@dataclass(frozen=True)
class Costs:
    """One machine's figures for the estimate."""

    host: str
    cores: int
    fixed_s: float
    """Seconds a run takes whatever its size: start-up, data, report, exit."""
    sample_s: float
    """Seconds one seed-cnn member takes per training sample on one core, with the other cores busy likewise."""
    eval_ratio: float
    """Scoring one image, against training one sample."""
    threads_speedup: dict[str, float] = field(default_factory=dict)
    """Threads of one process (as text, JSON keys) → its training speed against one thread."""
    model_cost: dict[str, float] = field(default_factory=dict)
    """Zoo model → per-sample cost against seed-cnn (MNIST-shaped)."""
    source: str = ""
    """Where the figures come from, for the user: a bench results file, or the probe."""

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "") -> Costs:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        if source:
            values["source"] = source
        return cls(**values)

    def speedup(self, threads: int) -> float:
        """Training speed of one process at `threads`, against one thread (measured, else a cautious guess)."""
        if threads <= 1:
            return 1.0
        measured = {int(k): v for k, v in self.threads_speedup.items()}
        if threads in measured:
            return measured[threads]
        below = [t for t in measured if t < threads]
        base = max(below, default=1)
        return (measured.get(base, 1.0)) * math.sqrt(threads / base)


@dataclass(frozen=True)
class Workload:
    """What a config asks of each rank, in training-sample units of work."""

    members: int
    members_per_rank: int
    epochs: int
    train: int
    val: int
    scored: int
    """Images each member is scored on once trained: test, validation, OOD sets, shift sets."""
    cost: float
    """Per-sample cost of the model against seed-cnn (and its image size against 28×28)."""
    ranks: int
    threads: int
    notes: tuple[str, ...] = ()
    """What the estimate had to guess."""

    def units(self, eval_ratio: float) -> float:
        """One rank's work in seed-cnn training samples: its members × (training + scoring)."""
        member = self.epochs * (self.train + eval_ratio * self.val) + eval_ratio * self.scored
        return self.members_per_rank * member * self.cost


@dataclass(frozen=True)
class Estimate:
    """A run's expected wall time, and what it rests on."""

    seconds: float
    fixed_s: float
    work_s: float
    source: str
    notes: tuple[str, ...] = ()

    def describe(self, brief: bool = False) -> str:
        """e.g. `≈ 1 min 10 s (fixed 8 s + training and scoring 62 s; this machine's bench, bench/results/x.json)`;
        `brief` (the setup screen's narrow column): `≈ 1 min 10 s (bench)`, `≈ 12 s (probe, a guess)`."""
        if brief:
            where = "bench" if "bench" in self.source else "probe" if "probe" in self.source else "given figures"
            guess = ", a guess" if any("guess" in n for n in self.notes) else ""
            return f"≈ {duration(self.seconds)} ({where}{guess})"
        text = (f"≈ {duration(self.seconds)} (fixed {duration(self.fixed_s)} + training and scoring "
                f"{duration(self.work_s)}; {self.source})")
        return text + ("; " + "; ".join(self.notes) if self.notes else "")


def duration(seconds: float) -> str:
    """Seconds as a person reads them: `8 s`, `1 min 10 s`, `2 h 05 min`."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s" if s < 600 else f"{round(s / 60)} min"
    return f"{s // 3600} h {round(s % 3600 / 60):02d} min"


# --------------------------------------------------------------------------- the model


def workload(config: RunConfig, costs: Costs | None = None) -> Workload:
    """The config's members, epochs, images per split and per-rank share, as the engine will load them."""
    data, train_cfg, parallel, report = config.data, config.train, config.parallel, config.report
    notes: list[str] = []
    if data.dataset in DATASET_SIZES:
        n_train, n_test = DATASET_SIZES[data.dataset]
    elif data.dataset == "synthetic":
        n_train, n_test = data.synthetic_size, max(data.synthetic_size // 6, 16)
    else:
        n_train = data.limit or ASSUMED_IMAGES
        n_test = max(n_train // 5, 16)
        if data.limit is None:
            notes.append(f"your data's size is only known once loaded: {ASSUMED_IMAGES:,} images assumed")
    if data.limit is not None:
        n_train, n_test = min(data.limit, n_train), min(max(data.limit // 4, 16), n_test)
    n_val = int(round(n_train * data.val_fraction))
    shift = len(report.corruptions) * len(report.severities) * min(report.shift_size, n_test) if report.shift else 0
    scored = n_test + n_val + len(data.ood) * n_test + shift

    _, height, width = DATASET_SHAPES.get(data.dataset, (1, 28, 28))
    if data.image_size:
        height, width = data.image_size
    known = {**DEFAULT_MODEL_COST, **(costs.model_cost if costs else {})}
    name = config.model.name
    cost = known.get(name, 1.0)
    if name not in known:
        notes.append(f"a seed-cnn-based guess: no measured cost for model {name}")
    if (height, width) != (28, 28):
        cost *= height * width / REFERENCE_PIXELS
        notes.append(f"scaled from 28×28 images to {height}×{width} by pixel count (a guess)")

    ranks = parallel.world_size
    members_per_rank = math.ceil(train_cfg.members / ranks)
    return Workload(members=train_cfg.members, members_per_rank=members_per_rank, epochs=train_cfg.epochs,
                    train=n_train - n_val, val=n_val, scored=scored, cost=cost, ranks=ranks,
                    threads=parallel.threads_per_rank, notes=tuple(notes))


@functools.lru_cache(maxsize=1)
def _has_gpu() -> bool:
    from engine.utilization import nvml_device_count

    return nvml_device_count() > 0


def on_gpu(config: RunConfig) -> bool:
    """Whether any rank computes on a GPU (`auto` does where this machine has one)."""
    return any(d.startswith("cuda") or (d == "auto" and _has_gpu()) for d in config.parallel.rank_devices())


def estimate(config: RunConfig, costs: Costs) -> Estimate | str:
    """The config's expected wall time on the machine `costs` describes, or why there is none."""
    if on_gpu(config):
        return NO_GPU_FIGURES
    work = workload(config, costs)
    notes = list(work.notes)
    # Ranks on one host share its cores: the engine clamps threads to cores // ranks (deterministic runs keep
    # them, oversubscribed); more ranks than cores take turns.
    threads = work.threads if config.parallel.deterministic else max(1, min(work.threads, costs.cores // work.ranks))
    busy = work.ranks * threads
    crowding = max(1.0, busy / costs.cores)
    per_sample = costs.sample_s / costs.speedup(threads) * crowding
    work_s = work.units(costs.eval_ratio) * per_sample
    return Estimate(seconds=costs.fixed_s + work_s, fixed_s=costs.fixed_s, work_s=work_s, source=costs.source,
                    notes=tuple(notes))


# --------------------------------------------------------------------------- where the figures come from


def machine() -> tuple[str, int]:
    """(host name, cores): what figures are matched by."""
    return socket.gethostname(), os.cpu_count() or 1


def cache_file() -> Path:
    """This machine's figures, kept by the bench and the probe: <cache>/estimate/<host>-<cores>cpu.json.

    The cache folder is the data cache's: $ENS_TUI_CACHE, else $XDG_CACHE_HOME/ens-tui, else ~/.cache/ens-tui.
    """
    if os.environ.get("ENS_TUI_CACHE"):
        base = Path(os.environ["ENS_TUI_CACHE"]).expanduser()
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "ens-tui"
    host, cores = machine()
    return base / "estimate" / f"{host}-{cores}cpu.json"


def results_dirs() -> list[Path]:
    """Where bench results may be: ./bench/results, and the checkout's own (beside this package)."""
    dirs = [Path.cwd() / "bench" / "results", Path(__file__).resolve().parents[1] / "bench" / "results"]
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


@functools.lru_cache(maxsize=256)
def _results_costs(path: Path, mtime_ns: int) -> tuple[str, dict[str, Any]] | None:
    """(date, estimate_costs) of one bench results file, read once per version of the file."""
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    costs = results.get("estimate_costs") if isinstance(results, dict) else None
    return (str(results.get("date", "")), costs) if isinstance(costs, dict) else None


def bench_costs(dirs: list[Path] | None = None) -> Costs | None:
    """This machine's latest bench figures (the newest results file with an `estimate_costs` section)."""
    host, cores = machine()
    found: list[tuple[str, Path, dict[str, Any]]] = []
    for d in results_dirs() if dirs is None else dirs:
        for path in d.glob("*.json"):
            try:
                read = _results_costs(path, path.stat().st_mtime_ns)
            except OSError:
                continue
            if read is not None and read[1].get("host") == host and read[1].get("cores") == cores:
                found.append((read[0], path, read[1]))
    if not found:
        return None
    date, path, costs = max(found, key=lambda f: (f[0], f[1].name))
    try:
        where = path.resolve().relative_to(Path.cwd())
    except ValueError:
        where = path
    return Costs.from_dict(costs, f"this machine's bench, {where}")


def cached_costs() -> Costs | None:
    """The figures the bench or the probe kept for this machine, if any."""
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
        return Costs.from_dict(data)
    except (OSError, ValueError, TypeError):
        return None


def keep(costs: Costs) -> None:
    """Write `costs` as this machine's cached figures (best effort: an unwritable cache only costs a probe)."""
    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(costs), indent=1), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass


def probe() -> Costs:
    """Measure this machine in a few seconds, in an engine process (torch lives there), and cache the result.

    Raises RuntimeError when the probe fails.
    """
    done = subprocess.run([sys.executable, "-m", "engine.speed_probe"], capture_output=True, text=True,
                          timeout=PROBE_TIMEOUT_S)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"speed probe failed: {tail[0]}")
    costs = Costs.from_dict(json.loads(done.stdout.strip().splitlines()[-1]))
    keep(costs)
    return costs


def machine_costs(allow_probe: bool = False, progress: Callable[[str], object] | None = None) -> Costs | None:
    """This machine's figures: the override, its bench results, the cache, else (if allowed) a fresh probe."""
    override = os.environ.get(COSTS_ENV, "")
    if override:
        if override.lower() == "none":
            return None
        try:
            return Costs.from_dict(json.loads(Path(override).read_text(encoding="utf-8")), f"figures from {override}")
        except (OSError, ValueError, TypeError):
            return None
    found = bench_costs() or cached_costs()
    if found is None and allow_probe:
        if progress is not None:
            progress("measuring this machine for the estimate (a few seconds, once)…")
        try:
            found = probe()
        except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired):
            return None
    return found


def estimate_line(config: RunConfig, allow_probe: bool = False, brief: bool = False) -> str:
    """One line for `--dry-run` (which may probe, saying so on stderr) and the setup screen (`brief`, never probes):
    the estimate, or why there is none."""
    if on_gpu(config):
        return "none yet for GPU ranks" if brief else NO_GPU_FIGURES
    costs = machine_costs(allow_probe, lambda line: print(line, file=sys.stderr))
    if costs is None:
        if brief:
            return "unknown: see --dry-run"
        if not allow_probe:
            return "unknown: no figures for this machine (--dry-run measures this machine once)"
        off = os.environ.get(COSTS_ENV, "").lower() == "none"
        return f"unknown: {f'{COSTS_ENV}=none' if off else 'the probe of this machine failed'}"
    found = estimate(config, costs)
    return found if isinstance(found, str) else found.describe(brief)
