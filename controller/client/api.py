"""Typed async client of the controller's gRPC API: one method per RPC.

Every method returns protobuf messages of ``rmaint.v1.controller_pb2`` (or a list of them)
and raises only :class:`~controller.client.errors.RpcError` subclasses for error statuses,
translated once, in :func:`controller.client.errors.translate`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import grpc

from controller.client.config import ClientConfig
from controller.client.errors import BadAnswer, Call, ConfigError, translate
from permissions import Envelope
from pki.files import reason
from pki.identity import Identity
from pki.tls import TlsFiles, secure_channel
from rmaint.envelopes import to_wire
from rmaint.v1 import agent_pb2, controller_pb2_grpc
from rmaint.v1 import controller_pb2 as pb

DEFAULT_TIMEOUT = 15.0
RECORDING_TIMEOUT = 120.0
# The controller gives the agent 30 s; diag.processes may sample for up to 10 s of that.
OPERATION_TIMEOUT = 45.0
# A streaming operation lasts as long as it says (a watch up to 24 h), plus the relay's slack.
STREAM_TIMEOUT = 24 * 3600.0 + 900.0
# Evidence arrives in chunks: any size up to this, joined in memory before it is checked.
MAX_EVIDENCE = 1024 * 1024 * 1024
EVIDENCE_TIMEOUT = 600.0

R = TypeVar("R")


class ControllerClient:
    """One mTLS channel to the controller. Use ``async with ControllerClient.open(cfg)``."""

    def __init__(self, channel: Any, *, address: str) -> None:
        self._channel = channel
        self.address = address
        self._admin = controller_pb2_grpc.AdminServiceStub(channel)
        self._cases = controller_pb2_grpc.CaseServiceStub(channel)
        self._engineer = controller_pb2_grpc.EngineerServiceStub(channel)
        self._records = controller_pb2_grpc.RecordsServiceStub(channel)
        self._audit = controller_pb2_grpc.AuditServiceStub(channel)
        self._renew_first: ClientConfig | None = None  # renewed on entry when past half-life

    @classmethod
    def open(cls, config: ClientConfig, *, now: float | None = None) -> ControllerClient:
        """A client for ``config``'s controller; ConfigError if its files are unusable."""
        config.check_certificate(time.time() if now is None else now)
        files = TlsFiles(config.key, config.cert, config.ca)
        try:
            channel = secure_channel(config.controller, files,
                                     Identity(config.trust_domain, "controller"))
        except OSError as exc:
            raise ConfigError(f"cannot read the identity files in {config.home}: {reason(exc)}") from exc
        client = cls(channel, address=config.controller)
        client._renew_first = config
        return client

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> ControllerClient:
        if self._renew_first is not None:
            from controller.client.renew import renew_if_due

            await renew_if_due(self._renew_first)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def _call(self, method: Callable[..., Awaitable[R]], request: Any, *, name: str,
                    timeout: float = DEFAULT_TIMEOUT) -> R:
        try:
            return await method(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            call = Call(exc.code().name, exc.details() or "", name, self.address)
            raise translate(call) from exc

    # AdminService

    async def add_customer(self, customer_id: str, name: str, contract_start: str,
                           contract_end: str) -> pb.Customer:
        customer = pb.Customer(customer_id=customer_id, name=name,
                               contract_start=contract_start, contract_end=contract_end)
        reply: pb.AddCustomerResponse = await self._call(self._admin.AddCustomer,
                                 pb.AddCustomerRequest(customer=customer), name="AddCustomer")
        return reply.customer

    async def list_customers(self) -> list[pb.Customer]:
        reply = await self._call(self._admin.ListCustomers, pb.ListCustomersRequest(),
                                 name="ListCustomers")
        return list(reply.customers)

    async def create_join_token(self, role: str, subject: str, *, customer_id: str = "",
                                ttl_seconds: int = 0) -> pb.CreateJoinTokenResponse:
        request = pb.CreateJoinTokenRequest(role=role, subject=subject, customer_id=customer_id,
                                            ttl_seconds=ttl_seconds)
        return await self._call(self._admin.CreateJoinToken, request, name="CreateJoinToken")

    async def list_agents(self, customer_id: str = "") -> list[pb.Agent]:
        reply = await self._call(self._admin.ListAgents,
                                 pb.ListAgentsRequest(customer_id=customer_id), name="ListAgents")
        return list(reply.agents)

    async def list_principals(self) -> list[pb.Principal]:
        reply = await self._call(self._admin.ListPrincipals, pb.ListPrincipalsRequest(),
                                 name="ListPrincipals")
        return list(reply.principals)

    async def add_lock(self, target: str, reason: str, duration_seconds: int = 0,
                       ) -> pb.LockRecord:
        request = pb.AddLockRequest(target=target, reason=reason,
                                    duration_seconds=duration_seconds)
        reply: pb.AddLockResponse = await self._call(self._admin.AddLock, request,
                                                     name="AddLock")
        return reply.lock

    async def remove_lock(self, lock_id: str) -> pb.LockRecord:
        reply: pb.RemoveLockResponse = await self._call(
            self._admin.RemoveLock, pb.RemoveLockRequest(lock_id=lock_id), name="RemoveLock")
        return reply.lock

    async def list_locks(self, include_inactive: bool = False) -> list[pb.LockRecord]:
        reply: pb.ListLocksResponse = await self._call(
            self._admin.ListLocks, pb.ListLocksRequest(include_inactive=include_inactive),
            name="ListLocks")
        return list(reply.locks)

    # CaseService

    async def open_case(self, customer_id: str, title: str, assignee: str = "") -> pb.Case:
        request = pb.OpenCaseRequest(customer_id=customer_id, title=title, assignee=assignee)
        reply: pb.OpenCaseResponse = await self._call(self._cases.OpenCase, request,
                                                      name="OpenCase")
        return reply.case

    async def close_case(self, case_id: str, resolution: str) -> pb.Case:
        request = pb.CloseCaseRequest(case_id=case_id, resolution=resolution)
        reply: pb.CloseCaseResponse = await self._call(self._cases.CloseCase, request,
                                                       name="CloseCase")
        return reply.case

    # EngineerService

    async def request_access(self, envelope: Envelope) -> pb.AccessRequest:
        request = pb.RequestAccessRequest(request=to_wire(envelope))
        reply: pb.RequestAccessResponse = await self._call(
            self._engineer.RequestAccess, request, name="RequestAccess")
        return reply.request

    async def list_my_requests(self, case_id: str = "") -> list[pb.AccessRequest]:
        reply = await self._call(self._engineer.ListMyRequests,
                                 pb.ListMyRequestsRequest(case_id=case_id), name="ListMyRequests")
        return list(reply.requests)

    async def open_session(self, case_id: str, agent_id: str,
                           grant_id: str = "") -> pb.OpenSessionResponse:
        request = pb.OpenSessionRequest(case_id=case_id, agent_id=agent_id, grant_id=grant_id)
        return await self._call(self._engineer.OpenSession, request, name="OpenSession")

    async def run_operation(self, operation: Envelope) -> agent_pb2.ExecuteResponse:
        request = agent_pb2.ExecuteRequest(operation=to_wire(operation))
        return await self._call(self._engineer.RunOperation, request, name="RunOperation",
                                timeout=OPERATION_TIMEOUT)

    async def run_operation_stream(self, operation: Envelope,
                                   ) -> AsyncIterator[agent_pb2.StreamPart]:
        """The parts of a streaming operation as they come, its answer (``done``) last."""
        request = agent_pb2.ExecuteRequest(operation=to_wire(operation))
        async for part in self._stream(self._engineer.RunOperationStream, request,
                                       name="RunOperationStream", timeout=STREAM_TIMEOUT):
            yield part

    async def close_session(self, session_id: str) -> pb.Session:
        reply: pb.CloseSessionResponse = await self._call(self._engineer.CloseSession,
                                 pb.CloseSessionRequest(session_id=session_id),
                                 name="CloseSession")
        return reply.session

    async def issue_shell_certificate(self, request: pb.IssueShellCertificateRequest,
                                      ) -> pb.IssueShellCertificateResponse:
        return await self._call(self._engineer.IssueShellCertificate, request,
                                name="IssueShellCertificate")

    # RecordsService

    async def list_cases(self, status: str = "", customer_id: str = "",
                         limit: int = 0) -> tuple[list[pb.Case], int]:
        """The newest cases (at most ``limit``; 0: the controller's default) and how many
        there are."""
        reply = await self._call(self._records.ListCases,
                                 pb.ListCasesRequest(status=status, customer_id=customer_id,
                                                     limit=limit),
                                 name="ListCases")
        return list(reply.cases), reply.total

    async def get_case(self, case_id: str) -> pb.GetCaseResponse:
        return await self._call(self._records.GetCase, pb.GetCaseRequest(case_id=case_id),
                                name="GetCase")

    async def list_sessions(self, case_id: str = "") -> list[pb.Session]:
        reply = await self._call(self._records.ListSessions,
                                 pb.ListSessionsRequest(case_id=case_id), name="ListSessions")
        return list(reply.sessions)

    async def get_session(self, session_id: str) -> pb.GetSessionResponse:
        return await self._call(self._records.GetSession,
                                pb.GetSessionRequest(session_id=session_id), name="GetSession")

    async def recording(self, session_id: str, index: int) -> bytes:
        """A session's recording, checked against the SHA-256 the controller gives for it."""
        chunks, digest = [], ""
        try:
            async for chunk in self._records.GetRecording(
                    pb.GetRecordingRequest(session_id=session_id, index=index),
                    timeout=RECORDING_TIMEOUT):
                chunks.append(chunk.data)
                digest = chunk.sha256
        except grpc.aio.AioRpcError as exc:
            call = Call(exc.code().name, exc.details() or "", "GetRecording", self.address)
            raise translate(call) from exc
        cast = b"".join(chunks)
        if hashlib.sha256(cast).hexdigest() != digest:
            raise BadAnswer("the recording received does not match its SHA-256")
        return cast

    async def bundle_chunks(self, case_id: str, sha256: str = "",
                            ) -> AsyncIterator[pb.BundleChunk]:
        """A case's support bundle in chunks, unchecked (the caller hashes what it keeps)."""
        request = pb.GetBundleRequest(case_id=case_id, sha256=sha256)
        async for chunk in self._stream(self._records.GetBundle, request, name="GetBundle",
                                        timeout=RECORDING_TIMEOUT):
            yield chunk

    async def _stream(self, method: Callable[..., Any], request: Any, *, name: str,
                      timeout: float) -> AsyncIterator[Any]:
        call = method(request, timeout=timeout)
        try:
            async for item in call:
                yield item
        except grpc.aio.AioRpcError as exc:
            raise translate(Call(exc.code().name, exc.details() or "", name,
                                 self.address)) from exc
        finally:
            call.cancel()  # nothing once it ended; else the server stops sending

    async def customer_archive(self, customer_id: str) -> pb.GetCustomerArchiveResponse:
        return await self._call(self._records.GetCustomerArchive,
                                pb.GetCustomerArchiveRequest(customer_id=customer_id),
                                name="GetCustomerArchive")

    async def consent_log(self, case_id: str = "", agent_id: str = "",
                          limit: int = 0) -> tuple[list[pb.ConsentEntry], int]:
        """The newest entries, oldest first (at most ``limit``; 0: the controller's
        default), and how many there are."""
        reply = await self._call(self._records.ConsentLog,
                                 pb.ConsentLogRequest(case_id=case_id, agent_id=agent_id,
                                                      limit=limit),
                                 name="ConsentLog")
        return list(reply.entries), reply.total

    # AuditService

    async def log_key(self) -> str:
        reply: pb.GetLogKeyResponse = await self._call(
            self._audit.GetLogKey, pb.GetLogKeyRequest(), name="GetLogKey")
        return reply.verifier_key

    async def log_checkpoint(self) -> bytes:
        reply: pb.GetCheckpointResponse = await self._call(
            self._audit.GetCheckpoint, pb.GetCheckpointRequest(), name="GetCheckpoint")
        return reply.checkpoint

    async def evidence(self, request: pb.GetEvidenceRequest, *,
                       limit: int = MAX_EVIDENCE) -> bytes:
        """The evidence file's bytes (see controller.audit.evidence), unverified, joined from
        the controller's chunks: BadAnswer when the stream ends before the size and SHA-256
        its first chunk announced, or when the file would exceed ``limit`` bytes."""
        parts: list[bytes] = []
        size, digest, received = -1, "", 0
        async for chunk in self._stream(self._audit.GetEvidence, request, name="GetEvidence",
                                        timeout=EVIDENCE_TIMEOUT):
            if size < 0:
                size, digest = int(chunk.total_size), chunk.sha256
                if size > limit:
                    raise BadAnswer(f"the evidence is {size} bytes, over this client's limit "
                                    f"of {limit} bytes")
            received += len(chunk.data)
            if received > size:
                raise BadAnswer(f"the controller sent more evidence than the {size} bytes it "
                                f"announced")
            parts.append(chunk.data)
        if size < 0:
            raise BadAnswer("the controller ended the evidence stream without sending any")
        if received != size:
            raise BadAnswer(f"the evidence stream ended early: {received} of {size} bytes "
                            f"received")
        data = b"".join(parts)
        if hashlib.sha256(data).hexdigest() != digest:
            raise BadAnswer("the evidence received does not match its SHA-256")
        return data
