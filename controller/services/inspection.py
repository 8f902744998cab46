"""Inspection runs reported by agents, and the cases their findings open.

One case per finding, not per run: while a finding's case is open, a run that finds it
again updates the case's last-seen time and value; a run whose check ran to the end
without it adds a note "cleared at ..." to the case (which stays open for an engineer to
close); a finding that returns after clearing is noted too. A finding whose case was
closed opens a new case when found again. A run is stored once by its id, so a run the
agent resent after a lost acknowledgement changes nothing.

Cases opened here have no assignee and say they were opened by inspection.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from controller.errors import InvalidArgument, PermissionDenied
from controller.store import cases, directory
from controller.store.records import Case
from controller.store.schema import cases as cases_table
from controller.store.schema import inspection_cases, inspection_runs
from rmaint.v1 import controller_pb2 as pb

OPENED_BY = "inspection"
AUTHOR = "inspection"
SEVERITIES = frozenset({"warning", "unknown", "error"})
MAX_FINDINGS = 500
# Open cases of one agent's findings at once: one host, or a hostile agent, cannot flood
# the service company's case list; a finding past it is kept in its run, with no case.
MAX_OPEN_CASES = 32
MAX_KEY = 300
MAX_MESSAGE = 1000


@dataclass(frozen=True)
class Finding:
    key: str
    severity: str
    message: str
    value: float | None
    threshold: float | None

    @property
    def family(self) -> str:
        return self.key.split(".", 1)[0]

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "severity": self.severity, "message": self.message,
                "value": self.value, "threshold": self.threshold}


@dataclass(frozen=True)
class Run:
    run_id: str
    started_at: float
    finished_at: float
    completed: tuple[str, ...]
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class Recorded:
    """What a run changed: cases opened, updated, noted as cleared or as back."""

    duplicate: bool = False
    opened: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    cleared: tuple[str, ...] = ()
    held: tuple[str, ...] = ()  # finding keys that opened no case: the agent has its fill


def parse_run(message: pb.InspectionRun) -> Run:
    """A reported run, validated; InvalidArgument naming the fault otherwise."""
    run_id = message.run_id
    if not 0 < len(run_id) <= 128 or not run_id.isprintable():
        raise InvalidArgument("run.run_id must be 1 to 128 printable characters")
    if not _time(message.started_at) or not _time(message.finished_at):
        raise InvalidArgument("run.started_at and run.finished_at must be unix seconds")
    if len(message.findings) > MAX_FINDINGS:
        raise InvalidArgument(f"run.findings: at most {MAX_FINDINGS}")
    findings = tuple(_finding(f) for f in message.findings)
    if len({f.key for f in findings}) != len(findings):
        raise InvalidArgument("run.findings: keys must be distinct")
    completed = tuple(c for c in message.completed if 0 < len(c) <= 64)
    return Run(run_id, message.started_at, message.finished_at, completed, findings)


def _time(value: float) -> bool:
    return math.isfinite(value) and 946684800 <= value <= 4102444800  # 2000 .. 2100


def _finding(message: pb.InspectionFinding) -> Finding:
    if not 0 < len(message.key) <= MAX_KEY or not message.key.isprintable():
        raise InvalidArgument(f"finding key must be 1 to {MAX_KEY} printable characters")
    if message.severity not in SEVERITIES:
        raise InvalidArgument(f"finding {message.key}: severity must be one of "
                              f"{', '.join(sorted(SEVERITIES))}")
    value = message.value if message.HasField("value") else None
    threshold = message.threshold if message.HasField("threshold") else None
    if any(v is not None and not math.isfinite(v) for v in (value, threshold)):
        raise InvalidArgument(f"finding {message.key}: value and threshold must be finite")
    return Finding(message.key, message.severity, message.message[:MAX_MESSAGE], value,
                   threshold)


def record_run(conn: Connection, agent_id: str, run: Run, now: float) -> Recorded:
    """Store ``run`` of the enrolled ``agent_id`` and open, update or note its cases."""
    agent = directory.get_agent(conn, agent_id)
    if agent is None:
        raise PermissionDenied(f"agent {agent_id} holds a certificate but is not enrolled")
    if conn.execute(sa.select(inspection_runs.c.run_id)
                    .where(inspection_runs.c.run_id == run.run_id)).first() is not None:
        return Recorded(duplicate=True)
    conn.execute(inspection_runs.insert().values(
        run_id=run.run_id, agent_id=agent_id, started_at=run.started_at,
        finished_at=run.finished_at, received_at=now, completed=json.dumps(run.completed),
        findings=json.dumps([f.to_json() for f in run.findings])))
    open_cases = _open_cases(conn, agent_id)
    opened: list[str] = []
    updated: list[str] = []
    held: list[str] = []
    for finding in run.findings:
        existing = open_cases.get(finding.key)
        if existing is not None:
            _update_case(conn, existing, finding, run)
            updated.append(existing["case_id"])
        elif len(open_cases) + len(opened) >= MAX_OPEN_CASES:
            held.append(finding.key)
        else:
            opened.append(_open_case(conn, agent.customer_id, agent_id, finding, run))
    cleared = _clear(conn, open_cases, run)
    return Recorded(False, tuple(opened), tuple(updated), tuple(cleared), tuple(held))


def _open_cases(conn: Connection, agent_id: str) -> dict[str, Any]:
    rows = conn.execute(
        sa.select(inspection_cases).join(cases_table,
                                         cases_table.c.case_id == inspection_cases.c.case_id)
        .where(inspection_cases.c.agent_id == agent_id, cases_table.c.status == "open"))
    return {row.finding_key: row._mapping for row in rows}


def _open_case(conn: Connection, customer_id: str, agent_id: str, finding: Finding,
               run: Run) -> str:
    case_id = cases.next_case_id(conn)
    title = f"{agent_id}: {finding.message}"
    cases.add_case(conn, Case(
        case_id=case_id, customer_id=customer_id, title=title[:200], status="open",
        assignee="", opened_by=f"{OPENED_BY} of agent {agent_id} ({finding.key})",
        opened_at=run.finished_at, closed_at=None, resolution=""))
    conn.execute(inspection_cases.insert().values(
        case_id=case_id, agent_id=agent_id, finding_key=finding.key,
        severity=finding.severity, value=finding.value, threshold=finding.threshold,
        message=finding.message, first_seen=run.finished_at, last_seen=run.finished_at,
        cleared_at=None))
    return case_id


def _update_case(conn: Connection, row: Any, finding: Finding, run: Run) -> None:
    conn.execute(inspection_cases.update()
                 .where(inspection_cases.c.case_id == row["case_id"])
                 .values(severity=finding.severity, value=finding.value,
                         threshold=finding.threshold, message=finding.message,
                         last_seen=run.finished_at, cleared_at=None))
    if row["cleared_at"] is not None:
        cases.add_note(conn, row["case_id"], run.finished_at, AUTHOR,
                       f"found again at {_utc(run.finished_at)}: {finding.message}")


def _clear(conn: Connection, open_cases: dict[str, Any], run: Run) -> list[str]:
    found = {f.key for f in run.findings}
    completed = set(run.completed)
    cleared = []
    for key, row in open_cases.items():
        if key in found or row["cleared_at"] is not None:
            continue
        if key.split(".", 1)[0] not in completed:
            continue  # that check did not run to the end: no verdict on its findings
        conn.execute(inspection_cases.update()
                     .where(inspection_cases.c.case_id == row["case_id"])
                     .values(cleared_at=run.finished_at))
        cases.add_note(conn, row["case_id"], run.finished_at, AUTHOR,
                       f"cleared at {_utc(run.finished_at)}: {key} no longer found "
                       f"(run {run.run_id})")
        cleared.append(row["case_id"])
    return cleared


def _utc(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def last_run(conn: Connection, agent_id: str) -> tuple[pb.InspectionRun, float] | None:
    """The agent's most recently received run as a message, and when it was received."""
    row = conn.execute(sa.select(inspection_runs).where(inspection_runs.c.agent_id == agent_id)
                       .order_by(inspection_runs.c.received_at.desc()).limit(1)).first()
    if row is None:
        return None
    findings = [pb.InspectionFinding(**f) for f in json.loads(row.findings)]
    return pb.InspectionRun(run_id=row.run_id, started_at=row.started_at,
                            finished_at=row.finished_at, completed=json.loads(row.completed),
                            findings=findings), row.received_at
