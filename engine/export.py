"""`ens-tui export RUN`: the trained ensemble as one file that needs only torch (or an ONNX runtime).

    ens-tui export runs/<id>                      → runs/<id>/ensemble.ts.pt (TorchScript)
    ens-tui export runs/<id> --format onnx        → runs/<id>/ensemble.onnx (needs ens-tui[onnx])

TorchScript: `torch.jit.load(path)(images)` with `images` a uint8 tensor (N, C, H, W) as read from files
(any size, 1–4 channels; float in [0, 1] works too) returns (mean probabilities (N, K), entropy (N,),
mutual information (N,)) in nats. The run's input conversion (channels, antialiased resize, normalisation)
and its fitted temperature (report.json `calibration.temperature`; `--no-temperature` leaves the members as
trained) are inside, so the numbers are those of `ens-tui predict`. Members are scripted; a model TorchScript
cannot compile is traced on an input of the run's shape instead (the command says which).

ONNX: the same outputs for uint8 images of exactly the run's (C, H, W), any batch size; convert channels and
size before calling it.

Every export is loaded back and checked against `Ensemble.predict` before the command reports success.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.atomic import atomic_write_bytes
from engine.ensemble import Ensemble, EnsembleError, EnsembleModule
from engine.run_folder import RunFolder
from engine.usage import OneLineParser

PROG = "ens-tui export"
FORMATS = ("torchscript", "onnx")
TOLERANCE = 1e-5
"""Largest difference from `Ensemble.predict` an export may show on the check images (float32 round-off)."""

Runner = Callable[[torch.Tensor], tuple[np.ndarray, ...]]
"""An export as loaded back: uint8 images → (probabilities, entropy, mutual information)."""


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, metavar="RUN", help="a finished run folder (runs/<run-id>)")
    p.add_argument("--format", choices=FORMATS, default="torchscript",
                   help="torchscript (default) or onnx (needs the onnx extra: pip install 'ens-tui[onnx]')")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="where to write it (default: RUN/ensemble.ts.pt or RUN/ensemble.onnx)")
    p.add_argument("--no-temperature", action="store_true",
                   help="leave out the temperature fitted on the validation split (the members' logits as trained)")
    return p


class ExportError(RuntimeError):
    """The ensemble cannot be exported in the asked format; one line says why."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def torchscript(ensemble: Ensemble) -> tuple[torch.jit.ScriptModule, str]:
    """The ensemble as a ScriptModule, and how: `scripted`, or `members traced` when scripting fails."""
    module = ensemble.module
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice and tracer warnings are not the user's
        try:
            return torch.jit.script(module), "scripted"
        except Exception as err:
            scripting = _first_line(err)
        try:
            c, h, w = ensemble.shape
            example = module.prepare(torch.zeros((2, c, h, w), dtype=torch.uint8))
            traced = [torch.jit.trace(member, example) for member in module.members]
            wrapper = EnsembleModule(traced, module.channels, module.height, module.width, module.mean, module.std,
                                     module.temperature, module.class_names)
            return torch.jit.script(wrapper), "members traced on a (2, C, H, W) example; the conversion is scripted"
        except Exception as err:
            raise ExportError(f"TorchScript cannot hold this model: scripting failed ({scripting}) and so did "
                              f"tracing ({_first_line(err)})") from None


@dataclass(frozen=True)
class Written:
    """What an export wrote: how it was made, how to call it, and the file as loaded back (None: cannot load here)."""

    how: str
    usage: str
    runner: Runner | None


def write_torchscript(ensemble: Ensemble, path: Path) -> Written:
    """Script (or trace) and save atomically."""
    scripted, how = torchscript(ensemble)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(scripted, buffer)
        atomic_write_bytes(path, buffer.getvalue())
        loaded = torch.jit.load(str(path))
    usage = (f"torch.jit.load({str(path)!r})(images), images uint8 (N, C, H, W) of any size and 1–4 channels "
             "→ (probabilities, entropy, mutual information); its .class_names name the classes")
    return Written(f"TorchScript, {how}", usage, lambda images: tuple(t.numpy() for t in loaded(images)))


def write_onnx(ensemble: Ensemble, path: Path) -> Written:
    """torch.onnx's exporter with a dynamic batch; the run's exact image shape."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ExportError("ONNX export needs the onnx extra: pip install 'ens-tui[onnx]' (onnx, onnxscript, "
                          "onnxruntime); --format torchscript needs nothing more") from None
    c, h, w = ensemble.shape
    example = torch.zeros((2, c, h, w), dtype=torch.uint8)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            torch.onnx.export(ensemble.module, (example,), str(tmp), input_names=["images"],
                              output_names=["probabilities", "entropy", "mutual_information"],
                              dynamic_shapes={"images": {0: torch.export.Dim("batch")}}, dynamo=True,
                              external_data=False, verbose=False)
        tmp.replace(path)
    except Exception as err:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"torch.onnx could not export this model: {_first_line(err)}") from None
    usage = (f"input `images` uint8 (N, {c}, {h}, {w}) (convert size and channels first) → outputs `probabilities`, "
             "`entropy`, `mutual_information`")
    try:
        import onnxruntime
    except ImportError:
        return Written("ONNX; not checked: onnxruntime is not installed", usage, None)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return Written("ONNX", usage, lambda images: tuple(session.run(None, {"images": images.numpy()})))


def check(ensemble: Ensemble, run_export: Runner) -> float:
    """Largest difference between the export and Ensemble.predict on a few random images of the run's shape."""
    images = torch.randint(0, 256, (5, *ensemble.shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    want = ensemble.predict(images)
    got = run_export(images)
    return max(float(np.abs(np.asarray(g, dtype=np.float64) - w).max())
               for g, w in zip(got, (want.probs, want.entropy, want.mutual_information), strict=True))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = args.out if args.out is not None else RunFolder(args.run).exported(args.format)
    try:
        ensemble = Ensemble.load(args.run, device="cpu", temperature=not args.no_temperature)
        if not out.parent.is_dir():
            raise ExportError(f"--out {out}: folder {out.parent} does not exist")
        write = write_torchscript if args.format == "torchscript" else write_onnx
        written = write(ensemble, out)
    except (EnsembleError, ExportError) as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    checked = ""
    if written.runner is not None:
        gap = check(ensemble, written.runner)
        if not gap <= TOLERANCE:
            out.unlink(missing_ok=True)
            print(f"{PROG}: the exported module answers differently from the ensemble (by {gap:.2g} > {TOLERANCE:g}); "
                  "nothing written", file=sys.stderr)
            return 2
        checked = f"; matches Ensemble.predict within {gap:.1g}" + (" (identical)" if gap == 0 else "")
    scaled = f"; temperature {ensemble.temperature:.3g} inside" if ensemble.temperature != 1.0 else ""
    print(f"wrote {out} ({written.how}, {len(ensemble.members)} members{checked}{scaled})")
    print(f"use: {written.usage}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
