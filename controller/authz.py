"""Authentication and authorization of every RPC, in one interceptor with one table.

The verified TLS peer certificate becomes an immutable :class:`Caller` once, before the
method runs; :data:`ROLES` maps each full method name to the roles that may call it.
A method missing from the table is refused. Refusals are uniform outside
(``UNAUTHENTICATED "unauthenticated"`` or ``PERMISSION_DENIED "permission denied"``) and
precise in the log.

The same wrapper is the controller's error boundary: a :class:`ControllerError` raised by
a method becomes its status through the one table in :mod:`controller.errors`; anything
else becomes ``INTERNAL "internal error"`` with the traceback logged.
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from controller.errors import ControllerError, status_of
from controller.logs import log_event
from permissions import key_id
from pki.identity import Identity
from pki.tls import peer_identity
from rmaint import handlers

ANY_ROLE = "*"  # any verified peer of this trust domain
NO_IDENTITY = "-"  # callable without a client certificate (the enrollment port asks for none)

_ADMIN = frozenset({"admin"})
_STAFF = frozenset({"admin", "engineer"})
_ENGINEER = frozenset({"engineer"})
_READERS = frozenset({"admin", "engineer", "auditor"})
_AGENT = frozenset({"agent"})
_AUDITORS = frozenset({"admin", "auditor"})  # the log's evidence: read-only
_HEALTH = frozenset({ANY_ROLE, NO_IDENTITY})

ROLES: dict[str, frozenset[str]] = {
    "/rmaint.v1.EnrollmentService/Enroll": frozenset({NO_IDENTITY}),
    "/rmaint.v1.AdminService/AddCustomer": _ADMIN,
    "/rmaint.v1.AdminService/ListCustomers": _ADMIN,
    "/rmaint.v1.AdminService/CreateJoinToken": _ADMIN,
    "/rmaint.v1.AdminService/ListAgents": _ADMIN,
    "/rmaint.v1.AdminService/ListPrincipals": _ADMIN,
    "/rmaint.v1.AdminService/AddLock": _ADMIN,
    "/rmaint.v1.AdminService/RemoveLock": _ADMIN,
    "/rmaint.v1.AdminService/ListLocks": _ADMIN,
    "/rmaint.v1.CaseService/OpenCase": _STAFF,
    "/rmaint.v1.CaseService/CloseCase": _STAFF,
    "/rmaint.v1.EngineerService/RequestAccess": _ENGINEER,
    "/rmaint.v1.EngineerService/ListMyRequests": _ENGINEER,
    "/rmaint.v1.EngineerService/OpenSession": _ENGINEER,
    "/rmaint.v1.EngineerService/RunOperation": _ENGINEER,
    "/rmaint.v1.EngineerService/RunOperationStream": _ENGINEER,
    "/rmaint.v1.EngineerService/CloseSession": _ENGINEER,
    "/rmaint.v1.EngineerService/IssueShellCertificate": _ENGINEER,
    "/rmaint.v1.RecordsService/ListCases": _READERS,
    "/rmaint.v1.RecordsService/GetCase": _READERS,
    "/rmaint.v1.RecordsService/ListSessions": _READERS,
    "/rmaint.v1.RecordsService/GetSession": _READERS,
    "/rmaint.v1.RecordsService/ConsentLog": _READERS,
    "/rmaint.v1.RecordsService/GetCustomerArchive": _READERS,
    "/rmaint.v1.RecordsService/GetRecording": _READERS,
    "/rmaint.v1.RecordsService/GetBundle": _READERS,
    "/rmaint.v1.AuditService/GetLogKey": _AUDITORS,
    "/rmaint.v1.AuditService/GetCheckpoint": _AUDITORS,
    "/rmaint.v1.AuditService/GetEvidence": _AUDITORS,
    "/rmaint.v1.AuditService/Reconcile": _AUDITORS,
    "/rmaint.v1.AgentReportService/FetchRequests": _AGENT,
    "/rmaint.v1.AgentReportService/ReportConsent": _AGENT,
    "/rmaint.v1.AgentReportService/Heartbeat": _AGENT,
    "/rmaint.v1.AgentReportService/ReportInspection": _AGENT,
    "/rmaint.v1.AgentReportService/Witness": _AGENT,
    "/rmaint.v1.AgentReportService/CosignCheckpoint": _AGENT,
    "/rmaint.v1.AgentReportService/Connect": _AGENT,
    "/rmaint.v1.AgentReportService/ShellLink": _AGENT,
    "/rmaint.v1.AgentReportService/FetchLocks": _AGENT,
    "/rmaint.v1.RenewalService/RenewCertificate": frozenset({"agent", "engineer"}),
    "/grpc.health.v1.Health/Check": _HEALTH,
    "/grpc.health.v1.Health/Watch": _HEALTH,
    "/grpc.health.v1.Health/List": _HEALTH,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": frozenset({ANY_ROLE}),
}


@dataclass(frozen=True)
class Caller:
    """Who is calling, from the certificate TLS verified; None fields when there was none."""

    identity: Identity | None
    public_key: ec.EllipticCurvePublicKey | None = None

    @property
    def name(self) -> str:
        return self.identity.name if self.identity else ""

    @property
    def role(self) -> str:
        return self.identity.role if self.identity else ""

    @functools.cached_property
    def key_id(self) -> str:
        """``sha256:<hex>`` of the certificate's key, as grants and envelopes name it."""
        return key_id(self.public_key) if self.public_key is not None else ""

    def __str__(self) -> str:
        return self.identity.uri if self.identity else "anonymous"


@dataclass(frozen=True)
class Refusal:
    code: grpc.StatusCode
    message: str
    reason: str


_CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("rmaint_caller")


def current_caller() -> Caller:
    """The caller of the RPC being served; only valid inside a method behind the interceptor."""
    try:
        return _CALLER.get()
    except LookupError:
        raise RuntimeError("no caller: the method was not reached through the interceptor") \
            from None


def authorize(method: str, identity: Identity | None, trust_domain: str,
              table: dict[str, frozenset[str]] = ROLES) -> Refusal | None:
    """None if ``identity`` may call ``method``, else why not. Pure; unknown => refused."""
    roles = table.get(method, frozenset())
    if NO_IDENTITY in roles:
        return None
    if identity is None:
        return Refusal(grpc.StatusCode.UNAUTHENTICATED, "unauthenticated",
                       "no usable client identity")
    if identity.trust_domain != trust_domain:
        return Refusal(grpc.StatusCode.UNAUTHENTICATED, "unauthenticated",
                       f"foreign trust domain {identity.trust_domain}")
    if not roles:
        return Refusal(grpc.StatusCode.PERMISSION_DENIED, "permission denied",
                       "method not in the authorization table")
    if ANY_ROLE in roles or identity.role in roles:
        return None
    return Refusal(grpc.StatusCode.PERMISSION_DENIED, "permission denied",
                   f"role {identity.role} may not call this method")


def peer_caller(context: grpc.aio.ServicerContext) -> Caller:
    """The caller from the TLS peer certificate (identity via ``pki.tls.peer_identity``).

    Callers are remembered by the exact certificate bytes TLS verified: the same bytes
    always give the same identity and key, and parsing them costs more than the rest of
    a fast call. TLS checks the certificate's chain and validity on every connection.
    """
    pems = context.auth_context().get("x509_pem_cert") or []
    if len(pems) != 1:
        return Caller(None)
    cached = _CALLERS.get(pems[0])
    if cached is not None:
        return cached
    caller = _caller_of(context, pems[0])
    if len(_CALLERS) >= _CALLERS_KEPT:
        _CALLERS.clear()  # rare: that many distinct certificates; start over, stay bounded
    _CALLERS[pems[0]] = caller
    return caller


def _caller_of(context: grpc.aio.ServicerContext, pem: bytes) -> Caller:
    identity = peer_identity(context)
    if identity is None:
        return Caller(None)
    key = x509.load_pem_x509_certificate(pem).public_key()
    caller = Caller(identity, key if isinstance(key, ec.EllipticCurvePublicKey) else None)
    _ = caller.key_id  # computed once, here
    return caller


_CALLERS_KEPT = 4096
_CALLERS: dict[bytes, Caller] = {}


MAX_LOGGED_METHOD = 200  # a name any caller picks: a long one must not fill the log's disk


class AuthzInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # untyped base
    """Checks :data:`ROLES` before every method and translates its domain errors."""

    def __init__(self, trust_domain: str, table: dict[str, frozenset[str]] | None = None) -> None:
        self._trust_domain = trust_domain
        self._table = ROLES if table is None else table
        # method -> (the server's handler, its guarded wrapper); the server hands out the
        # same handler object for a method every time, so the wrapper is built once.
        self._guarded: dict[str, tuple[Any, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method: str = details.method
        handler = await continuation(details)
        if handler is None:
            if method in self._table:
                return None  # known but not served here: UNIMPLEMENTED
            return self._wrap(method, grpc.unary_unary_rpc_method_handler(_unknown))
        cached = self._guarded.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        guarded = self._wrap(method, handler)
        self._guarded[method] = (handler, guarded)
        return guarded

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        async def admit(context: grpc.aio.ServicerContext) -> None:
            await self._admit(method, context)

        async def boundary(exc: Exception, context: grpc.aio.ServicerContext) -> None:
            await _abort_for(exc, method, context)
        return handlers.guarded(handler, admit, boundary)

    async def _admit(self, method: str, context: grpc.aio.ServicerContext) -> None:
        caller = peer_caller(context)
        refusal = authorize(method, caller.identity, self._trust_domain, self._table)
        if refusal is not None:
            log_event("rpc.refused", logging.WARNING, method=method[:MAX_LOGGED_METHOD],
                      caller=str(caller),
                      peer=context.peer(), code=refusal.code.name, reason=refusal.reason)
            await context.abort(refusal.code, refusal.message)
        _CALLER.set(caller)


async def _unknown(request: Any, context: grpc.aio.ServicerContext) -> None:
    raise AssertionError("unreachable: unknown methods are refused before this runs")


_GENERATED_UNIMPLEMENTED = "Method not implemented!"  # what grpc's generated bases raise


async def _abort_for(exc: Exception, method: str, context: grpc.aio.ServicerContext) -> None:
    """Abort the RPC with the status for ``exc`` (re-raising aborts already under way)."""
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    caller = str(_CALLER.get(Caller(None)))
    if isinstance(exc, ControllerError):
        code, message = status_of(exc)
        log_event("rpc.failed", logging.WARNING, method=method, caller=caller,
                  code=code.name, reason=str(exc))
        await context.abort(code, message)
    if isinstance(exc, NotImplementedError) and str(exc) == _GENERATED_UNIMPLEMENTED:
        # A method of a generated servicer base that nobody implemented; any other
        # NotImplementedError is a defect, logged as a crash below.
        log_event("rpc.failed", logging.WARNING, method=method, caller=caller,
                  code="UNIMPLEMENTED", reason="method not implemented")
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "method not implemented")
    log_event("rpc.crashed", logging.ERROR, exc_info=True, method=method, caller=caller)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")
