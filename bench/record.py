"""Where a benchmark's results go: `bench/results/<kind>-<machine>-<date>-<time>.json`, committed with the
README section that quotes them."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(kind: str, result: dict[str, Any]) -> Path:
    """Write one benchmark's results as JSON; returns the file."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{kind}-{platform.node()}-{time.strftime('%Y%m%d-%H%M')}.json"
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    return path
