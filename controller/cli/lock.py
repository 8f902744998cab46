"""``rmctl lock``: the service company's own stop on an agent, engineer key, grant or case.

A lock is pushed to the agents it concerns at once, and they refuse what it covers
themselves (the controller refuses it too). Locks only restrict: removing one gives back
what the customer's grants allow, never more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from controller.cli import _output as out
from controller.cli import _values
from controller.cli._app import Options, command, group
from controller.cli._run import with_client

if TYPE_CHECKING:
    from rmaint.v1 import controller_pb2 as pb

lock_app = group("lock")

TARGET_HELP = ("What to lock: agent:<id>, engineer-key:sha256:<hex> (as 'rmctl engineer list' "
               "shows it), grant:<id> or case:<id>.")


def _record(record: Any) -> dict[str, Any]:
    lock = record.lock
    return {"lock_id": lock.lock_id, "target": lock.target, "reason": lock.reason,
            "created_by": lock.created_by, "created_at": lock.created_at,
            "expires_at": lock.expires_at or None, "status": record.status,
            "removed_at": record.removed_at or None, "removed_by": record.removed_by or None}


@command(lock_app, "add")
def lock_add(
    opts: Options,
    target: Annotated[str, typer.Argument(metavar="TARGET", help=TARGET_HELP)],
    reason: Annotated[str, typer.Option(help="Why (kept with the lock, shown to admins).")],
    for_: Annotated[str | None, typer.Option("--for", help="Lock for this long (e.g. 2h, "
                                                           "30m); default: until removed.",
                                             callback=_values.optional_duration)] = None,
    force: Annotated[bool, typer.Option("--force", help="Lock a target that is not known "
                                                        "(yet): no such agent, case, grant "
                                                        "or enrolled engineer key.")] = False,
) -> None:
    """Lock a target: what it covers is refused from now on and running work under it ends."""
    from controller.client.inputs import parse_duration
    from rmaint.v1 import controller_pb2 as pb

    seconds = parse_duration(for_, "--for") if for_ is not None else 0
    request = pb.AddLockRequest(target=target, reason=reason, duration_seconds=seconds,
                                force=force)
    record = with_client(opts, lambda c: _add(c, request))
    if opts.json:
        out.emit_json(_record(record))
        return
    lock = record.lock
    until = f" until {out.when(lock.expires_at)}" if lock.expires_at else ""
    out.note(f"lock {lock.lock_id} on {lock.target}{until}: {lock.reason}")


async def _add(client: Any, request: pb.AddLockRequest) -> pb.LockRecord:
    """AddLock with every field of ``request`` (``force`` too)."""
    reply: pb.AddLockResponse = await client._call(client._admin.AddLock, request,
                                                   name="AddLock")
    return reply.lock


@command(lock_app, "list")
def lock_list(
    opts: Options,
    all_: Annotated[bool, typer.Option("--all", help="Also removed and expired locks.")] = False,
) -> None:
    """List the locks in force (or all of them)."""
    records = with_client(opts, lambda c: c.list_locks(all_))
    if opts.json:
        out.emit_json([_record(r) for r in records])
        return
    out.table("Locks", ("Lock", "Target", "Status", "Reason", "By", "Since", "Until"),
              ((r.lock.lock_id, r.lock.target, r.status, r.lock.reason, r.lock.created_by,
                out.when(r.lock.created_at), out.when(r.lock.expires_at)) for r in records))


@command(lock_app, "remove")
def lock_remove(
    opts: Options,
    lock_id: Annotated[str, typer.Argument(metavar="LOCK_ID", help="The lock, e.g. L-1a2b3c4d5e6f.")],
) -> None:
    """Remove a lock; access comes back only as far as the customer's grants allow."""
    record = with_client(opts, lambda c: c.remove_lock(lock_id))
    if opts.json:
        out.emit_json(_record(record))
        return
    out.note(f"lock {record.lock.lock_id} on {record.lock.target} removed")
