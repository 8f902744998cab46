"""``diag.watch``: chosen metrics sampled every N seconds for M seconds, streamed.

Each sample is one part of the operation's output: a JSON object on one line (UTF-8,
newline-terminated) with its number ``seq`` (from 1), the agent's time ``at`` and one key
per chosen metric. Sample ``k`` is taken ``k * every`` seconds after the start and covers
the interval before it (CPU use is measured over it), so a watch ``for`` 60 seconds
``every`` 2 sends 30 samples and ends after about 60 seconds. Samples follow an absolute
schedule: a slow reading delays one sample, not all the later ones.

The readings are those of the one-shot operations (:mod:`agent.diag.system`,
:mod:`agent.diag.network`, :mod:`agent.diag.processes`), redacted the same way: mount
options of ``disk`` and the command lines of ``processes`` (with the customer's
``redact_patterns``); each sample's ``redactions`` counts what it hid. The summary result
counts the samples and all redactions. Sleeping and both clocks are parameters, so tests
run a watch without waiting through it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agent.diag import network, processes, system
from agent.diag.params import ParamReader, Params
from agent.diag.policy import DiagConfig
from agent.redact_custom import NO_PATTERNS, CustomRedaction

METRICS = ("cpu", "memory", "load", "disk", "network", "processes")
DEFAULT_METRICS = ("cpu", "memory", "load")
MIN_EVERY, MAX_EVERY = 1, 3600
MAX_FOR = 24 * 3600
DEFAULT_FOR = 60
MAX_TOP = 50
DEFAULT_TOP = 5
PROCESS_WINDOW = 0.5  # seconds the process list measures CPU use over, at most

Emit = Callable[[bytes], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


@dataclass(frozen=True)
class WatchQuery:
    """Validated parameters of ``diag.watch``."""

    metrics: tuple[str, ...] = DEFAULT_METRICS
    every: float = 5.0
    duration: float = float(DEFAULT_FOR)
    top: int = DEFAULT_TOP
    custom: CustomRedaction = NO_PATTERNS


def parse_watch(params: Params, diag: DiagConfig | None = None) -> WatchQuery:
    """``metrics``: a list of distinct names of :data:`METRICS` (default cpu, memory,
    load); ``every``: seconds between samples, 1..3600 (default 5); ``for``: seconds to
    watch, up to 24 h and at least ``every`` (default 60); ``top``: processes per sample,
    1..50 (default 5)."""
    reader = ParamReader("diag.watch", params, {"metrics", "every", "for", "top"})
    metrics = params.get("metrics", list(DEFAULT_METRICS))
    if not isinstance(metrics, list) or not metrics \
            or not all(isinstance(m, str) and m in METRICS for m in metrics) \
            or len(set(metrics)) != len(metrics):
        reader.fail(f"metrics must be a non-empty list of distinct names of "
                    f"{', '.join(METRICS)}")
    every = reader.number("every", 5.0, MIN_EVERY, MAX_EVERY)
    duration = reader.number("for", float(DEFAULT_FOR), MIN_EVERY, MAX_FOR)
    if duration < every:
        reader.fail("for must be at least every")
    return WatchQuery(metrics=tuple(metrics), every=every, duration=duration,
                      top=reader.integer("top", DEFAULT_TOP, 1, MAX_TOP),
                      custom=NO_PATTERNS if diag is None else diag.redact_patterns)


def sample_count(every: float, duration: float) -> int:
    """How many samples a watch sends: one per whole ``every`` in ``duration``."""
    return max(1, int(duration // every))


class Sampler:
    """Reads the chosen metrics of this host; CPU use is measured since the last sample."""

    def __init__(self, query: WatchQuery) -> None:
        self._query = query
        self._cpu_before: Any = None

    async def start(self) -> None:
        if "cpu" in self._query.metrics:
            self._cpu_before = await asyncio.to_thread(system._cpu_times)

    async def sample(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for metric in self._query.metrics:
            values[metric] = await _READERS[metric](self)
        return values

    async def _cpu(self) -> dict[str, Any]:
        before, after = self._cpu_before, await asyncio.to_thread(system._cpu_times)
        self._cpu_before = after
        return {"percent": system._percent(before.total, after.total),
                "per_core_percent": [system._percent(b, a) for b, a in
                                     zip(before.per_core, after.per_core, strict=False)]}

    async def _memory(self) -> dict[str, Any]:
        return await system.memory()

    async def _load(self) -> dict[str, Any]:
        return system.load_fields(await asyncio.to_thread(system.load_average))

    async def _disk(self) -> dict[str, Any]:
        return await system.disks()

    async def _network(self) -> dict[str, Any]:
        rows = await asyncio.to_thread(network._interfaces)
        return {"interfaces": rows[:network.MAX_INTERFACES]}

    async def _processes(self) -> dict[str, Any]:
        query = processes.ProcessQuery(
            limit=self._query.top, interval=min(PROCESS_WINDOW, self._query.every / 4),
            custom=self._query.custom)
        return await processes.processes(query)


_READERS: dict[str, Callable[[Sampler], Awaitable[dict[str, Any]]]] = {
    "cpu": Sampler._cpu, "memory": Sampler._memory, "load": Sampler._load,
    "disk": Sampler._disk, "network": Sampler._network, "processes": Sampler._processes,
}


async def watch(query: WatchQuery, emit: Emit, *, sleep: Sleep = asyncio.sleep,
                monotonic: Clock = time.monotonic, now: Clock = time.time,
                sampler: Sampler | None = None) -> dict[str, Any]:
    """Send :func:`sample_count` samples through ``emit`` on the schedule; the summary."""
    source = Sampler(query) if sampler is None else sampler
    await source.start()
    started = monotonic()
    count = sample_count(query.every, query.duration)
    redactions = 0
    for seq in range(1, count + 1):
        delay = started + seq * query.every - monotonic()
        if delay > 0:
            await sleep(delay)  # on the loop, so that a revocation stops the watch at once
        at = now()
        values = await source.sample()
        hidden = sum(v.get("redactions", 0) for v in values.values() if isinstance(v, dict))
        redactions += hidden
        line = {"seq": seq, "at": at, **values, "redactions": hidden}
        await emit(json.dumps(line, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False).encode() + b"\n")
    return {"samples": count, "metrics": list(query.metrics), "every_seconds": query.every,
            "for_seconds": query.duration, "redactions": redactions}
