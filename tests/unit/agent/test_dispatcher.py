"""The dispatcher on real SQLite files: record before act, fail closed, revoke at once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

import permissions as p
from agent.catalogue import OperationSpec
from agent.dispatcher import Dispatcher
from agent.errors import (
    BadInput,
    Cancelled,
    ConsentRejected,
    InvalidParams,
    LogUnavailable,
    OperationFailed,
    Refused,
    RevocationNotSaved,
)
from agent.log import Attempt, OperationLog, Recorded
from rmaint.envelopes import from_wire
from tests.unit.agent.conftest import Probe, Rig, RigFactory, StaticTrust, World


async def test_allowed_operation_is_recorded_before_it_runs(make_rig: RigFactory) -> None:
    probe = Probe()
    rig = make_rig(extra={"test.probe": probe.spec()})
    probe.log = rig.log
    done = await rig.dispatcher.execute(rig.world.op(operation="test.probe", params={"x": 1}))
    assert probe.runs == [["allowed"]]  # the attempt was durable when the operation started
    entries = rig.log.entries()
    assert [(e.kind, e.outcome) for e in entries] == [("attempt", "allowed"), ("result", "ok")]
    attempt, result = entries
    assert (attempt.session_id, attempt.seq, attempt.grant_id, attempt.engineer) == \
        ("S-1", 1, "G-1", "alice")
    assert json.loads(attempt.params_json or "") == {"x": 1}
    assert result.attempt_id == attempt.id and done.log_index == attempt.id
    assert json.loads(done.result_json) == {"ok": True, "params": {"x": 1}}
    assert result.result_digest == "sha256:" + hashlib.sha256(done.result_json).hexdigest()


async def test_receipt_binds_operation_result_and_log_index(make_rig: RigFactory) -> None:
    rig = make_rig()
    op = rig.world.op()
    done = await rig.dispatcher.execute(op)
    key = rig.agent_key.public_key()
    receipt = p.Receipt.from_payload(p.verify(done.receipt, p.RECEIPT, {p.key_id(key): key}))
    assert receipt.operation_digest == p.digest(from_wire(op))
    assert receipt.operation_digest == rig.log.entries()[0].operation_digest
    assert receipt.result_digest == "sha256:" + hashlib.sha256(done.result_json).hexdigest()
    assert (receipt.outcome, receipt.seq, receipt.log_index, receipt.agent_id) == \
        ("ok", 1, done.log_index, "web-1")
    assert "hostname" in json.loads(done.result_json)


async def test_denied_operation_is_recorded_with_its_reason_and_not_run(
        make_rig: RigFactory) -> None:
    probe = Probe()
    rig = make_rig(extra={"test.write": probe.spec("test.write", scope="data.write")})
    probe.log = rig.log
    with pytest.raises(Refused) as refused:
        await rig.dispatcher.execute(rig.world.op(operation="test.write"))
    assert refused.value.reason == "scope-not-granted"
    assert probe.runs == []
    [entry] = rig.log.entries()
    assert (entry.outcome, entry.reason) == ("denied", "scope-not-granted")
    assert "data.write" in entry.detail


async def test_unknown_grant_is_denied(make_rig: RigFactory) -> None:
    rig = make_rig(store_grant=False)
    with pytest.raises(Refused) as refused:
        await rig.dispatcher.execute(rig.world.op())
    assert refused.value.reason == "grant-unknown"
    assert [(e.outcome, e.reason) for e in rig.log.entries()] == [("denied", "grant-unknown")]


async def test_evaluation_uses_the_agents_clock(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.clock.now = 999  # before the grant's not_before (1000)
    with pytest.raises(Refused, match="grant-not-yet-valid"):
        await rig.dispatcher.execute(rig.world.op(1))
    rig.clock.now = 1000 + 3600  # not_after is exclusive
    with pytest.raises(Refused, match="grant-expired"):
        await rig.dispatcher.execute(rig.world.op(2))
    rig.clock.now = 1000 + 3599
    await rig.dispatcher.execute(rig.world.op(3, issued_at=1000 + 3599))
    assert [e.reason for e in rig.log.entries() if e.kind == "attempt"] == \
        ["grant-not-yet-valid", "grant-expired", ""]


async def test_unwritable_log_refuses_and_runs_nothing(make_rig: RigFactory) -> None:
    probe = Probe()
    rig = make_rig(extra={"test.probe": probe.spec()}, busy_timeout=0.1)
    probe.log = rig.log
    blocker = sqlite3.connect(rig.log_path, timeout=0.1, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(LogUnavailable):
            await rig.dispatcher.execute(rig.world.op(operation="test.probe"))
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()
    assert probe.runs == []
    assert rig.log.entries() == []
    # The failed attempt did not consume the sequence number.
    await rig.dispatcher.execute(rig.world.op(operation="test.probe"))
    assert probe.runs == [["allowed"]]


async def test_replayed_sequence_number_is_denied(make_rig: RigFactory) -> None:
    rig = make_rig()
    op = rig.world.op(1)
    await rig.dispatcher.execute(op)
    with pytest.raises(Refused, match="sequence-not-increasing"):
        await rig.dispatcher.execute(op)
    with pytest.raises(Refused, match="sequence-not-increasing"):
        await rig.dispatcher.execute(rig.world.op(1, operation="diag.disks"))
    await rig.dispatcher.execute(rig.world.op(5))
    assert rig.log.last_seq("G-1", "S-1") == 5


async def test_refused_authentic_operation_cannot_be_sent_again_later(
        make_rig: RigFactory) -> None:
    """A verified operation consumes its sequence number even when it is denied."""
    rig = make_rig()
    rig.clock.now = 999  # the grant is not valid yet: the engineer's operation is refused
    with pytest.raises(Refused, match="grant-not-yet-valid"):
        await rig.dispatcher.execute(rig.world.op(1))
    rig.clock.now = 1100  # valid now: the very same signed operation is a replay
    with pytest.raises(Refused, match="sequence-not-increasing"):
        await rig.dispatcher.execute(rig.world.op(1))
    with pytest.raises(Refused, match="unknown-operation"):
        await rig.dispatcher.execute(rig.world.op(7, operation="no.such"))
    assert rig.log.last_seq("G-1", "S-1") == 7
    with pytest.raises(Refused, match="sequence-not-increasing"):
        await rig.dispatcher.execute(rig.world.op(7))
    await rig.dispatcher.execute(rig.world.op(8))


async def test_unverified_attempts_do_not_consume_sequence_numbers(make_rig: RigFactory) -> None:
    """Only the engineer's key advances a session: a relay cannot burn its numbers."""
    rig = make_rig()
    tampered = rig.world.op(9)
    tampered.payload = tampered.payload.replace(b"diag.system", b"diag.disks")
    with pytest.raises(Refused, match="operation-not-signed-by-granted-engineer"):
        await rig.dispatcher.execute(tampered)
    with pytest.raises(Refused, match="grant-unknown"):
        await rig.dispatcher.execute(rig.world.op(9, grant_id="G-404"))
    assert rig.log.last_seq("G-1", "S-1") is None
    await rig.dispatcher.execute(rig.world.op(1))


async def test_sequence_numbers_are_per_grant_and_session(make_rig: RigFactory) -> None:
    """A session id reused under another grant does not block a real session there."""
    rig = make_rig()
    request_envelope, request, grant_envelope, grant = rig.world.another_grant()
    rig.state.add_request(request_envelope, request, 950)
    rig.state.store_grant(grant_envelope, grant, 1000)
    await rig.dispatcher.execute(rig.world.op(10, session_id="S-1"))
    await rig.dispatcher.execute(rig.world.op(1, grant_id="G-2", session_id="S-1"))
    with pytest.raises(Refused, match="sequence-not-increasing"):
        await rig.dispatcher.execute(rig.world.op(10, session_id="S-1"))
    assert (rig.log.last_seq("G-1", "S-1"), rig.log.last_seq("G-2", "S-1")) == (10, 1)


@pytest.mark.parametrize(("issued_at", "allowed"), [
    (1100 - 301, False), (1100 - 300, True), (1100 + 300, True), (1100 + 301, False)])
async def test_operations_issued_over_300_seconds_away_are_refused(
        make_rig: RigFactory, issued_at: int, allowed: bool) -> None:
    rig = make_rig()  # the agent's clock reads 1100
    op = rig.world.op(1, issued_at=issued_at)
    if allowed:
        await rig.dispatcher.execute(op)
        return
    with pytest.raises(Refused) as refused:
        await rig.dispatcher.execute(op)
    assert refused.value.reason == "operation-too-old-or-too-new"
    [entry] = rig.log.entries()
    assert (entry.outcome, entry.reason) == ("denied", "operation-too-old-or-too-new")


class GatedLog:
    """Holds the first record_decision call in its worker thread until ``gate`` is set."""

    def __init__(self, rig: Rig) -> None:
        self.real = rig.log.record_decision
        self.reached = threading.Event()
        self.gate = threading.Event()
        self.calls = 0

    def record_decision(self, attempt: Attempt) -> Recorded:
        self.calls += 1
        if self.calls == 1:
            self.reached.set()
            assert self.gate.wait(10)
        return self.real(attempt)


async def test_cancelled_caller_cannot_let_a_late_record_reopen_a_replay(
        make_rig: RigFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seq 5 is being recorded when its caller goes away; seq 6 runs; seq 6 again must fail.

    Before: the cancelled caller released the decision lock at once, seq 6 was decided
    and recorded, then seq 5 committed late and moved the session back to 5.
    """
    rig = make_rig()
    gated = GatedLog(rig)
    monkeypatch.setattr(rig.log, "record_decision", gated.record_decision)
    first = asyncio.create_task(rig.dispatcher.execute(rig.world.op(5)))
    assert await asyncio.to_thread(gated.reached.wait, 5)
    first.cancel()
    second = asyncio.create_task(rig.dispatcher.execute(rig.world.op(6)))
    await asyncio.sleep(0.2)  # before: seq 6 ran to completion here
    gated.gate.set()
    done = await second
    with pytest.raises(asyncio.CancelledError):
        await first
    with pytest.raises(Refused, match="sequence-not-increasing"):
        await rig.dispatcher.execute(rig.world.op(6))
    assert rig.log.last_seq("G-1", "S-1") == 6
    outcomes = [(e.kind, e.seq, e.outcome) for e in rig.log.entries()]
    assert outcomes[:3] == [("attempt", 5, "allowed"), ("result", None, "cancelled"),
                            ("attempt", 6, "allowed")]
    assert json.loads(done.result_json)["hostname"]


def test_the_log_refuses_to_move_a_session_back(tmp_path: Path) -> None:
    """The check inside the write: an allowed attempt that does not advance is a replay."""
    log = OperationLog(tmp_path / "log.db")
    try:
        def attempt(seq: int, outcome: str = "allowed", grant_id: str = "G-1") -> Attempt:
            return Attempt(at=1.0, outcome=outcome, reason="" if outcome == "allowed" else "x",
                           detail="", operation_digest="sha256:00", envelope=b"{}",
                           session_id="S-1", seq=seq, grant_id=grant_id)
        assert log.record_decision(attempt(6)).attempt.outcome == "allowed"
        late = log.record_decision(attempt(5))
        assert (late.attempt.outcome, late.attempt.reason) == ("denied", "sequence-not-increasing")
        assert log.record_decision(attempt(6)).attempt.outcome == "denied"
        assert log.last_seq("G-1", "S-1") == 6
        assert log.record_decision(attempt(9, "denied")).attempt.reason == "x"
        assert log.last_seq("G-1", "S-1") == 9
        assert log.record_decision(attempt(1, grant_id="G-2")).attempt.outcome == "allowed"
        assert [e.outcome for e in log.entries()] == \
            ["allowed", "denied", "denied", "denied", "allowed"]
    finally:
        log.close()


def test_an_old_log_keeps_its_sequence_numbers(tmp_path: Path) -> None:
    """Logs from before per-grant counters are migrated from their entries."""
    path = tmp_path / "log.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript("""
        CREATE TABLE entries (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,
            kind TEXT NOT NULL, attempt_id INTEGER, session_id TEXT, seq INTEGER,
            grant_id TEXT, case_id TEXT, engineer TEXT, operation TEXT, params_json TEXT,
            outcome TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '', operation_digest TEXT, result_digest TEXT,
            duration_ms REAL, envelope BLOB);
        CREATE TABLE sessions (session_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL,
            updated_at REAL NOT NULL);
        INSERT INTO entries (at, kind, session_id, seq, grant_id, outcome)
            VALUES (1, 'attempt', 'S-1', 4, 'G-1', 'allowed'),
                   (2, 'attempt', 'S-1', 7, 'G-1', 'denied'),
                   (3, 'attempt', NULL, NULL, NULL, 'denied');
        INSERT INTO sessions VALUES ('S-1', 4, 1);
    """)
    conn.close()
    log = OperationLog(path)
    try:
        assert log.last_seq("G-1", "S-1") == 7
        assert log.last_seq("G-2", "S-1") is None
    finally:
        log.close()
    again = OperationLog(path)  # migrating twice changes nothing
    try:
        assert again.last_seq("G-1", "S-1") == 7
    finally:
        again.close()


async def test_invalid_parameters_are_recorded_then_rejected(make_rig: RigFactory) -> None:
    rig = make_rig()
    with pytest.raises(InvalidParams, match="limit"):
        await rig.dispatcher.execute(rig.world.op(operation="diag.processes",
                                                  params={"limit": 0}))
    assert [(e.kind, e.outcome) for e in rig.log.entries()] == \
        [("attempt", "allowed"), ("result", "invalid")]


async def test_malformed_envelope_is_recorded_and_rejected(make_rig: RigFactory) -> None:
    rig = make_rig()
    broken = rig.world.op()
    broken.payload = b"not json"
    with pytest.raises(BadInput, match="malformed operation envelope"):
        await rig.dispatcher.execute(broken)
    empty = type(broken)()
    with pytest.raises(BadInput):
        await rig.dispatcher.execute(empty)
    assert [e.reason for e in rig.log.entries()] == ["malformed-statement"] * 2


async def test_nesting_deeper_than_python_recurses_is_malformed_and_recorded(
        make_rig: RigFactory) -> None:
    rig = make_rig()
    deep = rig.world.op()
    deep.payload = b'{"grant_id":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(BadInput, match="nested too deeply"):
        await rig.dispatcher.execute(deep)
    assert [e.reason for e in rig.log.entries()] == ["malformed-statement"]


async def test_tampered_operation_is_denied(make_rig: RigFactory) -> None:
    rig = make_rig()
    op = rig.world.op(operation="diag.system")
    op.payload = op.payload.replace(b"diag.system", b"diag.disks")
    with pytest.raises(Refused, match="operation-not-signed-by-granted-engineer"):
        await rig.dispatcher.execute(op)


async def test_revoke_cancels_a_running_operation_within_a_second(make_rig: RigFactory) -> None:
    rig = make_rig()
    running = asyncio.create_task(rig.dispatcher.execute(
        rig.world.op(operation="diag.processes", params={"interval": 5})))
    while rig.dispatcher.in_flight() == 0:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    revoked = await rig.dispatcher.revoke(rig.world.revocation())
    with pytest.raises(Cancelled):
        await running
    assert time.monotonic() - started < 1.0
    assert revoked.cancelled == 1 and revoked.newly_stored
    assert rig.dispatcher.in_flight() == 0
    assert [(e.kind, e.outcome) for e in rig.log.entries()] == \
        [("attempt", "allowed"), ("result", "cancelled")]
    with pytest.raises(Refused, match="grant-revoked"):
        await rig.dispatcher.execute(rig.world.op(2))
    assert rig.state.revoked_ids() == {"G-1"}


async def test_revocation_survives_a_restart(make_rig: RigFactory) -> None:
    world = World()
    rig = make_rig(world=world)
    await rig.dispatcher.revoke(world.revocation())
    again = Dispatcher(agent_id="web-1", signing_key=rig.agent_key, trust=StaticTrust(world.trust),
                       state=rig.state, log=rig.log, clock=rig.clock)
    with pytest.raises(Refused, match="grant-revoked"):
        await again.execute(world.op())


async def test_revocation_that_cannot_be_saved_stays_in_force_and_is_saved_later(
        make_rig: RigFactory) -> None:
    """The state database is locked while the customer revokes, then released."""
    world = World()
    rig = make_rig(world=world)
    running = asyncio.create_task(rig.dispatcher.execute(
        world.op(1, operation="diag.processes", params={"interval": 5})))
    while rig.dispatcher.in_flight() == 0:
        await asyncio.sleep(0.01)
    blocker = sqlite3.connect(rig.state_path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(RevocationNotSaved) as unsaved:
            await rig.dispatcher.revoke(world.revocation())
        assert "revocation of grant G-1 is in force now but not yet saved" in \
            str(unsaved.value)
        with pytest.raises(Cancelled):
            await running
        with pytest.raises(Refused, match="grant-revoked"):
            await rig.dispatcher.execute(world.op(2))
        assert rig.dispatcher.unsaved_revocations() == {"G-1"}
        await asyncio.sleep(0.3)  # retries fail while the lock is held
        assert rig.state.revoked_ids() == set()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    deadline = time.monotonic() + 5
    while rig.dispatcher.unsaved_revocations() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert rig.state.revoked_ids() == {"G-1"}
    assert rig.state.pending_reports()[-1].kind == "revocation"
    await rig.dispatcher.close()
    # After a restart the grant stays revoked.
    again = Dispatcher(agent_id="web-1", signing_key=rig.agent_key, trust=StaticTrust(world.trust),
                       state=rig.state, log=rig.log, clock=rig.clock)
    with pytest.raises(Refused, match="grant-revoked"):
        await again.execute(world.op(3))


async def test_revocation_by_an_unpinned_key_is_rejected(make_rig: RigFactory) -> None:
    rig = make_rig()
    forged = p.revoke(rig.world.grant, ed25519.Ed25519PrivateKey.generate(), reason="x", now=1)
    with pytest.raises(ConsentRejected, match="not accepted"):
        await rig.dispatcher.revoke(forged)
    assert rig.state.revoked_ids() == set()


def test_the_log_is_append_only(make_rig: RigFactory) -> None:
    rig = make_rig()
    conn = sqlite3.connect(rig.log_path, isolation_level=None)
    try:
        conn.execute("INSERT INTO entries (at, kind, outcome) VALUES (1, 'attempt', 'denied')")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE entries SET outcome = 'allowed'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM entries")
    finally:
        conn.close()


class SwitchableTrust:
    """Trust whose pinned approver keys the test changes, as an edit of agent.toml does."""

    def __init__(self, trust: p.AgentTrust) -> None:
        self.trust = trust

    def current(self) -> p.AgentTrust:
        return self.trust


async def test_a_verified_grant_is_checked_again_when_the_pinned_approvers_change(
        make_rig: RigFactory) -> None:
    """The grant's signature is verified once per envelope and key set, not once for ever."""
    rig = make_rig()
    trust = SwitchableTrust(rig.world.trust)
    dispatcher = Dispatcher(agent_id="web-1", signing_key=rig.agent_key, trust=trust,
                            state=rig.state, log=rig.log, clock=rig.clock)
    await dispatcher.execute(rig.world.op(1))
    await dispatcher.execute(rig.world.op(2))  # from the kept verification
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    trust.trust = p.AgentTrust("web-1", {p.key_id(other): other})  # the approver was unpinned
    with pytest.raises(Refused, match="grant-not-signed-by-pinned-approver"):
        await dispatcher.execute(rig.world.op(3))
    # The same key id pinned to other key bytes does not reuse the verification either.
    kid = next(iter(rig.world.trust.approver_keys))
    trust.trust = p.AgentTrust("web-1", {kid: other})
    with pytest.raises(Refused, match="grant-not-signed-by-pinned-approver"):
        await dispatcher.execute(rig.world.op(4))
    trust.trust = rig.world.trust  # pinned again
    await dispatcher.execute(rig.world.op(5))
    trust.trust = p.AgentTrust("web-2", rig.world.trust.approver_keys)  # another agent's trust
    with pytest.raises(Refused, match="grant-for-another-agent"):
        await dispatcher.execute(rig.world.op(6))


async def test_kept_grant_verification_decides_as_the_kernel_does(make_rig: RigFactory) -> None:
    """Every decision after the first (grant verified and kept) equals permissions.evaluate."""
    rig = make_rig()
    world = rig.world
    await rig.dispatcher.execute(world.op(1))  # the grant is verified and kept from here on
    tampered = world.op(20)
    tampered.payload = tampered.payload.replace(b"diag.system", b"diag.disks")
    cases = [
        (world.op(2), 1100.0, 1), (world.op(1), 1100.0, 1), (world.op(9), 999.0, 1),
        (world.op(9), 4600.0, 1), (world.op(9, operation="no.such"), 1100.0, 1),
        (world.op(9, issued_at=1500), 1100.0, 1), (world.op(9, grant_id="G-9"), 1100.0, 1),
        (tampered, 1100.0, 1), (world.op(30), 1100.0, None),
    ]
    for message, now, last_seq in cases:
        envelope = from_wire(message)
        kept = rig.dispatcher._evaluate(world.grant_envelope, envelope, last_seq, now)
        fresh = p.evaluate(grant_envelope=world.grant_envelope, operation_envelope=envelope,
                           trust=world.trust, scope_of=rig.dispatcher._scope_of,
                           last_seq=last_seq, revoked=set(), now=now)
        assert kept == fresh
    await rig.dispatcher.revoke(world.revocation())
    envelope = from_wire(world.op(40))
    kept = rig.dispatcher._evaluate(world.grant_envelope, envelope, 1, 1100.0)
    assert (kept.allowed, kept.reason) == (False, p.Reason.REVOKED)


async def test_a_result_that_cannot_be_recorded_withholds_the_output(
        make_rig: RigFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail closed after the run too: no output and no receipt without a durable result."""
    rig = make_rig()

    def unwritable(result: object) -> int:
        raise LogUnavailable("disk full")
    monkeypatch.setattr(rig.log, "record_result", unwritable)
    with pytest.raises(LogUnavailable):
        await rig.dispatcher.execute(rig.world.op(1))
    assert [(e.kind, e.outcome) for e in rig.log.entries()] == [("attempt", "allowed")]


async def test_a_session_number_remembered_too_low_cannot_let_a_replay_through(
        make_rig: RigFactory) -> None:
    """The log remembers last sequence numbers; the write transaction still decides."""
    rig = make_rig()
    await rig.dispatcher.execute(rig.world.op(5))
    assert rig.log.known_last_seq("G-1", "S-1") == (True, 5)
    other = OperationLog(rig.log_path)  # another connection advances the session to 7
    try:
        attempt = Attempt(at=1100.0, outcome="denied", reason="x", detail="",
                          operation_digest="sha256:00", envelope=b"{}", session_id="S-1",
                          seq=7, grant_id="G-1")
        other.record_decision(attempt)
    finally:
        other.close()
    with pytest.raises(Refused, match="sequence-not-increasing"):
        await rig.dispatcher.execute(rig.world.op(6))  # allowed by the memory, not the log
    assert [(e.seq, e.outcome, e.reason) for e in rig.log.entries() if e.kind == "attempt"][-1] \
        == (6, "denied", "sequence-not-increasing")
    await rig.dispatcher.execute(rig.world.op(8))


async def test_operation_runs_only_after_its_attempt_committed(make_rig: RigFactory) -> None:
    """Record before act, seen from a separate connection: when the operation starts, its
    attempt is committed (the log's own connection could see it before the commit)."""
    seen: list[list[str]] = []

    def prepare(params: Mapping[str, Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
        async def run() -> dict[str, Any]:
            reader = sqlite3.connect(rig.log_path)
            try:
                seen.append([row[0] for row in reader.execute(
                    "SELECT outcome FROM entries ORDER BY id")])
            finally:
                reader.close()
            return {"ok": True}
        return run
    spec = OperationSpec("test.reader", "diag.read", False, 5.0, 4096, prepare)
    rig = make_rig(extra={"test.reader": spec})
    await rig.dispatcher.execute(rig.world.op(operation="test.reader"))
    assert seen == [["allowed"]]


async def test_a_defect_in_reading_parameters_still_ends_the_attempt(
        make_rig: RigFactory) -> None:
    def prepare(params: Mapping[str, Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
        raise OverflowError("a repeat count too large")  # as re.compile once raised
    spec = OperationSpec("test.broken", "diag.read", False, 5.0, 4096, prepare)
    rig = make_rig(extra={"test.broken": spec})
    with pytest.raises(OperationFailed, match="operation failed"):
        await rig.dispatcher.execute(rig.world.op(operation="test.broken"))
    assert [(e.kind, e.outcome) for e in rig.log.entries()] == \
        [("attempt", "allowed"), ("result", "error")]
