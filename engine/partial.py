"""The report of the members trained so far: `python -m engine.partial runs/<run-id>`.

While a run trains, or after it failed or was interrupted, this scores the members that have finished and
writes their uncertainty report into runs/<id>/partial/ (report.json, report.md, report.html, figures/), never
over the run's own report; report.json's `partial` says how many of the run's members it holds (k of K). The
dashboard's `r` runs it in a subprocess while the run has no report yet.

Which members: those whose checkpoint records every one of the run's epochs (`train.epochs`), and those that
diverged (stopped early: listed, and left out of the ensemble, as in the final report). A member part-way
through its epochs is left out, so the partial report shows the finished members exactly as the run's own
report will: the same weights, scored on the same test, validation, OOD and shift sets, by the same code
(engine.rank.eval_sets_for, engine.predictions.predictions_payload, engine.report.publish). A half-trained
member would only drag the ensemble down and say nothing about the final one.

Progress goes to stderr, one line per stage (`engine.partial: scoring m1 (2 of 3)`); the last line of a
failure says why. Exit status: 0 when the report was written, 2 when it could not be (not a run folder, no
member finished yet, every finished member diverged, a checkpoint that does not fit the run).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from engine.config import ConfigError, RunConfig, load_config
from engine.fingerprint import CheckpointFileError, read_head
from engine.report_model import Partial, Report
from engine.run_folder import RunFolder
from engine.usage import OneLineParser

PROG = "engine.partial"


class PartialError(ValueError):
    """No partial report can be written; the message is one line saying why."""


def finished_members(folder: RunFolder, config: RunConfig, notes: list[str] | None = None) -> list[int]:
    """The members whose checkpoint completed every epoch, or diverged (read without torch: engine.fingerprint).

    A checkpoint that cannot be read is left out and named in `notes`.
    """
    done: list[int] = []
    for index in range(config.train.members):
        path = folder.checkpoint(index)
        if not path.is_file():
            continue
        try:
            head = read_head(path)
        except CheckpointFileError as err:
            if notes is not None:
                notes.append(f"m{index} left out: {path.relative_to(folder.path)} {err}")
            continue
        if int(head.get("epoch", 0)) >= config.train.epochs or bool(head.get("diverged", False)):
            done.append(index)
    return done


def write_partial(run_dir: Path, device: str = "cpu", progress: Callable[[str], None] = lambda _: None, *,
                  threads: int | None = None) -> Report:
    """Score the finished members of a run and write runs/<id>/partial/; raises PartialError (one line).

    `threads`: torch's CPU threads while scoring (the command leaves the cores a training run uses to it).
    """
    folder = RunFolder(run_dir)
    if not folder.is_run():
        raise PartialError(f"{folder.path}: not a run folder (expected {folder.config.name} and {folder.info.name} "
                           "inside)")
    try:
        config = load_config(folder.config)
    except ConfigError as err:
        raise PartialError(str(err).splitlines()[0]) from None
    notes: list[str] = []
    members = finished_members(folder, config, notes)
    for note in notes:
        progress(note)
    total, epochs = config.train.members, config.train.epochs
    if not members:
        raise PartialError(f"no member has finished training yet: a partial report needs one that completed all "
                           f"{epochs} epoch{'s' * (epochs > 1)}")

    # Imported here: torch and the data take seconds to load, and a refusal above needs neither.
    import torch

    from engine.checkpoint import CheckpointError
    from engine.member import make_member
    from engine.predictions import predictions_payload
    from engine.rank import Outcome, load_local, resolve_device
    from engine.report import publish

    if threads is not None:
        torch.set_num_threads(max(1, min(torch.get_num_threads(), threads)))
    try:
        dev = resolve_device(device, [device], 0)
    except RuntimeError as err:
        raise PartialError(str(err)) from None
    progress(f"loading {config.data.dataset} and the evaluation sets")
    splits, eval_sets = load_local(config)
    outcome = Outcome(splits=splits, eval_sets=eval_sets)
    for n, index in enumerate(members, 1):
        progress(f"scoring m{index} ({n} of {len(members)})")
        try:
            member = make_member(config, splits.shape, splits.num_classes, index, dev, folder)
        except CheckpointError as err:
            raise PartialError(str(err)) from None
        with torch.inference_mode():
            outcome.add(member, eval_sets)
    diverged = [m for m, d in outcome.diverged.items() if d]
    payload = predictions_payload(outcome.predictions, diverged, splits, eval_sets)
    progress(f"writing the report of {len(members)} of {total} members")
    target = folder.partial
    target.path.mkdir(exist_ok=True)
    title = f"Partial uncertainty report — {folder.name} ({len(members)} of {total} members)"
    try:
        return publish(target, payload, config.report, title=title, partial=Partial(members=len(members), of=total))
    except ValueError as err:  # NoEnsemble: every finished member diverged
        raise PartialError(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog=f"python -m {PROG}", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, metavar="RUN", help="a run folder (runs/<run-id>), running or not")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the members are scored (default cpu: a training run keeps its GPU)")
    args = parser.parse_args(argv)

    def progress(line: str) -> None:
        print(f"{PROG}: {line}", file=sys.stderr, flush=True)

    from engine.predict import idle_cores

    try:
        report = write_partial(args.run_dir, args.device, progress, threads=idle_cores())
    except PartialError as err:
        progress(str(err))
        return 2
    folder = RunFolder(args.run_dir).partial
    assert report.partial is not None
    extra = f", report.html and {len(report.figures)} figures" if report.figures else ""
    print(f"wrote {folder.report_json} and {folder.report_md.name}{extra}: {report.partial.members} of "
          f"{report.partial.of} members, ensemble accuracy {report.ensemble.accuracy:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
