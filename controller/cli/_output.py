"""Output for people (Rich tables, readable units) and for scripts (``--json``).

Rich (about 45 ms to import) is loaded only to draw a table; labelled values
(:func:`fields`, e.g. ``rmctl diag system``) are laid out here as Rich would lay them out.
Text is always printed as given: values come from agents and are never read as Rich markup
or emoji codes.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import typer

from rmaint.text import printable

if TYPE_CHECKING:
    from google.protobuf.message import Message
    from rich.console import Console

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_PIPE_WIDTH = 400
# A count or a measure (12, 3.5 %, 16.0 GiB, 12 ms, 0.5 s, 2400 MHz), not a date or an id.
_NUMBER = re.compile(r"-?\d+(\.\d+)?( (%|[KMGTP]?i?B|ms|s|MHz|Mb/s))?$")
# Text whose every character takes one cell: laid out here; anything else goes to Rich.
_PLAIN = re.compile(r"[\x20-\x7e\n]*")
_BOLD, _RESET = "\x1b[1m", "\x1b[0m"


def console() -> Console:
    # Made per use: the CLI runner and pipes swap sys.stdout after import. Off a terminal,
    # rows are never folded, so that grep and friends see whole records.
    from rich.console import Console

    terminal = Console(highlight=False, markup=False, emoji=False)
    return terminal if terminal.is_terminal else Console(highlight=False, markup=False,
                                                         emoji=False, width=_PIPE_WIDTH)


def _terminal() -> tuple[bool, int]:
    """Whether stdout is a terminal that takes styles (as Rich decides it), and its width."""
    if not sys.stdout.isatty() and not os.environ.get("FORCE_COLOR"):
        return False, _PIPE_WIDTH
    styled = os.environ.get("TERM", "").lower() not in ("dumb", "unknown")
    return styled, shutil.get_terminal_size().columns


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def note(text: str = "") -> None:
    """A line for people, never wrapped, so tokens stay copyable. What it quotes from
    others (a reason, an agent's message) is shown inert; its own line breaks stay."""
    typer.echo(inert(text))


def warn(text: str) -> None:
    """``warning: text`` on stderr: something the user should act on; the command went on."""
    typer.echo(f"warning: {inert(text)}", err=True)


def inert(text: str) -> str:
    """``text`` line by line through :func:`rmaint.text.printable`."""
    return "\n".join(printable(line) for line in text.split("\n"))


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A table with numbers right-aligned; an empty one is a single line saying so."""
    # Cells hold what others typed or sent (titles, reasons, an agent's inventory).
    cells = [[printable(str(cell)) for cell in row] for row in rows]
    if not cells:
        note(f"{title}: none")
        return
    from rich.table import Table

    out = Table(title=title, title_justify="left", header_style="bold")
    for index, column in enumerate(columns):
        values = [row[index] for row in cells if row[index] != "-"]
        numeric = bool(values) and all(_NUMBER.match(value) for value in values)
        out.add_column(column, overflow="fold", justify="right" if numeric else "left")
    for row in cells:
        out.add_row(*row)
    console().print(out)


def fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """A two-column table of labelled values: labels in bold, long values folded on a
    terminal, every line padded to the widest value (as a borderless Rich table)."""
    rows = [(str(label), printable(str(value))) for label, value in pairs]
    if not all(_PLAIN.fullmatch(label) and "\n" not in label and _PLAIN.fullmatch(value)
               for label, value in rows):
        _rich_fields(rows)
        return
    if not rows:
        typer.echo("")
        return
    styled, width = _terminal()
    label_width = max(len(label) for label, _ in rows)
    folded = [(label, _fold(value, max(width - label_width - 2, 1))) for label, value in rows]
    value_width = max(len(line) for _, lines in folded for line in lines)
    text = []
    for label, lines in folded:
        for index, line in enumerate(lines):
            cell = (label if index == 0 else "").ljust(label_width)
            cell = f"{_BOLD}{cell} {_RESET}" if styled else cell + " "
            text.append(f"{cell} {line.ljust(value_width)}")
    typer.echo("\n".join(text))


def _fold(value: str, width: int) -> list[str]:
    """Lines of at most ``width`` characters: wrapped between words, long words cut."""
    return [piece for line in value.split("\n")
            for piece in textwrap.wrap(line, width, break_on_hyphens=False) or [""]]


def _rich_fields(rows: list[tuple[str, str]]) -> None:
    from rich.table import Table

    out = Table(show_header=False, box=None, pad_edge=False)
    out.add_column(style="bold")
    out.add_column(overflow="fold")
    for label, value in rows:
        out.add_row(label, value)
    console().print(out)


def when(seconds: float) -> str:
    """Local ISO time to the second; "-" for zero (never)."""
    if not seconds:
        return "-"
    return dt.datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


def size(count: float) -> str:
    """Bytes in binary units: 512 B, 3.4 MiB, 15.6 GiB."""
    value = float(count)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def percent(value: float) -> str:
    return f"{value:.1f} %"


def span(seconds: float) -> str:
    """The two largest units of a duration: 3d 4h, 2h 5m, 4m 10s, 12s."""
    rest = max(int(seconds), 0)
    parts: list[str] = []
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= length or (unit == "s" and not parts):
            parts.append(f"{rest // length}{unit}")
            rest %= length
        elif parts:
            break
    return " ".join(parts[:2])


def millis(value: float) -> str:
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def message_data(message: Message) -> dict[str, Any]:
    """A protobuf message as JSON-ready data: field names as in the .proto, ints as ints,
    bytes as base64; an envelope also shows its payload parsed as ``statement``."""
    from google.protobuf.descriptor import FieldDescriptor

    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.is_repeated:
            out[field.name] = [_value(field, item) for item in value]
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not message.HasField(field.name):
            out[field.name] = None
        else:
            out[field.name] = _value(field, value)
    if message.DESCRIPTOR.full_name == "rmaint.v1.Envelope":
        out["statement"] = _statement(getattr(message, "payload", b""))
    return out


def _value(field: Any, value: Any) -> Any:  # upb and pure descriptors alike
    from google.protobuf.descriptor import FieldDescriptor

    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message_data(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()
    return value


def _statement(payload: bytes) -> Any:
    try:
        return json.loads(payload) if payload else None
    except ValueError:
        return None


def messages_data(messages: Iterable[Message]) -> list[dict[str, Any]]:
    return [message_data(m) for m in messages]
