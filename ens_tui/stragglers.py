"""Which ranks train far slower than their peers: the launcher's straggler watch.

A rank whose latest rate stays under half the median of its peers' for `parallel.straggler_after_s` is
flagged, and cleared once it has stayed above that line as long (one fast report is not a recovery: a
rank that is slow now and then would flip every few seconds). Only ranks that are training count
(a step report within the last FRESH_S seconds): a rank that scores, waits or has finished is neither judged
nor anyone's peer, and keeps the flag it had, so a straggler that has finished its member is still not
handed the next one. Rates are the ranks' own model-samples per second from their step reports, comparable
across strategies and devices.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from engine import events as ev

SLOW_SHARE = 0.5
FRESH_S = 5.0


@dataclass
class StragglerWatch:
    """Fed every step report; `check` says which flags changed."""

    after_s: float
    rates: dict[int, tuple[float, float]] = field(default_factory=dict)
    """rank → (when, samples/s) of its latest step report."""
    slow_since: dict[int, float] = field(default_factory=dict)
    fast_since: dict[int, float] = field(default_factory=dict)
    """rank → since when a flagged rank has kept up again."""
    flagged: set[int] = field(default_factory=set)

    def step(self, rank: int, samples_per_s: float, now: float) -> None:
        self.rates[rank] = (now, samples_per_s)

    def check(self, now: float) -> list[ev.Straggler]:
        """Flags raised or cleared by the rates as they stand at `now`."""
        fresh = {r: rate for r, (t, rate) in self.rates.items() if now - t <= FRESH_S}
        changed = []
        for rank, rate in sorted(fresh.items()):
            peers = [other for r, other in fresh.items() if r != rank]
            if not peers:
                self.slow_since.pop(rank, None)
                continue
            median = statistics.median(peers)
            if rate < SLOW_SHARE * median:
                self.fast_since.pop(rank, None)
                since = self.slow_since.setdefault(rank, now)
                if rank not in self.flagged and now - since >= self.after_s:
                    self.flagged.add(rank)
                    changed.append(ev.Straggler(rank=rank, flagged=True, samples_per_s=rate, peers_median=median,
                                                seconds=now - since))
            else:
                self.slow_since.pop(rank, None)
                since = self.fast_since.setdefault(rank, now)
                if rank in self.flagged and now - since >= self.after_s:
                    self.flagged.discard(rank)
                    changed.append(ev.Straggler(rank=rank, flagged=False, samples_per_s=rate, peers_median=median,
                                                seconds=now - since))
        return changed
