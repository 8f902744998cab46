"""Latency statistics and the side-by-side report every benchmark prints."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Latency:
    name: str
    samples_ms: tuple[float, ...]
    throughput: float  # calls per second under concurrency

    def quantile(self, q: float) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p99(self) -> float:
        return self.quantile(0.99)


def report(subject: Latency, peer: Latency, *, target_ratio: float) -> bool:
    """Print both rows and the p50 ratio; return whether the target is met."""
    print(f"{'path':<34}{'p50 ms':>10}{'p99 ms':>10}{'calls/s':>12}")
    for row in (peer, subject):
        print(f"{row.name:<34}{row.p50:>10.3f}{row.p99:>10.3f}{row.throughput:>12.0f}")
    ratio = subject.p50 / peer.p50
    met = ratio <= target_ratio
    print(f"p50 ratio {subject.name} / {peer.name}: {ratio:.2f}x "
          f"(target <= {target_ratio}x: {'met' if met else 'NOT met'})")
    return met
