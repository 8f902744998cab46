"""Mutual witnessing on real stores (SQLite and PostgreSQL) with a real agent log: the
controller mirrors and cosigns the agent's log; changed entries, a forked or replayed
checkpoint and a changed key are refused with the reason; reconcile finds what was deleted
on either side."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import permissions as p
import tlog
from agent.ledger import Ledger
from agent.log import Attempt, OperationLog, Result
from agent.witness import Witness, WitnessFailed
from controller.audit.evidence import from_json
from controller.audit.reconcile import (
    CONSISTENT,
    DIFFERENT,
    INCOMPLETE,
    MISSING_ON_AGENT,
    MISSING_ON_CONTROLLER,
    reconcile,
)
from controller.audit.records import decode
from controller.audit.verify import VERIFIED, verify_evidence
from controller.audit.witness import Exchange, Witnessed, WitnessRefused, agent_origin, witness
from controller.store import Store, auditlog, directory, sessions
from controller.store import witness as rows
from controller.store.records import AgentRecord, Session, SessionEvent
from controller.store.schema import agents, session_events, witness_entries
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc as rpc
from tests.integration.controller._support import Deployment
from tests.integration.controller.test_controller_store import T0, _grant, _request, _seed

ORIGIN = agent_origin("web-1", "example.test")
CONTROLLER = tlog.NoteSigner("example.test/controller-log", ed25519.Ed25519PrivateKey.generate())


class AgentSide:
    """A real agent operation log, its log key, and the exchanges its witness would send."""

    def __init__(self, path: Path, key: ed25519.Ed25519PrivateKey | None = None) -> None:
        self.log = OperationLog(path)
        self.signer = tlog.NoteSigner(ORIGIN, key or ed25519.Ed25519PrivateKey.generate())
        self.conn = sqlite3.connect(path)
        self.receipt_key = ec.generate_private_key(ec.SECP256R1())

    def close(self) -> None:
        self.conn.close()
        self.log.close()

    def operate(self, operation: p.Envelope, *, session_id: str, seq: int,
                output: bytes = b"{}") -> p.Envelope:
        """Record an allowed attempt and its ok result; the receipt the agent signs."""
        index = self.log.record_attempt(Attempt(
            at=T0, outcome="allowed", reason="", detail="", operation_digest=p.digest(operation),
            envelope=b"e", session_id=session_id, seq=seq, grant_id="G-1", case_id="C-0001",
            engineer="alice", operation="diag.system", params_json="{}"))
        result_digest = "sha256:" + hashlib.sha256(output).hexdigest()
        self.log.record_result(Result(index, T0, "ok", result_digest=result_digest))
        receipt = p.Receipt(agent_id="web-1", session_id=session_id, seq=seq,
                            operation="diag.system", operation_digest=p.digest(operation),
                            outcome="ok", result_digest=result_digest, at=int(T0),
                            log_index=index)
        return p.sign(p.RECEIPT, receipt.to_payload(), self.receipt_key)

    def noise(self, n: int) -> None:
        """``n`` attempts without a session (malformed envelopes, denied)."""
        for i in range(n):
            self.log.record_attempt(Attempt(at=T0 + i, outcome="denied", reason="malformed",
                                            detail="", operation_digest=f"sha256:{i}",
                                            envelope=b"x"))

    def exchange(self, mirrored: int, cosigned: int, *, batch: int = 1000,
                 note: bytes | None = None) -> Exchange:
        head = self.log.checkpoint(self.signer, ORIGIN, T0)
        ledger = Ledger()
        records = ledger.records(self.conn, mirrored, batch)
        end = mirrored + len(records)
        return Exchange(self.signer.verifier.vkey(), note or head.note, mirrored,
                        tuple(records), ledger.consistency(self.conn, end, head.size),
                        cosigned, ledger.consistency(self.conn, cosigned, head.size))


@pytest.fixture
def agent_side(tmp_path: Path) -> Iterator[AgentSide]:
    side = AgentSide(tmp_path / "agent-log.db")
    yield side
    side.close()


def _witness(store: Store, exchange: Exchange) -> Witnessed:
    return store.write_sync(witness, "web-1", exchange, ORIGIN, CONTROLLER, T0)


def _state(store: Store) -> rows.WitnessState:
    state = store.read_sync(rows.get_state, "web-1")
    assert state is not None
    return state


def test_the_controller_mirrors_and_cosigns_in_bounded_batches(store: Store,
                                                               agent_side: AgentSide) -> None:
    store.write_sync(_seed)
    agent_side.noise(7)
    done = _witness(store, agent_side.exchange(0, 0, batch=3))
    assert (done.accepted, done.mirrored_size, done.cosigned_size) == (True, 3, 7)
    # The key was pinned on first use, in the controller's own log.
    pinned = [decode(leaf.record) for leaf in store.read_sync(auditlog.leaves)]
    assert [e.kind for e in pinned] == ["witness.key-pinned"]
    assert pinned[0].details["log_key"] == agent_side.signer.verifier.vkey()
    # The cosigned note carries both signatures.
    tlog.open_checkpoint(done.cosigned, [agent_side.signer.verifier, CONTROLLER.verifier],
                         origin=ORIGIN, quorum=2)
    # Sizes that are not the controller's are answered, not refused; nothing is stored.
    stale = _witness(store, agent_side.exchange(0, 0))
    assert (stale.accepted, stale.mirrored_size) == (False, 3)
    agent_side.noise(2)
    while _state(store).mirrored_size < 9:
        state = _state(store)
        _witness(store, agent_side.exchange(state.mirrored_size, state.cosigned_size, batch=3))
    state = _state(store)
    assert (state.mirrored_size, state.cosigned_size) == (9, 9)
    assert [e.index for e in store.read_sync(rows.entries, "web-1")] == list(range(1, 10))


def test_changed_forked_replayed_and_rekeyed_logs_are_refused(
        store: Store, agent_side: AgentSide, tmp_path: Path) -> None:
    store.write_sync(_seed)
    agent_side.noise(4)
    old = agent_side.exchange(0, 0)
    _witness(store, old)
    agent_side.noise(3)

    # An entry changed in transit (or in the log) no longer rebuilds the signed tree.
    honest = agent_side.exchange(4, 4)
    tampered = list(honest.entries)
    tampered[1] = tampered[1].replace(b'"denied"', b'"allowed"')
    with pytest.raises(WitnessRefused, match=r"entries 5\.\.7 do not rebuild a tree its "
                                             r"checkpoint of size 7 extends"):
        _witness(store, Exchange(**{**honest.__dict__, "entries": tuple(tampered)}))

    # A replayed older checkpoint goes below what was cosigned.
    _witness(store, honest)
    with pytest.raises(WitnessRefused, match="below the size 7 already cosigned"):
        _witness(store, Exchange(**{**old.__dict__, "mirrored_size": 7, "cosigned_size": 7,
                                    "entries": ()}))

    # A rewritten history, signed by the same key, does not extend the cosigned checkpoint.
    forked = AgentSide(tmp_path / "forked.db", agent_side.signer.private_key)
    try:
        forked.noise(9)  # different "at" values from entry 5 on: another history
        fork = forked.exchange(7, 7)
        with pytest.raises(WitnessRefused, match=r"size 9 .* does not extend the checkpoint "
                                                 r"of size 7 cosigned before .*\(fork\)"):
            _witness(store, fork)
    finally:
        forked.close()

    # Another key, however valid its signature, is not the pinned one.
    stranger = AgentSide(tmp_path / "stranger.db")
    try:
        stranger.noise(8)
        with pytest.raises(WitnessRefused, match="log key changed"):
            _witness(store, stranger.exchange(7, 7))
        # The pinned key presented, but the checkpoint signed by another.
        with pytest.raises(WitnessRefused, match="not signed by the log key it presented"):
            _witness(store, Exchange(**{**agent_side.exchange(7, 7).__dict__,
                                        "checkpoint": stranger.exchange(7, 7).checkpoint}))
    finally:
        stranger.close()
    assert (_state(store).mirrored_size, _state(store).cosigned_size) == (7, 7)


def _relay(store: Store, agent_side: AgentSide, engineer: ec.EllipticCurvePrivateKey,
           seq: int) -> None:
    """One operation as the controller records it, and as the agent logs it."""
    statement = p.Operation(session_id="S-1", seq=seq, grant_id="G-1", agent_id="web-1",
                            case_id="C-0001", operation="diag.system", params={},
                            issued_at=int(T0))
    envelope = p.sign(p.OPERATION, statement.to_payload(), engineer)
    receipt = agent_side.operate(envelope, session_id="S-1", seq=seq)
    started = store.write_sync(sessions.add_event, SessionEvent(
        None, "S-1", seq, "alice", "diag.system", "{}", "pending", "", T0 + seq, None, None,
        envelope))
    store.write_sync(lambda c: sessions.finish_event(c, started, outcome="ok", detail="",
                                                     duration_ms=1.0, receipt=receipt))


def _enroll_receipt_key(store: Store, key: ec.EllipticCurvePrivateKey) -> None:
    """Enroll ``key`` as the agent's (the one its receipts must be signed with)."""
    public = key.public_key()
    store.write_sync(lambda c: c.execute(agents.update().where(agents.c.agent_id == "web-1")
                                         .values(public_key=p.public_key_bytes(public),
                                                 key_fingerprint=p.key_id(public))))


def test_reconcile_finds_events_deleted_on_either_side(store: Store,
                                                       agent_side: AgentSide) -> None:
    store.write_sync(_seed)
    request = store.write_sync(_request, "R-1", T0)
    store.write_sync(_grant, request, "G-1", int(T0) + 3600)
    store.write_sync(sessions.add_session, Session("S-1", "alice", "C-0001", "web-1", "G-1",
                                                   T0, None, None))
    engineer = ec.generate_private_key(ec.SECP256R1())
    _enroll_receipt_key(store, agent_side.receipt_key)
    assert store.read_sync(reconcile, "web-1").status == INCOMPLETE  # never witnessed
    for seq in (1, 2, 3):
        _relay(store, agent_side, engineer, seq)
    # A shell's recording is kept under the number of its shell.open: not another operation.
    opened = store.read_sync(sessions.list_events, "S-1")[1]
    store.write_sync(sessions.add_event, dataclasses.replace(
        opened, event_id=None, operation="shell.recording", outcome="ok", receipt=None))
    _witness(store, agent_side.exchange(0, 0))
    found = store.read_sync(reconcile, "web-1")
    assert (found.status, found.agent_operations, found.controller_operations) == (
        CONSISTENT, 3, 3)
    # Receipts not signed by the agent's enrolled key prove nothing: named, never dropped.
    _enroll_receipt_key(store, ec.generate_private_key(ec.SECP256R1()))
    forged = store.read_sync(reconcile, "web-1")
    assert forged.status == DIFFERENT
    assert [d.kind for d in forged.differences] == ["bad-receipt"] * 3
    _enroll_receipt_key(store, agent_side.receipt_key)

    _relay(store, agent_side, engineer, 4)  # receipted, not witnessed yet: pending
    behind = store.read_sync(reconcile, "web-1")
    assert (behind.status, behind.pending) == (INCOMPLETE, 1)
    _witness(store, agent_side.exchange(6, 6))

    store.write_sync(lambda c: c.execute(session_events.delete().where(
        session_events.c.session_id == "S-1", session_events.c.seq == 2)))
    store.write_sync(lambda c: c.execute(witness_entries.delete().where(
        witness_entries.c.agent_id == "web-1", witness_entries.c.entry_index == 5)))
    found = store.read_sync(reconcile, "web-1")
    assert found.status == DIFFERENT
    listed = {(d.kind, d.session_id, d.seq) for d in found.differences}
    assert listed == {(MISSING_ON_CONTROLLER, "S-1", 2), (MISSING_ON_AGENT, "S-1", 3)}
    missing = next(d for d in found.differences if d.kind == MISSING_ON_CONTROLLER)
    assert missing.agent_index == 3
    assert store.read_sync(lambda c: c.execute(sa.select(sa.func.count()).select_from(
        session_events)).scalar_one()) == 3


async def test_an_agent_witnesses_a_real_controller_over_mutual_tls(
        deployment: Deployment, tmp_path: Path) -> None:
    agent = deployment.person("agent", "web-1")
    store = Store.open(deployment.controller.config.database_url)
    try:
        await store.write(_seed)
        await store.write(lambda conn: directory.save_agent(conn, AgentRecord(  # its key
            "web-1", "acme", "127.0.0.1:7501", b"k", p.key_id(agent.key.public_key()), T0,
            None)))
    finally:
        store.close()
    stub = rpc.AgentReportServiceStub(deployment.channel(agent))
    side = AgentSide(tmp_path / "agent-log.db")
    mine = Witness(tmp_path / "agent-log.db", side.signer, batch=4)
    try:
        side.noise(6)
        first = await mine.round(stub, 10)
        assert (first.mirrored, first.cosigned, first.size) == (6, 6, 6)
        side.noise(3)
        second = await mine.round(stub, 10)
        assert (second.mirrored, second.cosigned) == (9, 9)
        # The controller's checkpoints the agent cosigned, and its cosignature on this log.
        cosigned = side.conn.execute("SELECT note FROM witness_cosigned ORDER BY size DESC"
                                     ).fetchone()[0]
        controller_key = tlog.parse_verifier_key(
            side.conn.execute("SELECT vkey FROM witness_keys").fetchone()[0])
        tlog.open_checkpoint(cosigned, [side.signer.verifier, controller_key], origin=ORIGIN,
                             quorum=2)
        assert side.conn.execute("SELECT COUNT(*) FROM witnessed").fetchone()[0] >= 1

        # The evidence carries the agent's cosignature; only a pinned agent key counts.
        auditor = rpc.AuditServiceStub(deployment.channel(deployment.admin()))
        data = b"".join([c.data async for c in auditor.GetEvidence(
            pb.GetEvidenceRequest(full=True))])
        evidence = from_json(data)
        assert len(evidence.cosigned) == 1
        report = verify_evidence(evidence, controller_key, [side.signer.verifier])
        assert report.status == VERIFIED and report.cosigned_by == (side.signer.verifier.vkey(),)
        other = tlog.NoteVerifier(ORIGIN, ed25519.Ed25519PrivateKey.generate().public_key()
                                  .public_bytes_raw())
        unpinned = verify_evidence(evidence, controller_key, [other])
        assert unpinned.status == INCOMPLETE and unpinned.cosigned_by == ()
        reconciled = await auditor.Reconcile(pb.ReconcileRequest(agent_id="web-1"))
        assert (reconciled.status, reconciled.mirrored_size) == (CONSISTENT, 9)

        # An exchange the controller cannot take at all is kept: reconcile says why it
        # stalls; the next accepted exchange clears it.
        with pytest.raises(grpc.aio.AioRpcError) as oversized:
            await stub.Witness(pb.WitnessRequest(
                log_key=side.signer.verifier.vkey(), checkpoint=b"c", mirrored_size=9,
                entries=[b"x" * (256 * 1024 + 1)]))
        assert oversized.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        stalled = await auditor.Reconcile(pb.ReconcileRequest(agent_id="web-1"))
        assert stalled.status == INCOMPLETE
        assert stalled.last_refusal == "exchange failed: entries: a record is at most 256 KiB"
        side.noise(1)
        await mine.round(stub, 10)
        cleared = await auditor.Reconcile(pb.ReconcileRequest(agent_id="web-1"))
        assert (cleared.status, cleared.last_refusal) == (CONSISTENT, "")

        # Another key for the same agent: refused, uniformly outside, kept inside.
        stranger = AgentSide(tmp_path / "stranger.db")
        strange = Witness(tmp_path / "stranger.db", stranger.signer)
        try:
            stranger.noise(12)
            for _ in range(2):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await strange.round(stub, 10)
                assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert refused.value.details() == "permission denied"
        finally:
            strange.close()
            stranger.close()
        reconciled = await auditor.Reconcile(pb.ReconcileRequest(agent_id="web-1"))
        assert "log key changed" in reconciled.last_refusal
        assert reconciled.status == "refused"  # never "consistent" over a kept refusal
        store = Store.open(deployment.controller.config.database_url)
        try:  # in the controller's own log, once however often the agent retries
            kinds = [decode(leaf.record).kind for leaf in await store.read(auditlog.leaves)]
        finally:
            store.close()
        # (the stalled exchange above is one more)
        assert kinds.count("witness.refused") == 2 and kinds.count("witness.key-pinned") == 1

        # The agent refuses a controller log that does not extend what it cosigned...
        side.conn.execute("UPDATE witnessed SET root = ? WHERE size = (SELECT MAX(size) "
                          "FROM witnessed)", (bytes(32),))
        side.conn.commit()
        side.noise(1)
        with pytest.raises(WitnessFailed, match=r"does not extend the one of size .* this "
                                                r"agent cosigned: its history was rewritten"):
            await mine.round(stub, 10)
        # ...and a controller whose log key is not the one it pinned.
        side.conn.execute("UPDATE witness_keys SET vkey = ?", (other.vkey(),))
        side.conn.commit()
        side.noise(1)
        with pytest.raises(WitnessFailed, match="log key changed"):
            await mine.round(stub, 10)
    finally:
        mine.close()
        side.close()
