"""``rmagent locks``: the service company's locks this agent holds and enforces.

Read from the agent's kept lock set (``<home>/locks.json``, written by the running agent
as soon as a set arrives), so it works whether or not the agent runs.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import typer

from agent.cli._common import JsonOption, console, emit_json, enrolled, options
from agent.cli._errors import UserError, guarded
from agent.cli._render import local_time, print_table
from agent.locks import LOCKS_FILE, read_kept
from pki.files import reason


@guarded
def locks(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Locks from the service company that this agent enforces (they only ever refuse)."""
    opts = options(ctx, json_out)
    enrolled(opts)
    path = opts.home / LOCKS_FILE
    try:
        version, found = read_kept(path) if path.exists() else (0, ())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the kept locks {path}: {reason(exc, with_file=False)}; "
                        "the agent refuses every "
                        "operation (locks-unknown) until the controller's lock set "
                        "arrives") from exc
    now = time.time()
    if opts.json:
        emit_json({"version": version, "locks": [
            asdict(lock) | {"in_force": lock.in_force(now)} for lock in found]})
        return
    if not found:
        console().print(f"no locks (lock set version {version})")
        return
    print_table(console(), f"Locks (version {version})",
                ("Lock", "Target", "Reason", "By", "Since", "Until", "In force"),
                ((lock.lock_id, lock.target, lock.reason, lock.created_by,
                  local_time(lock.created_at),
                  local_time(lock.expires_at) if lock.expires_at else "-",
                  "yes" if lock.in_force(now) else "expired") for lock in found))
