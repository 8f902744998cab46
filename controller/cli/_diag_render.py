"""Readable tables of diagnostic results.

The agent's catalogue defines the result shapes; rendering goes by field names so that a
field added on the agent shows up without a change here: sizes in binary units, *percent*
as %, *uptime* as 3d 4h, *_time/*_at/boot_time as local time. ``--json`` shows the result
exactly as the agent returned it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from controller.cli import _output as out

_BYTE_WORDS = {"total", "available", "used", "free", "rss", "vms", "bytes", "size", "shared",
               "buffers", "cached"}
_EPOCH_2001 = 1_000_000_000
_MAX_TEXT = 120
# Display order of known fields (the agent sends canonical JSON, sorted by key); a field
# matches exactly or as the prefix of a group ("memory" for memory.total). Others follow,
# long command lines last.
_ORDER = ("hostname", "os", "platform", "release", "kernel", "machine", "boot_time", "uptime",
          "cpu", "load", "memory", "swap", "device", "mountpoint", "fstype", "total", "used",
          "free", "available", "percent", "pid", "name", "user", "cpu_percent",
          "memory_percent", "memory_rss", "status")
_LAST = ("cmdline", "command", "args")


def _rank(key: str) -> int:
    name = key.lower()
    if name in _ORDER:
        return _ORDER.index(name)
    if name in _LAST:
        return len(_ORDER) + 1
    for rank, group in enumerate(_ORDER):
        if name.startswith((group + "_", group + ".")):
            return rank
    return len(_ORDER)


def ordered(keys: list[str]) -> list[str]:
    """Known fields first, in a reading order; unknown ones as sent; command lines last."""
    return sorted(keys, key=_rank)


def label(key: str) -> str:
    if "uptime" in key:
        key = key.removesuffix("_seconds")
    text = key.replace("_", " ").replace(".", " ")
    return text[:1].upper() + text[1:]


def cell(key: str, value: Any) -> str:
    """``value`` of field ``key`` (possibly dotted) for a person."""
    name = key.lower().rsplit(".", 1)[-1]
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return _number(name, value)
    if isinstance(value, list):
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            return " ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in value)
        return ", ".join(cell(name, v) for v in value)
    if isinstance(value, dict):
        return _clip(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    return _clip(str(value))


def _clip(text: str) -> str:
    # Tables are for reading; --json has the whole value.
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT - 1] + "…"


def _number(name: str, value: float) -> str:
    if "percent" in name:
        return out.percent(value)
    if "uptime" in name:
        return out.span(value)
    if (name.endswith(("_time", "_at")) or name in {"time", "boot", "started"}) \
            and value > _EPOCH_2001:
        return out.when(value)
    if name.rsplit("_", 1)[-1] in _BYTE_WORDS:
        return out.size(value)
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def flatten(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested objects as dotted keys, in the agent's order."""
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def render_fields(result: Any) -> None:
    """A result that is one object, as labelled lines (diag.system)."""
    if not isinstance(result, dict):
        out.note(json.dumps(result, indent=2, ensure_ascii=False))
        return
    pairs = dict(flatten(result))
    out.fields((label(k), cell(k, pairs[k])) for k in ordered(list(pairs)))


def split_rows(result: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The result's list of records and its other fields."""
    if isinstance(result, list):
        return [r for r in result if isinstance(r, dict)], {}
    if not isinstance(result, dict):
        return [], {"result": result}
    lists = [k for k, v in result.items() if isinstance(v, list)
             and all(isinstance(r, dict) for r in v)]
    if not lists:
        return [], result
    rows_key = lists[0]
    return result[rows_key], {k: v for k, v in result.items() if k != rows_key}


def render_rows(title: str, result: Any) -> None:
    """A result that is a list of records, as one table (diag.disks, diag.processes)."""
    rows, other = split_rows(result)
    if other:
        out.fields((label(k), cell(k, v)) for k, v in flatten(other))
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    columns = ordered(columns)
    out.table(title, [label(c) for c in columns],
              ([cell(c, row.get(c)) for c in columns] for row in rows))
