"""What the agent is doing: its status, and the local log of operation attempts."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, fields
from pathlib import Path
from typing import Annotated

import typer

from agent.cli._common import JsonOption, console, emit_json, enrolled, options, run
from agent.cli._errors import UserError, guarded
from agent.cli._render import key_value, local_time, print_table, short_key
from agent.config import AgentConfig
from agent.homes import command_for
from agent.local_client import AgentStatus, LocalClient
from agent.log import Entry

# The operation log's columns in the order of agent.log.Entry's fields.
_COLUMNS = ", ".join(f.name for f in fields(Entry))


async def _status(socket: Path) -> AgentStatus:
    async with LocalClient(socket) as client:
        return await client.status()


@guarded
def status(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """The running agent's identity, controller, pinned approvers and activity."""
    opts = options(ctx, json_out)
    config, paths = enrolled(opts)
    state = run(_status(paths.socket))
    if opts.json:
        emit_json(asdict(state) | {"home": str(opts.home)})
        return
    console().print(key_value(f"Agent {state.agent_id}", [
        ("home", str(opts.home)), ("listen", state.listen),
        ("controller", state.controller or "-"),
        ("approvers", _approver_names(config, state.approver_key_ids, opts.home)),
        ("in flight", str(state.operations_in_flight)),
        ("unreported", f"{state.unreported} decision(s) not yet acknowledged by the controller"),
    ]))


def _approver_names(config: AgentConfig, key_ids: tuple[str, ...], home: Path) -> str:
    names = {a.key_id: a.name for a in config.approvers}
    shown = [f"{names.get(k, '?')} ({short_key(k)})" for k in key_ids]
    return ", ".join(shown) or f"none pinned: '{command_for('approver init', home)}'"


def read_entries(path: Path, limit: int) -> list[Entry]:
    """The last ``limit`` log rows, oldest first, read without writing to the log."""
    if not path.exists():
        return []
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise UserError(f"cannot open the operation log {path}: {exc}") from exc
    try:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM entries ORDER BY id DESC LIMIT ?",  # noqa: S608
            (limit,)).fetchall()
    except sqlite3.Error as exc:
        raise UserError(f"cannot read the operation log {path}: {exc}") from exc
    finally:
        conn.close()
    return [Entry(*row) for row in reversed(rows)]


def _row(entry: Entry) -> tuple[str, ...]:
    what = entry.operation or "-"
    if entry.kind == "result":
        what = f"result of #{entry.attempt_id}"
    elif entry.params_json and entry.params_json != "{}":
        what += f" {entry.params_json}"
    why = ": ".join(p for p in (entry.reason, entry.detail) if p)
    took = f"{entry.duration_ms:.0f} ms" if entry.duration_ms is not None else ""
    return (str(entry.id), local_time(entry.at), entry.session_id or "",
            "" if entry.seq is None else str(entry.seq), entry.engineer or "", what,
            entry.outcome, why, took)


@guarded
def log(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Show the last N entries.")] = 50,
    json_out: JsonOption = False,
) -> None:
    """The agent's local log of every operation attempt and result (read-only)."""
    opts = options(ctx, json_out)
    _, paths = enrolled(opts)
    entries = read_entries(paths.log, limit)
    if opts.json:
        emit_json({"entries": [_entry_dict(e) for e in entries]})
    elif not entries:
        console().print("no operation has been attempted on this agent")
    else:
        columns = ("#", "Time", "Session", "Seq", "Engineer", "Operation", "Outcome",
                   "Reason", "Took")
        print_table(console(), f"Operation log ({paths.log})", columns, map(_row, entries))


def _entry_dict(entry: Entry) -> dict[str, object]:
    out = asdict(entry)
    try:
        out["params"] = json.loads(entry.params_json) if entry.params_json else None
        del out["params_json"]
    except ValueError:
        pass  # not JSON after all: keep the text as recorded
    return out
