"""predictions.pt: what every member answered on every evaluation set, gathered on rank 0 for the report.

    members       [i, …]  the members' indices, in the order of the arrays' first axis
    diverged      members left out of the ensemble
    dataset, classes, inputs
    labels        (N,) test labels;  images (N, C, H, W) test images in [0, 1] (stored as uint8 where lossless)
    sets          {name: (M, N_set, K) probabilities}   names: test, val, ood:<set>, shift:<corruption>:<severity>
    logits        {name: (M, N_set, K) float32 logits}   the same sets (runs before ens-tui kept logits: absent)
    val_labels    (N_val,) labels of the validation split (absent in older runs, and when val_fraction = 0)
    shift_index   (n,) which test images (sorted indices) every shift set corrupts (absent when shift is off)
    shift_labels  (n,) their labels, `labels[shift_index]`

Where the logits cover every set, the file keeps only them (half the size) and `sets` is their softmax,
taken again on loading by the same function that made it for the report when the run finished.
Arrays are stored as tensors so the file loads with `weights_only=True` (no pickled code). Re-score a run
from it with `python -m engine.report RUN`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from engine.checkpoint import save_checkpoint

if TYPE_CHECKING:
    from engine.data import Splits
    from engine.evaluation import EvalSets


def _convert(value: Any, kind: type, to: Any) -> Any:
    if isinstance(value, dict):
        return {k: _convert(v, kind, to) for k, v in value.items()}
    return to(value) if isinstance(value, kind) else value


def probabilities(logits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every set's softmax over classes, float32: the `sets` of a payload that has `logits`."""
    return {name: torch.softmax(torch.as_tensor(z), dim=-1).numpy() for name, z in logits.items()}


def image_bytes(images: torch.Tensor) -> np.ndarray:
    """Test images in [0, 1], stored as uint8 where that loses nothing (8-bit sources such as MNIST: 8 MB instead
    of 32), else as they are; `load_predictions` gives [0, 1] floats back either way."""
    images = images.cpu()
    pixels = (images * 255).round_()
    if torch.allclose(pixels / 255, images, rtol=0, atol=1e-5):  # 8-bit levels, up to the float error of de-normalising
        return pixels.to(torch.uint8).numpy()
    return images.numpy()


def predictions_payload(per_member: dict[int, dict[str, np.ndarray]], diverged: Iterable[int], splits: Splits,
                        eval_sets: EvalSets) -> dict[str, Any]:
    """The payload of the members' logits (member index → set name → (N, K)) against the data they were scored on.

    What rank 0 saves once every member is trained (engine.worker.finish), and what `python -m engine.partial`
    reports for the members trained so far.
    """
    members = sorted(per_member)
    logits = {name: np.stack([per_member[m][name] for m in members]) for name in eval_sets}
    payload = {
        "members": members,
        "diverged": sorted(diverged),
        "dataset": splits.name,
        "classes": splits.classes,
        "labels": splits.y_test.cpu().numpy(),
        "images": image_bytes(splits.x_test * splits.std + splits.mean),
        "inputs": splits.inputs(),
        "logits": logits,
        "sets": probabilities(logits),
    }
    if "val" in eval_sets:
        payload["val_labels"] = splits.y_val.cpu().numpy()
    if eval_sets.shift is not None:
        payload["shift_index"] = eval_sets.shift.index.numpy()
        payload["shift_labels"] = splits.y_test[eval_sets.shift.index].cpu().numpy()
    return payload


def save_predictions(path: Path, payload: dict[str, Any]) -> None:
    """Write the payload atomically, arrays as tensors; `sets` is left out where `logits` can give it back."""
    if "logits" in payload and set(payload.get("sets", {})) <= set(payload["logits"]):
        payload = {k: v for k, v in payload.items() if k != "sets"}
    save_checkpoint(path, _convert(payload, np.ndarray, torch.as_tensor))


def load_predictions(path: Path) -> dict[str, Any]:
    """The payload with numpy arrays, `sets` included."""
    raw = torch.load(path, map_location="cpu", weights_only=True)
    pred = _convert(raw, torch.Tensor, lambda t: t.numpy())
    if "sets" not in pred:
        pred["sets"] = probabilities(pred["logits"])
    if "images" in pred and pred["images"].dtype == np.uint8:
        pred["images"] = pred["images"].astype(np.float32) / 255
    return pred
