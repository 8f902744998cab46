"""RenewalService: a new certificate for the same key and identity as the caller's.

Agents and engineers renew before their certificate expires (the agent daemon at half its
life, ``rmctl`` before a command past half-life), so nothing stops and grants, which pin
the engineer's key, stay valid. The caller proves it holds the key by the CSR's
signature; the CSR's key must be the calling certificate's key and the one enrolled for
that identity, and the identity is the calling certificate's, never the CSR's. A locked
agent or engineer key is refused. Every renewal is logged.
"""

from __future__ import annotations

import grpc
from cryptography import x509
from sqlalchemy.engine import Connection

from controller.audit.records import Event
from controller.authz import Caller, current_caller
from controller.errors import PermissionDenied
from controller.logs import log_event
from controller.services._common import Deps
from controller.services.enrollment import _csr_key
from controller.services.locks import refuse_locked
from controller.store import auditlog, directory
from controller.store.schema import principals
from permissions import key_id
from permissions.locks import Subject
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc

RENEWABLE = ("agent", "engineer")


class RenewalService(controller_pb2_grpc.RenewalServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def RenewCertificate(self, request: pb.RenewCertificateRequest,
                               context: grpc.aio.ServicerContext,
                               ) -> pb.RenewCertificateResponse:
        caller = current_caller()
        if caller.identity is None or caller.role not in RENEWABLE:
            raise PermissionDenied(f"{caller} may not renew a certificate")
        public_key = _csr_key(bytes(request.csr_pem))
        if key_id(public_key) != caller.key_id:
            raise PermissionDenied(f"{caller} asked to renew for another key "
                                   f"({key_id(public_key)}) than its certificate's")
        now = self._deps.clock()
        await self._deps.store.write(_record_renewal, caller, now)  # checked and recorded first
        pem = self._deps.authority.certify(public_key, caller.identity, now=now)
        not_after = x509.load_pem_x509_certificate(pem).not_valid_after_utc.timestamp()
        log_event("certificate.renewed", identity=caller.identity.uri, key_id=caller.key_id,
                  not_after=not_after)
        return pb.RenewCertificateResponse(certificate_pem=pem, not_after=not_after)


def _record_renewal(conn: Connection, caller: Caller, now: float) -> None:
    """Refuse as :func:`_renewable` does; else record the renewal in the audit log."""
    _renewable(conn, caller, now)
    assert caller.identity is not None
    auditlog.append(conn, Event("certificate.renewed", now, "", caller.identity.uri,
                                details={"key_id": caller.key_id}))


def _renewable(conn: Connection, caller: Caller, now: float) -> None:
    """PermissionDenied unless the caller is enrolled with this key and not locked."""
    if caller.role == "agent":
        agent = directory.get_agent(conn, caller.name)
        if agent is None or agent.key_fingerprint != caller.key_id:
            raise PermissionDenied(f"{caller} is not enrolled with key {caller.key_id}")
        refuse_locked(conn, Subject(agent_id=caller.name), now, "certificate renewal")
        return
    enrolled = conn.execute(
        principals.select().where(principals.c.role == caller.role,
                                  principals.c.name == caller.name)).first()
    if enrolled is None or enrolled._mapping["key_fingerprint"] != caller.key_id:
        raise PermissionDenied(f"{caller} is not enrolled with key {caller.key_id}")
    refuse_locked(conn, Subject(engineer_key_id=caller.key_id), now, "certificate renewal")
