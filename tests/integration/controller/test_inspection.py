"""Inspection runs on real stores: one case per finding, updated, noted when cleared."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.engine import Connection

from controller.errors import InvalidArgument, PermissionDenied
from controller.services import archive, inspection
from controller.store import Store, cases, directory
from controller.store.records import AgentRecord, Customer
from rmaint.v1 import controller_pb2 as pb

T0 = 1_800_000_000.0
DISK = "disk.use:/var"


def _seed(conn: Connection) -> None:
    directory.add_customer(conn, Customer("acme", "Acme", dt.date(2020, 1, 1),
                                          dt.date(2099, 12, 31), T0))
    directory.save_agent(conn, AgentRecord("web-1", "acme", "127.0.0.1:7501", b"k", "sha256:k",
                                           T0, None))


def _run(n: int, *findings: tuple[str, float], completed: tuple[str, ...] = ("disk",),
         ) -> inspection.Run:
    message = pb.InspectionRun(
        run_id=f"I-{n}", started_at=T0 + 60 * n, finished_at=T0 + 60 * n + 1,
        completed=completed,
        findings=[pb.InspectionFinding(key=key, severity="warning", value=value, threshold=90,
                                       message=f"{key} is {value}%") for key, value in findings])
    return inspection.parse_run(message)


def _record(store: Store, run: inspection.Run) -> inspection.Recorded:
    return store.write_sync(inspection.record_run, "web-1", run, run.finished_at + 1)


def _inspection_cases(store: Store) -> list[str]:
    return [c.case_id for c in store.read_sync(cases.list_cases, customer_id="acme")]


def test_one_case_per_finding_not_per_run(store: Store) -> None:
    store.write_sync(_seed)
    first = _record(store, _run(1, (DISK, 95.0), ("memory.use", 97.0)))
    assert len(first.opened) == 2
    for n in range(2, 6):
        again = _record(store, _run(n, (DISK, 95.0 + n), ("memory.use", 97.0)))
        assert again.opened == () and sorted(again.updated) == sorted(first.opened)
    assert len(_inspection_cases(store)) == 2
    case = store.read_sync(cases.get_case, first.opened[0])
    assert case is not None and case.assignee == "" and case.opened_by.startswith("inspection")


def test_one_agent_opens_only_so_many_cases(store: Store) -> None:
    # A run may hold hundreds of findings: past the limit they open no case, and later
    # runs neither, until cases are closed; the findings stay in their runs.
    store.write_sync(_seed)
    many = [(f"disk.use:/mnt/{n}", 95.0) for n in range(inspection.MAX_OPEN_CASES + 10)]
    first = _record(store, _run(1, *many))
    assert len(first.opened) == inspection.MAX_OPEN_CASES and len(first.held) == 10
    second = _record(store, _run(2, *many, ("memory.use", 97.0)))
    assert second.opened == () and len(second.held) == 11
    assert len(second.updated) == inspection.MAX_OPEN_CASES
    assert len(_inspection_cases(store)) == inspection.MAX_OPEN_CASES


def test_a_persisting_finding_updates_value_and_last_seen(store: Store) -> None:
    store.write_sync(_seed)
    _record(store, _run(1, (DISK, 91.0)))
    _record(store, _run(2, (DISK, 99.5)))
    row = store.read_sync(lambda c: inspection._open_cases(c, "web-1")[DISK])
    assert row["value"] == 99.5 and row["last_seen"] == T0 + 121 and row["first_seen"] == T0 + 61


def test_a_cleared_finding_is_noted_and_the_case_stays_open(store: Store) -> None:
    store.write_sync(_seed)
    (case_id,) = _record(store, _run(1, (DISK, 95.0))).opened
    assert _record(store, _run(2)).cleared == (case_id,)
    assert _record(store, _run(3)).cleared == ()  # noted once
    notes = store.read_sync(cases.list_notes, case_id)
    assert len(notes) == 1 and notes[0][2].startswith("cleared at ")
    case = store.read_sync(cases.get_case, case_id)
    assert case is not None and case.status == "open"
    back = _record(store, _run(4, (DISK, 96.0)))
    assert back.updated == (case_id,) and back.opened == ()
    assert store.read_sync(cases.list_notes, case_id)[1][2].startswith("found again at ")


def test_no_verdict_when_the_check_did_not_complete(store: Store) -> None:
    store.write_sync(_seed)
    _record(store, _run(1, (DISK, 95.0)))
    assert _record(store, _run(2, completed=())).cleared == ()


def test_a_closed_case_lets_the_finding_open_a_new_one(store: Store) -> None:
    store.write_sync(_seed)
    (first,) = _record(store, _run(1, (DISK, 95.0))).opened
    assert store.write_sync(cases.close_case, first, "cleaned /var/log", T0 + 200)
    (second,) = _record(store, _run(2, (DISK, 95.0))).opened
    assert second != first


def test_a_resent_run_counts_once(store: Store) -> None:
    store.write_sync(_seed)
    run = _run(1, (DISK, 95.0))
    assert len(_record(store, run).opened) == 1
    assert _record(store, run).duplicate
    assert len(_inspection_cases(store)) == 1


def test_an_unenrolled_agent_is_refused(store: Store) -> None:
    with pytest.raises(PermissionDenied):
        store.write_sync(inspection.record_run, "ghost", _run(1, (DISK, 95.0)), T0)


@pytest.mark.parametrize(("change", "fault"), [
    ({"run_id": ""}, "run_id"),
    ({"started_at": 5.0}, "unix seconds"),
])
def test_bad_runs_are_refused(change: dict[str, object], fault: str) -> None:
    message = pb.InspectionRun(run_id="I-1", started_at=T0, finished_at=T0)
    for key, value in change.items():
        setattr(message, key, value)
    with pytest.raises(InvalidArgument, match=fault):
        inspection.parse_run(message)


def test_bad_findings_are_refused() -> None:
    bad = pb.InspectionRun(run_id="I-1", started_at=T0, finished_at=T0, findings=[
        pb.InspectionFinding(key="disk.use:/", severity="fatal", message="x")])
    with pytest.raises(InvalidArgument, match="severity"):
        inspection.parse_run(bad)
    twice = pb.InspectionRun(run_id="I-1", started_at=T0, finished_at=T0, findings=[
        pb.InspectionFinding(key="a.b", severity="warning"),
        pb.InspectionFinding(key="a.b", severity="warning")])
    with pytest.raises(InvalidArgument, match="distinct"):
        inspection.parse_run(twice)


def test_the_archive_shows_systems_cases_notes_and_the_last_run(store: Store) -> None:
    store.write_sync(_seed)
    store.write_sync(archive.save_inventory, "web-1", pb.AgentInventory(
        hostname="web-1.acme", os="Linux-6.1", cpu_count=4, memory_bytes=8 << 30,
        agent_version="0.1.0", boot_time=T0 - 3600), T0)
    (case_id,) = _record(store, _run(1, (DISK, 95.0))).opened
    _record(store, _run(2))
    found = store.read_sync(archive.archive, "acme", T0 + 500)
    (system,) = found.systems
    assert system.inventory.hostname == "web-1.acme" and not system.online
    assert system.last_inspection.run_id == "I-2" and not system.last_inspection.findings
    (case,) = found.cases
    assert case.case.case_id == case_id and case.opened_by == "inspection"
    assert case.notes and "cleared at" in case.notes[0]
