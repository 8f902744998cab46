"""How the customer's commands show things: Rich tables for people, dicts for ``--json``."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from agent.local_client import EngineerPin, KnownGrant, ReceivedRequest
from permissions import format_duration
from rmaint.text import printable


def local_time(seconds: float) -> str:
    """Local ISO time to the second with this host's UTC offset, e.g.
    2026-11-27T07:20:58+01:00 (as rmctl shows times); "-" for zero (never)."""
    if not seconds:
        return "-"
    return dt.datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


def local_day(seconds: float) -> str:
    """The local date of ``seconds``, e.g. 2026-11-26."""
    return dt.datetime.fromtimestamp(seconds).date().isoformat()


def short_key(key_id: str) -> str:
    """A key id shortened for tables: ``sha256:`` and 12 hex digits."""
    kind, _, hexdigits = key_id.partition(":")
    return f"{kind}:{hexdigits[:12]}" if hexdigits else key_id[:19]


# Free text may wrap; ids, keys and times stay whole so they can be copied.
_WRAPPING = frozenset({"Reason", "Scopes", "Operation", "Status"})
_MIN_WRAPPED = 10
_UNBOUNDED = 100_000  # wide enough for any table on one line per row


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    """A table that, when narrow, wraps free text first and folds ids only as a last resort."""
    out = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD)
    for column in columns:
        wraps = column in _WRAPPING
        out.add_column(column, overflow="fold", no_wrap=not wraps,
                       min_width=_MIN_WRAPPED if wraps else None)
    for row in rows:  # requests, reasons and log lines came from elsewhere
        out.add_row(*(printable(cell) for cell in row))
    return out


def _whole(out: Console, grid: Table) -> bool:
    """Whether Rich shows every cell of ``grid`` whole at ``out``'s width. Wrapping only
    moves text; dropping a column or cutting a cell (which Rich does to fit a narrow
    terminal, silently) loses some: the characters shown are counted against a rendering
    wide enough for everything."""
    def shown(width: int) -> int:
        probe = Console(file=io.StringIO(), width=width, color_system=None, markup=False,
                        emoji=False, highlight=False)
        probe.print(grid)
        text = probe.file.getvalue()  # type: ignore[attr-defined]
        return sum(1 for c in text if not c.isspace() and not "\u2500" <= c <= "\u257f")
    return shown(out.width) == shown(_UNBOUNDED)


def print_table(out: Console, title: str, columns: Sequence[str],
                rows: Iterable[Sequence[str]]) -> None:
    """A table if it fits the terminal, else one block per row: nothing is ever cut off."""
    rows = [tuple(row) for row in rows]
    grid = table(title, columns, rows)
    if _whole(out, grid):
        out.print(grid)
        return
    out.print(title, style="bold")
    for row in rows:
        out.print(key_value("", zip(columns, row, strict=True)))
        out.print()


def request_dict(item: ReceivedRequest) -> dict[str, Any]:
    r = item.request
    return {
        "request_id": r.request_id, "case_id": r.case_id, "agent_id": r.agent_id,
        "engineer": r.engineer, "engineer_key_id": r.engineer_key_id, "scopes": list(r.scopes),
        "duration_seconds": r.duration_seconds, "reason": r.reason,
        "created_at": r.created_at, "received_at": item.received_at, "status": item.status,
        "key_changed": item.key_changed,
        "pinned_keys": [pin_dict(k) for k in item.pinned_keys],
    }


def key_change(item: ReceivedRequest) -> str:
    """The customer's warning for a request signed by a key not pinned for its engineer."""
    pinned = ", ".join(
        f"{k.key_id} (approved {local_day(k.pinned_at)}{f' by {k.approver}' if k.approver else ''})"
        for k in item.pinned_keys)
    verb = "key was" if len(item.pinned_keys) == 1 else "keys were"
    return (f"KEY CHANGED: {item.request.engineer}'s {verb} {pinned}, this request "
            f"({item.request.request_id}) is signed by {item.request.engineer_key_id}")


def key_standing(item: ReceivedRequest) -> str:
    """How the request's engineer key stands with the customer's pins, for a preview."""
    engineer = item.request.engineer
    pin = next((k for k in item.pinned_keys if k.key_id == item.request.engineer_key_id), None)
    if pin is not None:
        return f"pinned for {engineer} since {local_day(pin.pinned_at)}"
    if item.pinned_keys:
        return f"KEY CHANGED: not the key pinned for {engineer}; approving pins it too"
    return f"first request from {engineer}: approving pins this key"


def print_requests(out: Console, items: Sequence[ReceivedRequest], title: str) -> None:
    columns = ("Request", "Case", "Engineer", "Engineer key", "Scopes", "Duration", "Reason",
               "Received", "Status")
    rows = [(i.request.request_id, i.request.case_id, i.request.engineer,
             short_key(i.request.engineer_key_id), ", ".join(i.request.scopes),
             format_duration(i.request.duration_seconds), i.request.reason,
             local_time(i.received_at), _request_status(i)) for i in items]
    print_table(out, title, columns, rows)


def _request_status(item: ReceivedRequest) -> str:
    return f"{item.status}, KEY CHANGED" if item.key_changed else item.status


def pin_dict(pin: EngineerPin) -> dict[str, Any]:
    return {"engineer": pin.engineer, "key_id": pin.key_id, "pinned_at": pin.pinned_at,
            "approver": pin.approver, "approver_key_id": pin.approver_key_id,
            "request_id": pin.request_id, "grant_id": pin.grant_id}


def print_pins(out: Console, pins: Sequence[EngineerPin], title: str) -> None:
    columns = ("Engineer", "Key id", "Pinned", "Approver", "Request", "Grant")
    rows = [(k.engineer, k.key_id, local_time(k.pinned_at),
             k.approver or short_key(k.approver_key_id), k.request_id, k.grant_id)
            for k in pins]
    print_table(out, title, columns, rows)


def grant_dict(item: KnownGrant) -> dict[str, Any]:
    g = item.grant
    return {
        "grant_id": g.grant_id, "request_id": g.request_id, "case_id": g.case_id,
        "agent_id": g.agent_id, "engineer": g.engineer, "engineer_key_id": g.engineer_key_id,
        "scopes": list(g.scopes), "not_before": g.not_before, "not_after": g.not_after,
        "approver_key_id": g.approver_key_id, "status": item.status,
        "revoked_at": item.revoked_at,
    }


def print_grants(out: Console, items: Sequence[KnownGrant], title: str) -> None:
    columns = ("Grant", "Request", "Case", "Engineer", "Scopes", "Until", "Status")
    rows = [(i.grant.grant_id, i.grant.request_id, i.grant.case_id, i.grant.engineer,
             ", ".join(i.grant.scopes), local_time(i.grant.not_after), _grant_status(i))
            for i in items]
    print_table(out, title, columns, rows)


def _grant_status(item: KnownGrant) -> str:
    if item.revoked_at:
        return f"{item.status} ({local_time(item.revoked_at)})"
    return item.status


def key_value(title: str, pairs: Iterable[tuple[str, str]]) -> Table:
    out = Table(title=title, title_justify="left", show_header=False, box=None)
    out.add_column(style="bold")
    out.add_column(overflow="fold")
    for key, value in pairs:
        out.add_row(key, printable(value))
    return out
