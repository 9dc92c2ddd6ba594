"""`ens-tui predict RUN INPUT…`: the trained ensemble's answer, with its uncertainty, for new images.

INPUT is an image file (png, jpg, jpeg, bmp, gif, webp; anything Pillow opens), a folder (the image files
and .npy arrays directly inside it, by name; subfolders are not entered), or a .npy array: (N, H, W) or
(N, C, H, W) images, or one (H, W) image, uint8 0–255 or float in [0, 1]. A 3-D array is always a stack of N
grayscale images, as in the Python API; save one colour image as (1, C, H, W). Every image is converted as the run's training data were
(channels, size, normalisation). An input that cannot be read is named on stderr and skipped.

Temperature: every member's logits are divided by the temperature fitted on the run's validation split
(report.json `calibration.temperature`) before the softmax, as in the report; `--no-temperature` answers with
the members as trained (and the verdict thresholds measured on those probabilities).

Verdicts (thresholds from the run's own test split, in report.json `thresholds`):
  confident            neither of the two below
  uncertain            total entropy above the level 95 % of correctly classified test inputs stay under:
                       the members agree, but the answer is doubtful (an ambiguous or noisy image)
  out-of-distribution  mutual information (how much the members disagree) above the level only 5 % of test
                       inputs exceed: likely unlike anything in training; it outranks `uncertain`

Exit status: 0 when at least one input was scored, 2 when none was or the run cannot be used.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.config import IMAGE_SUFFIXES
from engine.usage import OneLineParser

if TYPE_CHECKING:
    from engine.ensemble import PredictionResult

PROG = "ens-tui predict"
FEW_TEST_INPUTS = 200
"""Below this many test inputs, the 95 % / 5 % quantiles behind the verdicts rest on a handful of inputs."""
FORMATS = ("table", "json", "csv")
FIELDS = ("input", "prediction", "class_index", "probability", "entropy", "aleatoric", "mutual_information",
          "member_predictions", "verdict")
"""Every format's columns; json adds `probabilities` (the ensemble's, per class in the run's class order)."""


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, metavar="RUN", help="a finished run folder (runs/<run-id>)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images, .npy arrays")
    p.add_argument("--format", choices=FORMATS,
                   help="table, json (one array on stdout, nothing else) or csv; default: from --out's suffix "
                        "(.json, .csv), else table")
    p.add_argument("--out", type=Path, metavar="FILE", help="write the results to FILE instead of stdout")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the members run (default cpu)")
    p.add_argument("--no-temperature", action="store_true",
                   help="leave out the temperature fitted on the validation split (the members' logits as trained)")
    p.add_argument("--thumbnails", action="store_true",
                   help="json: add each input as the members saw it (`image`: rows of gray values in [0, 1]), "
                        "for drawing; the dashboard's predict tab uses it")
    return p


# --------------------------------------------------------------------------- reading inputs


class Unreadable(Exception):
    """An input that is skipped; the message says why."""


@dataclass
class Item:
    """One image to score: its name in the output and its raw pixels, uint8 or [0, 1] float (C, H, W)."""

    name: str
    image: np.ndarray


def _image_file(path: Path, name: str) -> Item:
    """Decoded as training folders are (engine.imagefolder.read_image): uint8 (C, H, W) with its own channels."""
    from engine.data import DataError
    from engine.imagefolder import read_image

    try:
        return Item(name, read_image(path))
    except DataError as err:
        raise Unreadable(str(err).removeprefix(f"imagefolder: {path}: ")) from None


def _array_file(path: Path, name: str) -> list[Item]:
    """The images of a .npy file, named name[i]."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise Unreadable(f"not a readable .npy array ({err})") from None
    shape = array.shape
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise Unreadable(f"array of {array.dtype}; expected uint8 (0–255) or float in [0, 1]")
    if array.ndim == 2:
        array = array[None, None]
    elif array.ndim == 3:
        array = array[:, None]
    elif array.ndim != 4 or not 1 <= shape[1] <= 4:
        hint = "; channels-last? np.moveaxis(a, -1, 1)" if array.ndim == 4 and shape[-1] in (1, 3, 4) else ""
        raise Unreadable(f"array of shape {shape}; expected (N, H, W), (N, C, H, W) with C of 1–4, or (H, W){hint}")
    if array.dtype != np.uint8:
        from engine.ensemble import RANGE_SLACK

        array = array.astype(np.float32)
        if array.size and not (np.isfinite(array).all() and -RANGE_SLACK <= array.min() <= array.max() <= 1 + RANGE_SLACK):
            raise Unreadable(f"float values span {np.nanmin(array):g}…{np.nanmax(array):g}; expected [0, 1] "
                             "(or uint8 for 0–255)")
    return [Item(f"{name}[{i}]", image) for i, image in enumerate(array)]


def _expand(given: str) -> Iterator[tuple[str, Path] | Unreadable]:
    """The files one INPUT names: itself, or a folder's image files and arrays, directly inside, by name."""
    path = Path(given)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (*IMAGE_SUFFIXES, ".npy") and p.is_file())
        if not files:
            yield Unreadable(f"{given}: no image files ({', '.join(IMAGE_SUFFIXES)}) or .npy arrays directly inside")
        for file in files:
            yield str(Path(given) / file.name), file
    elif path.exists():
        yield given, path
    else:
        yield Unreadable(f"{given}: no such file or folder")


def _read(name: str, path: Path) -> list[Item]:
    try:
        if path.suffix.lower() == ".npy":
            return _array_file(path, name)
        return [_image_file(path, name)]
    except Unreadable as err:
        raise Unreadable(f"{name}: {err}") from None
    except OSError as err:
        raise Unreadable(f"{name}: cannot read it ({err.strerror or err})") from None


def read_inputs(given: list[str], skipped: list[str]) -> list[Item]:
    """Every image the INPUTs name, in order; what cannot be read goes to `skipped` as 'NAME: reason'.

    One thread: with a pool of 4, decoding 1,000 small PNGs took 0.2 s instead of 0.06 s (bench/predict.py).
    """
    items: list[Item] = []
    for arg in given:
        for entry in _expand(arg):
            try:
                if isinstance(entry, Unreadable):
                    raise entry
                items.extend(_read(*entry))
            except Unreadable as err:
                skipped.append(str(err))
    return items


# --------------------------------------------------------------------------- output


def rows(names: list[str], out: PredictionResult) -> list[dict[str, Any]]:
    """One record per input with every output field (see FIELDS), plain Python values."""
    classes = out.class_names
    picked = out.prediction
    members = out.member_predictions
    return [
        {
            "input": name,
            "prediction": classes[int(picked[i])],
            "class_index": int(picked[i]),
            "probability": float(out.probs[i, picked[i]]),
            "entropy": float(out.entropy[i]),
            "aleatoric": float(out.aleatoric[i]),
            "mutual_information": float(out.mutual_information[i]),
            "member_predictions": [classes[int(c)] for c in members[:, i]],
            "verdict": out.verdict[i],
            "probabilities": [float(p) for p in out.probs[i]],
        }
        for i, name in enumerate(names)
    ]


def thumbnails(items: list[Item], shape: tuple[int, int, int]) -> list[list[list[float]]]:
    """Each input converted to the run's channels and size (what the members saw, before normalisation)."""
    import torch

    from engine.inputs import conform
    from engine.report import thumbnail

    return [thumbnail(conform(torch.from_numpy(item.image)[None], *shape)[0].numpy()) for item in items]


VERDICT_STYLE = {"confident": "green", "uncertain": "yellow", "out-of-distribution": "bold red"}


def render_table(records: list[dict[str, Any]], thresholds: dict[str, float], stream: Any) -> None:
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    table = Table(caption=f"uncertain above entropy {thresholds['entropy']:.3f}, out-of-distribution above "
                          f"MI {thresholds['mutual_information']:.4f} (nats)")
    table.add_column("input", overflow="fold")
    table.add_column("prediction")
    for column in ("probability", "entropy", "MI"):
        table.add_column(column, justify="right")
    table.add_column("verdict")
    table.add_column("members")
    for r in records:
        table.add_row(r["input"], r["prediction"], f"{r['probability']:.3f}", f"{r['entropy']:.3f}",
                      f"{r['mutual_information']:.4f}", f"[{VERDICT_STYLE[r['verdict']]}]{r['verdict']}[/]",
                      " ".join(r["member_predictions"]))
    console = Console(file=stream)
    if not console.is_terminal:  # a file or a pipe: as wide as the table needs, never folded to 80 columns
        wide = console.options.update_width(10_000)
        console = Console(file=stream, width=max(80, Measurement.get(console, wide, table).maximum))
    console.print(table)


def render_csv(records: list[dict[str, Any]], stream: Any) -> None:
    writer = csv.DictWriter(stream, fieldnames=FIELDS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for r in records:
        writer.writerow({**r, "member_predictions": ";".join(r["member_predictions"])})


def render(records: list[dict[str, Any]], fmt: str, thresholds: dict[str, float], stream: Any) -> None:
    if fmt == "json":
        json.dump(records, stream, indent=1)
        stream.write("\n")
    elif fmt == "csv":
        render_csv(records, stream)
    else:
        render_table(records, thresholds, stream)


# --------------------------------------------------------------------------- main


def idle_cores() -> int:
    """Cores other work leaves idle, by the 1-minute load average (at least 1): the torch threads predict uses.

    On the 2-core bench machine, beside a multi-threaded torch process two threads took 1.4–1.7× longer than
    one (each waits at every barrier for the other to be scheduled; 7× once while other test suites ran),
    while beside single-threaded ones (ranks training one thread each) both did about the same
    (bench/predict.py). Idle, two threads save 0.04 s per 1,000 digits: little to lose, much to gain.
    """
    from engine.threads import host_cores

    _, cores = host_cores()
    busy = round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
    return max(1, cores - busy)


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)  # before importing torch: a usage mistake is answered at once
    if args.format is None:
        suffix = args.out.suffix.lower().lstrip(".") if args.out is not None else ""
        args.format = suffix if suffix in ("json", "csv") else "table"
    if args.out is not None and not args.out.parent.is_dir():
        return _fail(f"--out {args.out}: folder {args.out.parent} does not exist")
    import torch

    threads = torch.get_num_threads()
    if args.device == "cpu":
        torch.set_num_threads(min(threads, idle_cores()))
    try:
        return _predict(args)
    finally:
        torch.set_num_threads(threads)


def _predict(args: argparse.Namespace) -> int:
    from engine.ensemble import Ensemble, EnsembleError

    started = time.perf_counter()
    try:
        ensemble = Ensemble.load(args.run, device=args.device, temperature=not args.no_temperature)
    except EnsembleError as err:
        return _fail(str(err))
    skipped: list[str] = []
    items = read_inputs(args.inputs, skipped)
    for line in skipped:
        print(f"{PROG}: skipped {line}", file=sys.stderr)
    if not items:
        return _fail("no input could be scored")
    try:
        out = ensemble.predict_images([item.image for item in items])
    except EnsembleError as err:
        return _fail(str(err))
    records = rows([item.name for item in items], out)
    if args.thumbnails:
        for record, image in zip(records, thumbnails(items, ensemble.shape), strict=True):
            record["image"] = image
    if args.out is None:
        try:
            render(records, args.format, ensemble.thresholds, sys.stdout)
            sys.stdout.flush()
        except BrokenPipeError:  # `… | head`: the reader has all it wants
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    else:
        text = io.StringIO()
        render(records, args.format, ensemble.thresholds, text)
        args.out.write_text(text.getvalue(), encoding="utf-8")
    counts = {v: out.verdict.count(v) for v in VERDICT_STYLE}
    scaled = f" at temperature {ensemble.temperature:.3g}" if ensemble.temperature != 1.0 else ""
    print(f"{PROG}: {len(items)} input(s) scored by {len(out.members)} member(s){scaled} in "
          f"{time.perf_counter() - started:.2f} s: " + ", ".join(f"{n} {v}" for v, n in counts.items())
          + (f"; {len(skipped)} skipped" if skipped else "") + (f"; wrote {args.out}" if args.out else ""),
          file=sys.stderr)
    if ensemble.calibrated_on < FEW_TEST_INPUTS:
        print(f"{PROG}: note: the verdict levels come from only {ensemble.calibrated_on} test inputs of the run; "
              "treat the verdicts as rough", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
