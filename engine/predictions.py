"""predictions.pt: what every member answered on every evaluation set, gathered on rank 0 for the report.

    members       [i, …]  the members' indices, in the order of the arrays' first axis
    diverged      members left out of the ensemble
    dataset, classes, inputs
    labels        (N,) test labels;  images (N, C, H, W) test images in [0, 1]
    sets          {name: (M, N_set, K) probabilities}   names: test, val, ood:<set>, shift:<corruption>:<severity>
    logits        {name: (M, N_set, K) logits}           the same sets (runs before ens-tui kept logits: absent)
    val_labels    (N_val,) labels of the validation split (absent in older runs)
    shift_labels  (n,) labels of the test sample the shift sets corrupt (absent when shift is off)

Arrays are stored as tensors so the file loads with `weights_only=True` (no pickled code). Re-score a run
from it with `python -m engine.report RUN`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.checkpoint import save_checkpoint


def _convert(value: Any, kind: type, to: Any) -> Any:
    if isinstance(value, dict):
        return {k: _convert(v, kind, to) for k, v in value.items()}
    return to(value) if isinstance(value, kind) else value


def save_predictions(path: Path, payload: dict[str, Any]) -> None:
    """Write the payload atomically, arrays as tensors."""
    save_checkpoint(path, _convert(payload, np.ndarray, torch.as_tensor))


def load_predictions(path: Path) -> dict[str, Any]:
    """The payload with numpy arrays."""
    raw = torch.load(path, map_location="cpu", weights_only=True)
    return _convert(raw, torch.Tensor, lambda t: t.numpy())
