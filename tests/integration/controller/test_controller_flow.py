"""The main job through the real controller: request, consent, session, relayed operations,
revocation and expiry — with a fake agent answering Execute over mutual TLS."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

import permissions as p
from pki import certs
from pki.enroll import EnrollmentRefused, enroll
from pki.token import JoinToken
from rmaint.envelopes import from_wire, to_wire
from rmaint.v1 import agent_pb2
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc as rpc
from tests.integration.controller._support import (
    Deployment,
    FakeAgent,
    Person,
    approver,
    operation,
)


@dataclass
class World:
    d: Deployment
    agent: Person
    fake: FakeAgent
    engineer: Person
    approver_key: ed25519.Ed25519PrivateKey
    case_id: str

    @property
    def admin(self) -> rpc.AdminServiceStub:
        return rpc.AdminServiceStub(self.d.channel(self.d.admin()))

    def as_engineer(self, person: Person | None = None) -> rpc.EngineerServiceStub:
        return rpc.EngineerServiceStub(self.d.channel(person or self.engineer))

    def as_agent(self) -> rpc.AgentReportServiceStub:
        return rpc.AgentReportServiceStub(self.d.channel(self.agent))

    def records(self) -> rpc.RecordsServiceStub:
        return rpc.RecordsServiceStub(self.d.channel(self.d.person("auditor", "bob")))

    def sign_request(self, request_id: str = "R-1", *, engineer: Person | None = None,
                     case_id: str | None = None, scopes: tuple[str, ...] = ("diag.read",),
                     name: str = "alice") -> p.Envelope:
        return p.request_access((engineer or self.engineer).key, request_id=request_id,
                                case_id=case_id or self.case_id, agent_id="web-1",
                                engineer=name, scopes=scopes, duration_seconds=3600,
                                reason="customer reports slow responses",
                                now=int(self.d.clock.now))

    async def request(self, request_id: str = "R-1") -> p.AccessRequest:
        envelope = self.sign_request(request_id)
        await self.as_engineer().RequestAccess(pb.RequestAccessRequest(request=to_wire(envelope)))
        return p.verify_access_request(envelope)

    async def grant(self, request_id: str = "R-1", grant_id: str = "G-1") -> p.Grant:
        statement = await self.request(request_id)
        envelope = p.approve(statement, self.approver_key, grant_id=grant_id,
                             now=int(self.d.clock.now))
        await self.report(envelope)
        return p.Grant.from_payload(envelope.payload)

    async def report(self, envelope: p.Envelope) -> None:
        await self.as_agent().ReportConsent(pb.ReportConsentRequest(decision=to_wire(envelope)))

    async def session(self, grant_id: str = "") -> pb.OpenSessionResponse:
        reply: pb.OpenSessionResponse = await self.as_engineer().OpenSession(
            pb.OpenSessionRequest(case_id=self.case_id, agent_id="web-1", grant_id=grant_id))
        return reply

    async def run(self, session_id: str, seq: int, grant_id: str = "G-1",
                  person: Person | None = None) -> agent_pb2.ExecuteResponse:
        op = operation(person or self.engineer, session_id=session_id, seq=seq,
                       grant_id=grant_id, case_id=self.case_id)
        reply: agent_pb2.ExecuteResponse = await self.as_engineer(person).RunOperation(
            agent_pb2.ExecuteRequest(operation=to_wire(op)))
        return reply

    async def consent_kinds(self) -> list[str]:
        log = await self.records().ConsentLog(pb.ConsentLogRequest(case_id=self.case_id))
        return [entry.kind for entry in log.entries]


@pytest.fixture
async def world(deployment: Deployment) -> AsyncIterator[World]:
    d = deployment
    admin = rpc.AdminServiceStub(d.channel(d.admin()))
    await admin.AddCustomer(pb.AddCustomerRequest(customer=pb.Customer(
        customer_id="acme", name="Acme", contract_start="2020-01-01", contract_end="2099-12-31")))
    reply = await admin.CreateJoinToken(pb.CreateJoinTokenRequest(
        role="agent", subject="web-1", customer_id="acme"))
    key = certs.generate_key()
    enrolled = await enroll(JoinToken.decode(reply.token), key, agent_address="127.0.0.1:9")
    agent = d.person("agent", "web-1", key, cert_pem=enrolled.certificate_pem)
    fake = FakeAgent(agent)
    address = await fake.start()
    approver_key, approver_id, approver_raw = approver()
    await rpc.AgentReportServiceStub(d.channel(agent)).Heartbeat(pb.HeartbeatRequest(
        address=address, approver_keys={approver_id: approver_raw}))
    engineer = d.person("engineer", "alice")
    case = await rpc.CaseServiceStub(d.channel(engineer)).OpenCase(pb.OpenCaseRequest(
        customer_id="acme", title="slow responses"))
    try:
        yield World(d, agent, fake, engineer, approver_key, case.case.case_id)
    finally:
        await fake.stop()


async def test_engineer_opens_cases_for_themselves_only(world: World) -> None:
    assert world.case_id == "C-0001"
    cases = rpc.CaseServiceStub(world.d.channel(world.engineer))
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await cases.OpenCase(pb.OpenCaseRequest(customer_id="acme", title="x", assignee="bob"))
    assert (denied.value.code(), denied.value.details()) == (
        grpc.StatusCode.PERMISSION_DENIED, "permission denied")
    second = await cases.OpenCase(pb.OpenCaseRequest(customer_id="acme", title="y"))
    assert (second.case.case_id, second.case.assignee) == ("C-0002", "alice")
    listed = await world.records().ListCases(pb.ListCasesRequest(limit=1))
    assert ([c.case_id for c in listed.cases], listed.total) == (["C-0002"], 2)
    with pytest.raises(grpc.aio.AioRpcError) as too_many:
        await world.records().ListCases(pb.ListCasesRequest(limit=1001))
    assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_an_administrator_assigns_cases_to_known_engineers_only(world: World) -> None:
    cases = rpc.CaseServiceStub(world.d.channel(world.d.admin()))
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await cases.OpenCase(pb.OpenCaseRequest(customer_id="acme", title="x", assignee="nobody"))
    assert (unknown.value.code(), unknown.value.details()) == (
        grpc.StatusCode.NOT_FOUND,
        "unknown engineer nobody (add them with 'rmctl engineer add nobody')")
    # Added (a login token issued) is enough: the case can wait for the first login.
    await world.admin.CreateJoinToken(pb.CreateJoinTokenRequest(role="engineer",
                                                                subject="nobody"))
    case = await cases.OpenCase(pb.OpenCaseRequest(customer_id="acme", title="x",
                                                   assignee="nobody"))
    assert (case.case.case_id, case.case.assignee) == ("C-0002", "nobody")


async def test_a_case_or_session_that_does_not_exist_is_not_found(world: World) -> None:
    """Not an empty list: "none yet" and "no such case" are different answers."""
    calls = (
        (world.records().ListSessions(pb.ListSessionsRequest(case_id="C-9999")),
         "unknown case C-9999"),
        (world.as_engineer().ListMyRequests(pb.ListMyRequestsRequest(case_id="C-9999")),
         "unknown case C-9999"),
    )
    for call, said in calls:
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await call
        assert (missing.value.code(), missing.value.details()) == (grpc.StatusCode.NOT_FOUND,
                                                                   said)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        async for _ in world.records().GetRecording(pb.GetRecordingRequest(session_id="S-nope")):
            pass
    assert missing.value.details() == "unknown session S-nope"
    listed = await world.records().ListSessions(pb.ListSessionsRequest(case_id=world.case_id))
    assert list(listed.sessions) == []  # a known case with none yet


async def test_request_is_recorded_and_fetched_by_its_agent(world: World) -> None:
    envelope = world.sign_request()
    reply = await world.as_engineer().RequestAccess(
        pb.RequestAccessRequest(request=to_wire(envelope)))
    assert (reply.request.request_id, reply.request.status) == ("R-1", "pending")
    fetched = await world.as_agent().FetchRequests(pb.FetchRequestsRequest())
    assert [from_wire(e) for e in fetched.requests] == [envelope]
    mine = await world.as_engineer().ListMyRequests(pb.ListMyRequestsRequest())
    assert [r.request_id for r in mine.requests] == ["R-1"]
    log = await world.records().ConsentLog(pb.ConsentLogRequest(case_id=world.case_id))
    entry = log.entries[0]
    assert (entry.kind, entry.actor, entry.reason) == (
        "requested", "alice", "customer reports slow responses")
    assert from_wire(entry.envelope) == envelope


async def test_one_engineer_keeps_only_so_many_requests_waiting_at_an_agent(
        world: World) -> None:
    from controller.rules import MAX_PENDING_REQUESTS, REQUEST_TTL

    for n in range(MAX_PENDING_REQUESTS):
        await world.request(f"R-{n}")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await world.request("R-more")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.details() == (
        f"{MAX_PENDING_REQUESTS} of your requests to web-1 await the customer's decision: "
        "wait for decisions, or for them to expire (a day after they were filed)")
    fetched = await world.as_agent().FetchRequests(pb.FetchRequestsRequest())
    assert len(fetched.requests) == MAX_PENDING_REQUESTS
    newest = await world.records().ConsentLog(pb.ConsentLogRequest(agent_id="web-1", limit=3))
    assert [e.request_id for e in newest.entries] == ["R-13", "R-14", "R-15"]  # oldest first
    assert newest.total == MAX_PENDING_REQUESTS
    world.d.clock.now += REQUEST_TTL + 1  # undecided for a day: they expired
    await world.request("R-more")


async def test_duplicate_request_id_already_exists(world: World) -> None:
    await world.request("R-1")
    with pytest.raises(grpc.aio.AioRpcError) as duplicate:
        await world.request("R-1")
    assert duplicate.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_request_signed_with_another_key_is_denied(world: World) -> None:
    other = world.d.person("engineer", "mallory")
    envelope = world.sign_request(engineer=other)  # names alice, signed by mallory's key
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await world.as_engineer().RequestAccess(pb.RequestAccessRequest(request=to_wire(envelope)))
    assert (denied.value.code(), denied.value.details()) == (
        grpc.StatusCode.PERMISSION_DENIED, "permission denied")


async def test_request_for_another_customers_agent_is_refused(world: World) -> None:
    await world.admin.AddCustomer(pb.AddCustomerRequest(customer=pb.Customer(
        customer_id="other-co", name="Other", contract_start="2020-01-01",
        contract_end="2099-12-31")))
    case = await rpc.CaseServiceStub(world.d.channel(world.engineer)).OpenCase(
        pb.OpenCaseRequest(customer_id="other-co", title="advice"))
    envelope = world.sign_request(case_id=case.case.case_id)  # web-1 is acme's
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await world.as_engineer().RequestAccess(pb.RequestAccessRequest(request=to_wire(envelope)))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not an agent of customer other-co" in (refused.value.details() or "")


async def test_request_outside_the_contract_is_refused(world: World) -> None:
    world.d.clock.now = 4_200_000_000.0  # in 2103, after acme's contract ended
    envelope = world.sign_request()
    with pytest.raises(grpc.aio.AioRpcError) as outside:
        await world.as_engineer().RequestAccess(pb.RequestAccessRequest(request=to_wire(envelope)))
    assert outside.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert outside.value.details() == (
        "outside the service contract: the service company may only advise")
    assert await world.consent_kinds() == []


async def test_grant_session_operation_and_revocation(world: World) -> None:
    grant = await world.grant()
    again = p.approve(p.verify_access_request(world.sign_request()), world.approver_key,
                      grant_id="G-1", now=grant.issued_at)
    await world.report(again)  # a repeated report changes nothing
    opened = await world.session()
    session_id = opened.session.session_id
    assert session_id.startswith("S-") and len(session_id) == 14
    assert (opened.grant_not_after, list(opened.scopes)) == (grant.not_after, ["diag.read"])

    answer = await world.run(session_id, 1)
    assert json.loads(answer.result_json)["hostname"] == "web-1"
    assert answer.event_id > 0 and answer.receipt.payload_type == p.RECEIPT
    world.fake.refuse = grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await world.run(session_id, 2)
    assert (denied.value.code(), denied.value.details()) == (
        grpc.StatusCode.PERMISSION_DENIED, "permission denied")

    shown = await world.records().GetSession(pb.GetSessionRequest(session_id=session_id))
    assert [(e.seq, e.outcome) for e in shown.events] == [(1, "ok"), (2, "denied")]
    assert shown.events[0].detail == "" and shown.events[0].receipt == answer.receipt
    assert from_wire(shown.events[0].operation_envelope) == world.fake.calls[0]

    revocation = p.revoke(grant, world.approver_key, reason="done", now=int(world.d.clock.now))
    await world.report(revocation)
    await world.report(revocation)
    closed = await world.records().GetSession(pb.GetSessionRequest(session_id=session_id))
    assert closed.session.end_reason == "revoked" and closed.session.ended_at > 0
    assert await world.consent_kinds() == ["requested", "approved", "revoked"]
    with pytest.raises(grpc.aio.AioRpcError) as after:
        await world.run(session_id, 3)
    assert after.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    case = await world.records().GetCase(pb.GetCaseRequest(case_id=world.case_id))
    assert [r.status for r in case.requests] == ["revoked"]


async def test_denial_is_recorded_with_its_reason(world: World) -> None:
    statement = await world.request()
    await world.report(p.deny(statement, world.approver_key, reason="not today",
                              now=int(world.d.clock.now)))
    log = await world.records().ConsentLog(pb.ConsentLogRequest(agent_id="web-1"))
    assert [(e.kind, e.reason) for e in log.entries][-1] == ("denied", "not today")
    fetched = await world.as_agent().FetchRequests(pb.FetchRequestsRequest())
    assert not fetched.requests


async def test_the_consent_log_names_approvers_as_their_agent_does(world: World) -> None:
    kid = p.key_id(world.approver_key.public_key())
    raw = p.public_key_bytes(world.approver_key.public_key())
    statement = await world.request()
    await world.report(p.deny(statement, world.approver_key, reason="not today",
                              now=int(world.d.clock.now)))

    async def named(names: dict[str, str]) -> list[tuple[str, str]]:
        await world.as_agent().Heartbeat(pb.HeartbeatRequest(approver_keys={kid: raw},
                                                             approver_names=names))
        log = await world.records().ConsentLog(pb.ConsentLogRequest(agent_id="web-1"))
        return [(e.actor, e.actor_name) for e in log.entries]

    assert await named({kid: "carol"}) == [("alice", ""), (kid, "carol")]
    # A name that is not a name, or for a key the agent does not report, is left out; the
    # heartbeat still counts. Only the key id is signed: a name is shown, never trusted.
    assert await named({kid: "Carol\x1b[2J", "sha256:" + "0" * 64: "mallory"}) == [
        ("alice", ""), (kid, "")]
    assert await named({}) == [("alice", ""), (kid, "")]


async def test_decision_by_an_unpinned_key_is_denied(world: World) -> None:
    statement = await world.request()
    stranger = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await world.report(p.approve(statement, stranger, grant_id="G-9",
                                     now=int(world.d.clock.now)))
    assert (denied.value.code(), denied.value.details()) == (
        grpc.StatusCode.PERMISSION_DENIED, "permission denied")
    assert await world.consent_kinds() == ["requested"]


async def test_open_session_carries_the_agents_enrolled_key(world: World) -> None:
    await world.grant()
    opened = await world.session()
    enrolled = world.agent.key.public_key()
    assert opened.agent_public_key == p.public_key_bytes(enrolled)
    # It is the key the agent's receipts verify against, as the engineer's client checks.
    answer = await world.run(opened.session.session_id, 1)
    key = p.load_public_key(opened.agent_public_key)
    p.verify(from_wire(answer.receipt), p.RECEIPT, {p.key_id(key): key})


async def test_no_session_without_an_active_grant(world: World) -> None:
    await world.request()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await world.session()
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no active grant" in (refused.value.details() or "")


async def test_someone_elses_session_is_denied(world: World) -> None:
    await world.grant()
    session_id = (await world.session()).session.session_id
    mallory = world.d.person("engineer", "mallory")
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await world.run(session_id, 1, person=mallory)
    assert denied.value.details() == "permission denied"
    assert not world.fake.calls


async def test_unreachable_agent(world: World) -> None:
    await world.grant()
    session_id = (await world.session()).session.session_id
    await world.fake.stop()
    with pytest.raises(grpc.aio.AioRpcError) as unreachable:
        await world.run(session_id, 1)
    assert (unreachable.value.code(), unreachable.value.details()) == (
        grpc.StatusCode.UNAVAILABLE, "agent web-1 is unreachable")
    shown = await world.records().GetSession(pb.GetSessionRequest(session_id=session_id))
    assert [e.outcome for e in shown.events] == ["error"]
    assert "UNAVAILABLE" in shown.events[0].detail


async def test_expiry_sweep_closes_sessions_once(world: World) -> None:
    grant = await world.grant()
    session_id = (await world.session()).session.session_id
    world.d.clock.now = grant.not_after + 1
    swept = await world.d.controller.sweeper.sweep()
    assert swept.grants == ("G-1",) and swept.sessions_closed == 1
    assert (await world.d.controller.sweeper.sweep()).grants == ()
    shown = await world.records().GetSession(pb.GetSessionRequest(session_id=session_id))
    assert shown.session.end_reason == "expired"
    assert await world.consent_kinds() == ["requested", "approved", "expired"]


async def test_closing_the_case_closes_its_sessions(world: World) -> None:
    await world.grant()
    session_id = (await world.session()).session.session_id
    cases = rpc.CaseServiceStub(world.d.channel(world.engineer))
    closed = await cases.CloseCase(pb.CloseCaseRequest(case_id=world.case_id, resolution="ok"))
    assert (closed.case.status, closed.case.resolution) == ("closed", "ok")
    shown = await world.records().GetSession(pb.GetSessionRequest(session_id=session_id))
    assert shown.session.end_reason == "case-closed"
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await cases.CloseCase(pb.CloseCaseRequest(case_id=world.case_id))
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_heartbeat_and_records(world: World) -> None:
    agents = (await world.admin.ListAgents(pb.ListAgentsRequest())).agents
    assert [(a.agent_id, a.address) for a in agents] == [
        ("web-1", f"127.0.0.1:{world.fake.port}")]
    assert agents[0].last_seen == int(world.d.clock.now)
    await world.grant()
    session_id = (await world.session()).session.session_id
    closed = await world.as_engineer().CloseSession(pb.CloseSessionRequest(session_id=session_id))
    assert closed.session.end_reason == "closed"
    records = world.records()
    listed = await records.ListSessions(pb.ListSessionsRequest(case_id=world.case_id))
    assert [s.session_id for s in listed.sessions] == [session_id]
    open_cases = await records.ListCases(pb.ListCasesRequest(status="open"))
    assert [c.case_id for c in open_cases.cases] == [world.case_id]
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await records.ListCases(pb.ListCasesRequest(status="pending"))
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await records.GetSession(pb.GetSessionRequest(session_id="S-000000000000"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_record_ids_that_no_database_holds_are_invalid_and_the_server_serves_on(
        world: World) -> None:
    records = world.records()
    for call in (records.ConsentLog(pb.ConsentLogRequest(case_id="C-1\x00")),
                 records.ConsentLog(pb.ConsentLogRequest(agent_id="web-1\x00")),
                 records.GetCase(pb.GetCaseRequest(case_id=world.case_id + "\x00")),
                 records.ConsentLog(pb.ConsentLogRequest(case_id="C-" + "9" * 80))):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    padded = await records.ConsentLog(pb.ConsentLogRequest(case_id=f"  {world.case_id} "))
    exact = await records.ConsentLog(pb.ConsentLogRequest(case_id=world.case_id))
    assert padded == exact  # a known case, trimmed as every other id is


async def test_text_that_would_drive_a_terminal_is_refused(world: World) -> None:
    cases = rpc.CaseServiceStub(world.d.channel(world.engineer))
    for title in ("slow\x1b[2A\x1b[G spoof", "slow\nsecond line", "slow \u202etxt.exe",
                  "slow\x9b31m"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await cases.OpenCase(pb.OpenCaseRequest(customer_id="acme", title=title))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "control characters" in (refused.value.details() or "")
    # A request signed by a client that did not check its reason: refused on arrival.
    key = world.engineer.key
    statement = p.AccessRequest(
        request_id="R-9", case_id=world.case_id, agent_id="web-1", engineer="alice",
        engineer_key=p.encode_key(key.public_key()), scopes=("diag.read",),
        duration_seconds=3600, reason="slow\x1b[2A\x1b[G Scopes diag.read",
        created_at=int(world.d.clock.now))
    signed = p.sign(p.ACCESS_REQUEST, statement.to_payload(), key)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await world.as_engineer().RequestAccess(pb.RequestAccessRequest(request=to_wire(signed)))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "reason holds a control character" in (refused.value.details() or "")
    kept = await cases.OpenCase(pb.OpenCaseRequest(customer_id="acme", title="lent — 遅い"))
    assert kept.case.title == "lent — 遅い"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await world.admin.AddCustomer(pb.AddCustomerRequest(customer=pb.Customer(
            customer_id="evil", name="Evil\x1b]0;pwned\x07", contract_start="2020-01-01",
            contract_end="2099-12-31")))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("inventory", [
    pb.AgentInventory(hostname="web-1", boot_time=float("nan")),
    pb.AgentInventory(hostname="web-1", boot_time=-1.0),
    pb.AgentInventory(hostname="web-1", cpu_count=-5),
    pb.AgentInventory(hostname="web-1", os="Linux\x1b[2J\x1b]0;pwned\x07"),
    pb.AgentInventory(hostname="web-1", machine="x" * 5000),
])
async def test_an_impossible_inventory_is_left_out_and_the_last_one_kept(
        world: World, inventory: pb.AgentInventory) -> None:
    report = rpc.AgentReportServiceStub(world.d.channel(world.agent))
    good = pb.AgentInventory(hostname="web-1", os="Linux 6.1", machine="x86_64", cpu_count=2,
                             memory_bytes=1 << 30, boot_time=1_700_000_000.0)
    await report.Heartbeat(pb.HeartbeatRequest(inventory=good))
    world.d.clock.now += 5
    # The heartbeat still counts (the agent stays online); the inventory is not kept.
    answered = await report.Heartbeat(pb.HeartbeatRequest(inventory=inventory))
    assert answered.server_time == world.d.clock.now
    [agent] = (await world.admin.ListAgents(pb.ListAgentsRequest())).agents
    assert agent.last_seen == int(world.d.clock.now)
    archive = await world.records().GetCustomerArchive(
        pb.GetCustomerArchiveRequest(customer_id="acme"))
    [system] = archive.systems
    assert (system.inventory.os, system.inventory.boot_time) == ("Linux 6.1", 1_700_000_000.0)


async def test_a_replayed_operation_is_refused_before_it_is_relayed(world: World) -> None:
    await world.grant()
    session_id = (await world.session()).session.session_id
    await world.run(session_id, 1)
    op = operation(world.engineer, session_id=session_id, seq=2, grant_id="G-1",
                   case_id=world.case_id)
    request = agent_pb2.ExecuteRequest(operation=to_wire(op))
    engineer = world.as_engineer()
    # The same signed operation five times at once, then once more: one is relayed.
    sent = await asyncio.gather(*(engineer.RunOperation(request) for _ in range(5)),
                                return_exceptions=True)
    assert sum(isinstance(s, agent_pb2.ExecuteResponse) for s in sent) == 1
    refused = [s for s in sent if isinstance(s, grpc.aio.AioRpcError)]
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await engineer.RunOperation(request)
    for error in [*refused, again.value]:
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "already relayed" in (error.details() or "")
    shown = await world.records().GetSession(pb.GetSessionRequest(session_id=session_id))
    assert [(e.seq, e.outcome) for e in shown.events] == [(1, "ok"), (2, "ok")]
    assert len(world.fake.calls) == 2


async def test_the_agents_reason_for_a_failure_reaches_the_engineer_inert(world: World) -> None:
    await world.grant()
    session_id = (await world.session()).session.session_id
    world.fake.refuse = grpc.StatusCode.INTERNAL
    world.fake.refusal = "rows changed since the preview: nothing was changed\x1b[2J"
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await world.run(session_id, 1)
    assert failed.value.details() == (
        "agent web-1 could not run the operation: rows changed since the preview: nothing "
        "was changed^[[2J")
    world.fake.refusal = "internal error"  # the agent said nothing more: nor does this
    with pytest.raises(grpc.aio.AioRpcError) as crashed:
        await world.run(session_id, 2)
    assert crashed.value.details() == "agent web-1 could not run the operation (INTERNAL)"


async def test_an_agent_enrolled_again_no_longer_answers_to_its_old_key(world: World) -> None:
    reply = await world.admin.CreateJoinToken(pb.CreateJoinTokenRequest(
        role="agent", subject="web-1", customer_id="acme"))
    key = certs.generate_key()
    enrolled = await enroll(JoinToken.decode(reply.token), key, agent_address="127.0.0.1:9")
    new = world.d.person("agent", "web-1", key, cert_pem=enrolled.certificate_pem)
    old = rpc.AgentReportServiceStub(world.d.channel(world.agent))  # still valid to TLS
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await old.Heartbeat(pb.HeartbeatRequest(address="127.0.0.1:1"))
    assert (refused.value.code(), refused.value.details()) == (
        grpc.StatusCode.PERMISSION_DENIED, "permission denied")
    with pytest.raises(grpc.aio.AioRpcError):
        await old.FetchRequests(pb.FetchRequestsRequest())
    await rpc.AgentReportServiceStub(world.d.channel(new)).Heartbeat(
        pb.HeartbeatRequest(address="127.0.0.1:2"))
    [agent] = (await world.admin.ListAgents(pb.ListAgentsRequest())).agents
    assert agent.address == "127.0.0.1:2"


async def test_a_token_for_another_role_is_refused_and_stays_unspent(world: World) -> None:
    reply = await world.admin.CreateJoinToken(pb.CreateJoinTokenRequest(
        role="agent", subject="web-2", customer_id="acme"))
    token = JoinToken.decode(reply.token)
    with pytest.raises(EnrollmentRefused, match="this join token is for an agent, not for "
                       "this program: use it with 'rmagent enroll --token'"):
        await enroll(token, certs.generate_key(), roles=("engineer", "auditor"))
    enrolled = await enroll(token, certs.generate_key(), roles=("agent",))  # still usable
    assert enrolled.identity.name == "web-2"
