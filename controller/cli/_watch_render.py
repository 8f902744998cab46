"""Rows of ``rmctl diag watch``: one per sample of ``diag.watch``, newest last.

Each sample (see :mod:`agent.diag.watch` for its shape) becomes one row of short cells:
CPU and memory use, load, the fullest filesystem, network throughput since the previous
sample (all interfaces but loopback) and the busiest process. Cells of metrics that were
not asked for are left out; a value the agent did not send shows as ``-``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from controller.cli import _output as out

ROWS_SHOWN = 20  # rows kept in the live table
_LOOPBACK = ("lo",)

_HEADINGS = {
    "cpu": ("CPU %",), "memory": ("Mem %", "Swap %"), "load": ("Load 1m",),
    "disk": ("Fullest fs",), "network": ("Net in/s", "Net out/s"),
    "processes": ("Top process",),
}


# Widths of the plain-text columns (rows come one by one, so they cannot be measured):
# wide enough for typical values; a longer one shifts only its own row.
_WIDTHS = {"#": 4, "Time": 8, "CPU %": 7, "Mem %": 7, "Swap %": 7, "Load 1m": 7,
           "Fullest fs": 20, "Net in/s": 11, "Net out/s": 11}


def plain_line(columns: Sequence[str], cells: Sequence[str]) -> str:
    """One line of the plain (not a terminal) output, each cell padded to its column."""
    padded = [cell.ljust(max(_WIDTHS.get(column, 0), len(column)))
              for column, cell in zip(columns, cells, strict=False)]
    return "  ".join(padded).rstrip()


def headings(metrics: Sequence[str]) -> list[str]:
    """The table's columns for the metrics asked for, in their order."""
    return ["#", "Time", *[h for m in metrics for h in _HEADINGS.get(m, ())]]


class WatchRows:
    """Turns samples into rows; remembers the previous sample for throughput."""

    def __init__(self, metrics: Sequence[str]) -> None:
        self.metrics = list(metrics)
        self._previous: tuple[float, int, int] | None = None

    def row(self, sample: dict[str, Any]) -> list[str]:
        at = sample.get("at")
        cells = [str(sample.get("seq", "-")), _time(at)]
        for metric in self.metrics:
            cells.extend(getattr(self, f"_{metric}")(sample.get(metric), at))
        return cells

    def _cpu(self, value: Any, at: Any) -> list[str]:
        return [_percent(_get(value, "percent"))]

    def _memory(self, value: Any, at: Any) -> list[str]:
        return [_percent(_get(value, "memory", "percent")), _percent(_get(value, "swap", "percent"))]

    def _load(self, value: Any, at: Any) -> list[str]:
        load = _get(value, "load_average_1m")
        return [f"{load:.2f}" if isinstance(load, int | float) else "-"]

    def _disk(self, value: Any, at: Any) -> list[str]:
        systems = [fs for fs in _get(value, "filesystems") or [] if isinstance(fs, dict)
                   and isinstance(fs.get("percent"), int | float)]
        if not systems:
            return ["-"]
        fullest = max(systems, key=lambda fs: fs["percent"])
        return [f"{fullest.get('mountpoint', '?')} {out.percent(fullest['percent'])}"]

    def _network(self, value: Any, at: Any) -> list[str]:
        rows = [i for i in _get(value, "interfaces") or [] if isinstance(i, dict)
                and i.get("name") not in _LOOPBACK]
        received = sum(i.get("received_bytes") or 0 for i in rows)
        sent = sum(i.get("sent_bytes") or 0 for i in rows)
        previous, self._previous = self._previous, (
            (float(at), received, sent) if isinstance(at, int | float) else None)
        if previous is None or self._previous is None or self._previous[0] <= previous[0]:
            return ["-", "-"]
        span = self._previous[0] - previous[0]
        return [f"{out.size(max(0, received - previous[1]) / span)}",
                f"{out.size(max(0, sent - previous[2]) / span)}"]

    def _processes(self, value: Any, at: Any) -> list[str]:
        top = _get(value, "processes") or []
        if not top or not isinstance(top[0], dict):
            return ["-"]
        first = top[0]
        cpu = first.get("cpu_percent")
        return [f"{first.get('name') or '?'} ({first.get('pid')}) "
                f"{_percent(cpu) if cpu is not None else '-'}"]


def _get(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _percent(value: Any) -> str:
    return out.percent(value) if isinstance(value, int | float) else "-"


def _time(at: Any) -> str:
    if not isinstance(at, int | float):
        return "-"
    return dt.datetime.fromtimestamp(at).strftime("%H:%M:%S")
