"""A trained ensemble, loaded from its run folder, answering for new images with its uncertainty.

    ens = Ensemble.load("runs/<id>", device="cpu")
    out = ens.predict(images)      # uint8 or [0, 1] float, (N, C, H, W) or (N, H, W)
    out.probs, out.entropy, out.mutual_information, out.verdict

The members are rebuilt from the run's config and their last checkpoints; the run's report supplies the
input conversion (size, channels, normalisation of the training split), the temperature fitted on the
validation split (report.json `calibration.temperature`: every member's logits are divided by it before the
softmax; `temperature=False` leaves them as trained) and the verdict thresholds on those probabilities, so
new images go through exactly what the training data went through and are judged against the run's own test
split. Diverged members stay out, as they did in the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine import uncertainty as U
from engine.config import ConfigError, load_config
from engine.inputs import prepare
from engine.layout import prefer_layout
from engine.models import build_model
from engine.report_model import Report, ReportError
from engine.run_folder import RunFolder

BATCH = 512
"""Images per forward pass: large enough to amortise per-call overhead, small enough to bound memory."""
RANGE_SLACK = 1e-4
"""Float images may stray this far outside [0, 1] (round-off of a de-normalisation) and still be accepted."""


class EnsembleError(ValueError):
    """The run cannot be used for predictions (or an input cannot); the message is one line saying why."""


@dataclass(frozen=True)
class PredictionResult:
    """The ensemble's answer for N inputs (M members, K classes); uncertainties are in nats."""

    probs: np.ndarray
    """(N, K) the ensemble's predictive distribution: the mean of the members' probabilities."""
    member_probs: np.ndarray
    """(M, N, K) each member's softmax output."""
    entropy: np.ndarray
    """(N,) total predictive entropy = aleatoric + mutual_information."""
    aleatoric: np.ndarray
    """(N,) the members' mean entropy: doubt every member shares (an ambiguous input)."""
    mutual_information: np.ndarray
    """(N,) epistemic part: how much the members disagree (an input unlike the training data)."""
    verdict: list[str]
    """`confident`, `uncertain` or `out-of-distribution` per input (see `Ensemble.thresholds`)."""
    class_names: list[str]
    members: list[int]
    """The members' indices in the run, in the order of `member_probs`."""

    def __len__(self) -> int:
        return len(self.probs)

    @property
    def prediction(self) -> np.ndarray:
        """(N,) the class index the ensemble picks."""
        return self.probs.argmax(axis=1)

    @property
    def member_predictions(self) -> np.ndarray:
        """(M, N) the class index each member picks."""
        return self.member_probs.argmax(axis=2)


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """engine.uncertainty.entropy in torch (TorchScript takes no global constants, hence the literal EPS)."""
    return -(p * torch.log(p.clamp(1e-12, 1.0))).sum(-1)


class EnsembleModule(nn.Module):
    """The members and the run's input conversion as one module (what `ens-tui export` scripts).

    `forward` takes raw images, uint8 (N, C, H, W) as read from files (or float in [0, 1]), of any size and
    1–4 channels, and returns (mean probabilities (N, K), entropy (N,), mutual information (N,)) in nats.
    `temperature` divides every member's logits before the softmax (1: the members as trained).
    """

    def __init__(self, members: Sequence[nn.Module], channels: int, height: int, width: int, mean: float,
                 std: float, temperature: float = 1.0, class_names: Sequence[str] = ()) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.channels = channels
        self.height = height
        self.width = width
        self.mean = mean
        self.std = std
        self.temperature = temperature
        self.class_names: list[str] = list(class_names)
        """Class k's name: an exported file carries them, so plain-torch users need not guess."""

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Raw images → what the members were trained on (float32, as the members' weights are)."""
        if images.is_floating_point():
            images = images.to(torch.float32)  # numpy's float64, say
        return prepare(images, self.channels, self.height, self.width, self.mean, self.std)

    def member_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Prepared inputs → every member's softmax(logits / temperature), (M, N, K)."""
        out: list[torch.Tensor] = []
        for member in self.members:
            out.append(F.softmax(member(x) / self.temperature, dim=1))
        return torch.stack(out)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        probs = self.member_probs(self.prepare(images))
        mean = probs.mean(0)
        total = _entropy(mean)
        return mean, total, (total - _entropy(probs).mean(0)).clamp_min(0.0)


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise EnsembleError(f"unknown device {str(device)!r}; allowed: cpu, cuda, cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EnsembleError("device cuda asked for, but this machine has no CUDA device torch can use; use cpu")
    if dev.type not in ("cpu", "cuda"):
        raise EnsembleError(f"unsupported device {dev.type!r}; allowed: cpu, cuda")
    return dev


def _as_images(x: Any) -> torch.Tensor:
    """A uint8 or [0, 1] float array/tensor (N, C, H, W) or (N, H, W) as a tensor (N, C, H, W)."""
    images = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    if not isinstance(images, torch.Tensor):
        raise EnsembleError(f"images must be a numpy array or torch tensor, not {type(x).__name__}")
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4 or not 1 <= images.shape[1] <= 4:
        raise EnsembleError(f"images must be (N, C, H, W) with C of 1–4, or (N, H, W); got shape {tuple(x.shape)}")
    check_range(images)
    return images


def check_range(images: torch.Tensor) -> None:
    """uint8 (any value) or float within [0, 1]; anything else is refused, naming what was found."""
    if images.dtype == torch.uint8:
        return
    if not images.is_floating_point():
        raise EnsembleError(f"images must be uint8 (0–255) or float in [0, 1], not {images.dtype}")
    if not bool(torch.isfinite(images).all()):
        raise EnsembleError("float images must be finite; these hold NaN or infinity")
    if images.numel() and (images.min() < -RANGE_SLACK or images.max() > 1.0 + RANGE_SLACK):
        raise EnsembleError(f"float images must lie in [0, 1] (these span {float(images.min()):g}…"
                            f"{float(images.max()):g}); pass uint8 for 0–255 pixels")


class Ensemble:
    """The run's non-diverged members with its input conversion, temperature, class names and verdict thresholds.

    `thresholds`: entropy above which an input is `uncertain`, mutual information above which it is
    `out-of-distribution` (report.json's `thresholds`, calibrated on the run's test split at the temperature
    the ensemble applies).
    """

    def __init__(self, module: EnsembleModule, members: list[int], class_names: list[str],
                 thresholds: dict[str, float], device: torch.device, run: Path, calibrated_on: int = 0) -> None:
        self.module = module.to(device).eval()
        self.calibrated_on = calibrated_on
        """Test inputs the verdict thresholds were measured on (few make the verdicts coarse)."""
        self.members = members
        self.class_names = class_names
        self.thresholds = thresholds
        self.device = device
        self.run = run

    @classmethod
    def load(cls, run: Path | str, device: str | torch.device = "cpu", temperature: bool = True) -> Ensemble:
        """Rebuild the members of a finished run; raises EnsembleError (one line) when the run cannot serve.

        `temperature`: apply the run's fitted temperature (runs without one, from before ens-tui fitted it or
        without a validation split, answer as trained either way).
        """
        folder = RunFolder(Path(run))
        dev = _device(device)
        if not folder.is_run():
            raise EnsembleError(f"{folder.path}: not a run folder (expected {folder.config.name} and "
                                f"{folder.info.name} inside)")
        if not folder.report_json.is_file():
            raise EnsembleError(f"{folder.path}: no {folder.report_json.name} yet; finish or resume the run first "
                                f"(ens-tui --resume {folder.path})")
        try:
            report = Report.read(folder.report_json)
            config = load_config(folder.config)
        except (ReportError, ConfigError) as err:
            raise EnsembleError(str(err)) from None
        if report.inputs is None or report.thresholds is None:
            raise EnsembleError(f"{folder.path}: its report was written by an older ens-tui and does not record how "
                                "images were converted for training; run the config again to use it for predictions")
        diverged = set(report.diverged)
        members = [m.member for m in report.members if not m.diverged and m.member not in diverged]
        if not members:
            raise EnsembleError(f"{folder.path}: every member diverged; there is no ensemble to predict with")
        spec = report.inputs
        shape = (spec.channels, spec.height, spec.width)
        classes = report.classes or [str(i) for i in range(10)]
        models = []
        for index in members:
            path = folder.checkpoint(index)
            if not path.is_file():
                raise EnsembleError(f"{path}: member {index}'s checkpoint is missing; the run folder is incomplete")
            try:
                model = build_model(config.model, shape, len(classes))
            except Exception as err:  # your own model may fail in any way; say so in one line
                raise EnsembleError(f"{folder.path}: cannot rebuild its members' model ({_first_line(err)})") from None
            try:
                model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
            except Exception as err:
                raise EnsembleError(f"{path}: cannot load member {index}'s weights ({_first_line(err)})") from None
            models.append(prefer_layout(model.to(dev), dev).eval().requires_grad_(False))
        thresholds = report.thresholds
        scale = 1.0
        if report.calibration is not None:
            if temperature:
                scale = report.calibration.temperature
            elif report.calibration.thresholds_before is not None:
                thresholds = report.calibration.thresholds_before
        module = EnsembleModule(models, spec.channels, spec.height, spec.width, spec.mean, spec.std, scale, classes)
        return cls(module, members, classes, thresholds.model_dump(), dev, folder.path, report.test_size)

    @property
    def temperature(self) -> float:
        """What every member's logits are divided by before the softmax (1.0: as trained)."""
        return self.module.temperature

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the members' inputs; any other size or channel count is converted to it."""
        return self.module.channels, self.module.height, self.module.width

    def predict(self, x: Any) -> PredictionResult:
        """The ensemble's answer for images: uint8 or [0, 1] float, (N, C, H, W) or (N, H, W)."""
        images = _as_images(x)
        return self.explain(self._probs(self._prepare(images[i : i + BATCH]) for i in range(0, len(images), BATCH)))

    def predict_images(self, images: Sequence[torch.Tensor | np.ndarray]) -> PredictionResult:
        """The answer for raw images (C, H, W) of possibly different sizes and channel counts, in their order."""
        return self.explain(self._probs(self._prepare_mixed(images[i : i + BATCH]) for i in range(0, len(images), BATCH)))

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        return self.module.prepare(images.to(self.device))

    def _prepare_mixed(self, images: Sequence[torch.Tensor | np.ndarray]) -> torch.Tensor:
        """Raw images of mixed shapes → the members' inputs, in order (images of one shape converted together)."""
        groups: dict[tuple[tuple[int, ...], str], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault((tuple(image.shape), str(image.dtype)), []).append(i)
        out = torch.empty((len(images), *self.shape), device=self.device)
        for indices in groups.values():
            batch = torch.stack([torch.as_tensor(images[i]) for i in indices])
            if batch.ndim != 4 or not 1 <= batch.shape[1] <= 4:
                raise EnsembleError(f"images must be (C, H, W) with C of 1–4; got shape {tuple(batch.shape[1:])}")
            check_range(batch)
            out[torch.tensor(indices, device=self.device)] = self._prepare(batch)
        return out

    @torch.inference_mode()
    def _probs(self, batches: Iterable[torch.Tensor]) -> np.ndarray:
        """Prepared batches → every member's probabilities, (M, N, K) float32 on the CPU."""
        parts = [self.module.member_probs(batch).float().cpu() for batch in batches]
        if not parts:
            return np.zeros((len(self.members), 0, len(self.class_names)), dtype=np.float32)
        return torch.cat(parts, dim=1).numpy()

    def explain(self, member_probs: np.ndarray) -> PredictionResult:
        """Members' probabilities (M, N, K) → the ensemble's answer, decomposed and judged as the report was."""
        parts = U.decompose(member_probs)
        return PredictionResult(
            probs=U.ensemble_mean(member_probs), member_probs=member_probs, entropy=parts["entropy"],
            aleatoric=parts["aleatoric"], mutual_information=parts["mutual_information"],
            verdict=U.verdicts(parts["entropy"], parts["mutual_information"], self.thresholds),
            class_names=list(self.class_names), members=list(self.members),
        )
