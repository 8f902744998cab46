"""``rmctl customer show``: the customer archive in readable sections."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from controller.cli import _output as out
from controller.cli._tables import sessions_table

if TYPE_CHECKING:
    from rmaint.v1 import controller_pb2 as pb


def show_archive(reply: pb.GetCustomerArchiveResponse) -> None:
    c = reply.customer
    out.fields((("Customer", f"{c.customer_id} ({c.name})"),
                ("Contract", f"{c.contract_start} to {c.contract_end}")))
    _systems(reply.systems)
    _inspections(reply.systems)
    _cases(reply.cases)
    sessions_table(reply.sessions)


def _systems(systems: Iterable[pb.ArchivedSystem]) -> None:
    rows = []
    for s in systems:
        inv = s.inventory
        hardware = (f"{inv.machine}, {inv.cpu_count} CPU, {out.size(inv.memory_bytes)}"
                    if s.HasField("inventory") else "-")
        rows.append((s.agent.agent_id, inv.hostname or "-", inv.os or "-", hardware,
                     inv.agent_version or "-", out.when(s.agent.last_seen),
                     "online" if s.online else "offline"))
    out.table("Systems", ("Agent", "Host", "OS", "Hardware", "Agent version", "Last seen",
                          "State"), rows)


def _inspections(systems: Iterable[pb.ArchivedSystem]) -> None:
    rows = []
    for s in systems:
        if not s.HasField("last_inspection"):
            rows.append((s.agent.agent_id, "-", "-", "-", "never inspected"))
            continue
        run = s.last_inspection
        if not run.findings:
            rows.append((s.agent.agent_id, out.when(run.finished_at), "ok", "-", "all clear"))
        for f in sorted(run.findings, key=lambda f: f.key):
            rows.append((s.agent.agent_id, out.when(run.finished_at), f.severity, f.key,
                         f.message))
    out.table("Last inspection", ("Agent", "Run", "Severity", "Finding", "Message"), rows)


def _cases(cases: Iterable[pb.ArchivedCase]) -> None:
    rows = []
    for a in cases:
        case = a.case
        outcome = case.resolution or (a.notes[-1] if a.notes else "-")
        rows.append((case.case_id, case.status, case.title, a.opened_by,
                     case.assignee or "-", out.when(case.opened_at), out.when(case.closed_at),
                     str(a.sessions), str(a.operations), outcome))
    out.table("Cases", ("Case", "Status", "Title", "Opened by", "Assignee", "Opened", "Closed",
                        "Sessions", "Operations", "Outcome"), rows)
