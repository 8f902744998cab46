"""The dispatcher on real SQLite files: record before act, fail closed, revoke at once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

import permissions as p
from agent.dispatcher import Dispatcher
from agent.errors import (
    BadInput,
    Cancelled,
    ConsentRejected,
    InvalidParams,
    LogUnavailable,
    Refused,
)
from rmaint.envelopes import from_wire
from tests.unit.agent.conftest import Probe, RigFactory, StaticTrust, World


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
    await rig.dispatcher.execute(rig.world.op(3))
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
    assert rig.log.last_seq("S-1") == 5


async def test_denied_attempts_do_not_advance_the_sequence(make_rig: RigFactory) -> None:
    rig = make_rig()
    with pytest.raises(Refused):
        await rig.dispatcher.execute(rig.world.op(7, operation="no.such"))
    assert rig.log.last_seq("S-1") is None
    await rig.dispatcher.execute(rig.world.op(2))


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
