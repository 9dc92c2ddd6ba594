"""Checks that need torch, run before any rank starts: your data reads, your model builds and answers.

`python -m engine.probe < config.toml` exits 0 with one JSON line describing the data when the run can
start, or prints one line naming the problem and exits 2. Progress of long work (decoding an image folder)
goes to stderr. The launcher runs it only for configs that name your own data or model
(`engine.preflight.needs_probe`); the built-ins are checked torch-free, so they pay nothing.
"""

from __future__ import annotations

import json
import sys
import tomllib
from typing import Any

from engine.config import ConfigError, RunConfig, parse_config

EXIT_PROBLEM = 2


def probe(config: RunConfig) -> dict[str, Any]:
    """Load the data and OOD sets, build one member and run a batch through it; raises on the first problem."""
    from engine.data import load_ood, load_splits
    from engine.models import check_model

    splits = load_splits(config.data, config.seed)
    for name in config.data.ood:
        load_ood(name, splits, config.data, config.seed)
    note = check_model(config, splits.shape, splits.num_classes, len(splits.y_train))
    c, h, w = splits.shape
    return {"train": len(splits.y_train), "val": len(splits.y_val), "test": len(splits.y_test),
            "shape": [c, h, w], "classes": splits.classes, "note": note}


def main() -> int:
    from engine.data import DataError
    from engine.models import ModelError

    try:
        config = parse_config(tomllib.loads(sys.stdin.read()), "config")
        found = probe(config)
        c, h, w = found["shape"]
        names = ", ".join(found["classes"][:8]) + (", …" if len(found["classes"]) > 8 else "")
        print(f"data: {found['train']:,} train · {found['val']:,} validation · {found['test']:,} test images of "
              f"{c}×{h}×{w}, {len(found['classes'])} classes ({names})", file=sys.stderr, flush=True)
        if found["note"]:
            print(f"note: {found['note']}", file=sys.stderr, flush=True)
        print(json.dumps(found), flush=True)
    except (ConfigError, DataError, ModelError) as err:
        print(str(err), flush=True)
        return EXIT_PROBLEM
    return 0


if __name__ == "__main__":
    sys.exit(main())
