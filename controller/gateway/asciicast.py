"""Session recordings in asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/).

A recording is a JSON header line (version 2, width, height, timestamp, env TERM) and
one JSON line per event ``[seconds, code, data]``: ``"o"`` output (what the engineer's
terminal received) and ``"r"`` resize (``"COLSxROWS"``). Input is not recorded: what an
engineer types with echo off (a sudo password) must not end up in a stored recording;
what the shell echoes is in the output.

Event data are text; output bytes that are not UTF-8 would be lost by a plain decode,
so they are decoded with ``surrogateescape`` and written with ``\\udcXX`` escapes: the
file stays valid JSON, ``asciinema play`` shows a replacement character, and
:func:`output_bytes` gives back the exact bytes. A multi-byte character split between
two chunks is written as escapes in both, so nothing depends on how output was chunked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

VERSION = 2


class CastInvalid(ValueError):
    """The data is not an asciicast v2 recording this module can read."""


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    timestamp: int
    term: str = ""


@dataclass(frozen=True)
class Event:
    at: float
    code: str
    data: str

    def raw(self) -> bytes:
        """The event's data as the bytes that were recorded."""
        return self.data.encode("utf-8", "surrogateescape")


MAX_RECORDING = 64 * 2**20  # bytes as stored: a shell that would exceed it is ended


@dataclass
class Recorder:
    """Builds a recording in memory, up to ``limit`` bytes as stored; times are seconds
    since ``started`` (monotonic). An event that would pass the limit is not taken, and
    :meth:`output` and :meth:`resize` say so: the caller ends the shell, so nothing the
    engineer's terminal received goes unrecorded and no recording grows without end."""

    header: Header
    started: float
    limit: int = MAX_RECORDING
    _lines: list[str] = field(default_factory=list)
    _size: int = 0

    def __post_init__(self) -> None:
        head: dict[str, Any] = {"version": VERSION, "width": self.header.width,
                                "height": self.header.height,
                                "timestamp": self.header.timestamp}
        if self.header.term:
            head["env"] = {"TERM": self.header.term}
        self._lines.append(json.dumps(head))
        self._size = len(self._lines[0]) + 1

    def output(self, data: bytes, now: float) -> bool:
        """Record output; False (nothing recorded) if it would pass the limit."""
        return self._event(now, "o", data.decode("utf-8", "surrogateescape"))

    def resize(self, cols: int, rows: int, now: float) -> bool:
        """Record a resize; False (nothing recorded) if it would pass the limit."""
        return self._event(now, "r", f"{cols}x{rows}")

    def _event(self, now: float, code: str, text: str) -> bool:
        line = json.dumps([round(max(0.0, now - self.started), 6), code, text])
        size = len(line.encode("utf-8", "surrogatepass")) + 1
        if self._size + size > self.limit:
            return False
        self._lines.append(line)
        self._size += size
        return True

    def dumps(self) -> bytes:
        """The recording as bytes (one trailing newline)."""
        return ("\n".join(self._lines) + "\n").encode("utf-8", "surrogatepass")


def parse(data: bytes) -> tuple[Header, list[Event]]:
    """The header and events of a recording; CastInvalid if it is not one."""
    lines = data.decode("utf-8", "surrogatepass").splitlines()
    if not lines:
        raise CastInvalid("empty recording")
    head = _json(lines[0], 1)
    if not isinstance(head, dict) or head.get("version") != VERSION:
        raise CastInvalid("not an asciicast v2 header")
    try:
        env = head.get("env") or {}
        header = Header(int(head["width"]), int(head["height"]), int(head.get("timestamp", 0)),
                        str(env.get("TERM", "")))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CastInvalid(f"bad header: {exc}") from exc
    return header, [_event(line, number) for number, line in enumerate(lines[1:], 2) if line]


def output_bytes(events: list[Event]) -> bytes:
    """Every output event's bytes, concatenated: what the terminal received."""
    return b"".join(e.raw() for e in events if e.code == "o")


def timed(events: list[Event], speed: float = 1.0) -> Iterator[tuple[float, Event]]:
    """Each event with the seconds to wait before it, at ``speed`` times real time."""
    last = 0.0
    for event in events:
        yield max(0.0, event.at - last) / speed, event
        last = event.at


def _json(line: str, number: int) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise CastInvalid(f"line {number}: {exc}") from exc


def _event(line: str, number: int) -> Event:
    item = _json(line, number)
    if (not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], int | float)
            or not isinstance(item[1], str) or not isinstance(item[2], str)):
        raise CastInvalid(f"line {number}: not an event [time, code, data]")
    return Event(float(item[0]), item[1], item[2])
