"""The customer archive: systems, cases and how they were handled, last inspections.

Also keeps each agent's reported inventory (what its heartbeat says it runs on).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from controller.errors import InvalidArgument, NotFound
from controller.services import _common, _convert, inspection
from controller.store import cases, directory, sessions
from controller.store.records import AgentRecord, Case
from controller.store.schema import agent_inventory, session_events
from controller.store.schema import sessions as sessions_table
from rmaint.v1 import controller_pb2 as pb

ONLINE_WINDOW = 60.0  # seconds since the last heartbeat within which an agent is online
_TEXT_LIMITS = {"hostname": 255, "os": 300, "machine": 64, "agent_version": 64}
_MAX_REPORTED_TEXT = 4096  # beyond this an inventory text is not a mistake to cut, but bad


def checked_inventory(reported: pb.AgentInventory) -> pb.AgentInventory:
    """``reported`` if every value is one a host can have; InvalidArgument otherwise.

    Texts longer than their columns are cut on saving; texts with control characters
    (terminal escapes) and impossible numbers are refused."""
    for key in _TEXT_LIMITS:
        _common.text(getattr(reported, key), f"inventory {key}", required=False,
                     limit=_MAX_REPORTED_TEXT)
    if not math.isfinite(reported.boot_time) or reported.boot_time < 0:
        raise InvalidArgument("inventory boot_time must be a time in seconds since 1970")
    if reported.cpu_count < 0 or reported.memory_bytes < 0:
        raise InvalidArgument("inventory cpu_count and memory_bytes must not be negative")
    return reported


def save_inventory(conn: Connection, agent_id: str, reported: pb.AgentInventory,
                   now: float) -> None:
    """Keep the agent's latest inventory (texts cut to their columns' sizes)."""
    values: dict[str, Any] = {key: getattr(reported, key)[:limit]
                              for key, limit in _TEXT_LIMITS.items()}
    values |= {"cpu_count": max(0, reported.cpu_count),
               "memory_bytes": max(0, reported.memory_bytes),
               "boot_time": reported.boot_time, "reported_at": now}
    updated = conn.execute(agent_inventory.update()
                           .where(agent_inventory.c.agent_id == agent_id).values(values))
    if updated.rowcount == 0:
        conn.execute(agent_inventory.insert().values(agent_id=agent_id, **values))


ARCHIVED_CASES = 100  # the newest; each brings its sessions and notes along


def archive(conn: Connection, customer_id: str, now: float) -> pb.GetCustomerArchiveResponse:
    """Everything the controller knows of one customer; NotFound for an unknown one."""
    customer = directory.get_customer(conn, customer_id)
    if customer is None:
        raise NotFound(f"unknown customer {customer_id}")
    found = cases.list_cases(conn, customer_id=customer_id, limit=ARCHIVED_CASES)
    held = sorted((s for c in found for s in sessions.list_sessions(conn, case_id=c.case_id)),
                  key=lambda s: (-s.started_at, s.session_id))
    return pb.GetCustomerArchiveResponse(
        customer=_convert.customer(customer),
        systems=[_system(conn, a, now) for a in directory.list_agents(conn, customer_id)],
        cases=[_case(conn, c) for c in found],
        sessions=[_convert.session(s) for s in held])


def _system(conn: Connection, agent: AgentRecord, now: float) -> pb.ArchivedSystem:
    system = pb.ArchivedSystem(
        agent=_convert.agent(agent),
        online=agent.last_seen is not None and now - agent.last_seen <= ONLINE_WINDOW)
    row = conn.execute(sa.select(agent_inventory)
                       .where(agent_inventory.c.agent_id == agent.agent_id)).first()
    if row is not None:
        system.inventory.CopyFrom(pb.AgentInventory(
            hostname=row.hostname, os=row.os, machine=row.machine, cpu_count=row.cpu_count,
            memory_bytes=row.memory_bytes, agent_version=row.agent_version,
            boot_time=row.boot_time))
    last = inspection.last_run(conn, agent.agent_id)
    if last is not None:
        system.last_inspection.CopyFrom(last[0])
        system.last_inspection_received_at = last[1]
    return system


def _case(conn: Connection, case: Case) -> pb.ArchivedCase:
    ids = sa.select(sessions_table.c.session_id).where(sessions_table.c.case_id == case.case_id)
    held = conn.execute(sa.select(sa.func.count()).select_from(ids.subquery())).scalar_one()
    operations = conn.execute(sa.select(sa.func.count()).select_from(session_events)
                              .where(session_events.c.session_id.in_(ids))).scalar_one()
    notes = [f"{_convert_time(at)} {author}: {text}"
             for at, author, text in cases.list_notes(conn, case.case_id)]
    opened_by = (inspection.OPENED_BY if case.opened_by.startswith(inspection.OPENED_BY + " ")
                 else case.opened_by)
    return pb.ArchivedCase(case=_convert.case(case), sessions=held, operations=operations,
                           opened_by=opened_by, notes=notes)


def _convert_time(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
