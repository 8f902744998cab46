"""Authorization of every RPC the agent serves: one interceptor, one table.

The table maps each full method name to who may call it: a set of roles (the caller's
identity from its verified mTLS certificate), or ``LOCAL`` for the customer's own
service, which is served only on the Unix socket whose file mode is its access control.
A method missing from the table is denied. Callers learn only "unauthenticated" or
"permission denied"; the precise reason goes to the log.

The caller's identity is remembered by the exact certificate bytes TLS verified (the
same bytes always name the same identity; TLS checks chain and validity on every
connection), and each method's guarded handler is built once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import grpc

from agent.errors import REFUSED_TEXT
from pki.identity import ROLES, Identity
from pki.tls import peer_identity
from rmaint import handlers

UNAUTHENTICATED_TEXT = "unauthenticated"
LOCAL: Final = "local"
ANY_PEER: frozenset[str] = frozenset(ROLES)
CONTROLLER: frozenset[str] = frozenset({"controller"})

Rule = frozenset[str] | str

_HEALTH = "/grpc.health.v1.Health/"
_REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/"
_LOCAL = "/rmaint.v1.AgentLocalService/"

TABLE: Mapping[str, Rule] = {
    "/rmaint.v1.AgentService/Execute": CONTROLLER,
    "/rmaint.v1.AgentService/ExecuteStream": CONTROLLER,
    "/rmaint.v1.AgentService/Shell": CONTROLLER,
    "/rmaint.v1.AgentService/ApplyLocks": CONTROLLER,
    _HEALTH + "Check": ANY_PEER,
    _HEALTH + "Watch": ANY_PEER,
    _HEALTH + "List": ANY_PEER,
    _REFLECTION + "ServerReflectionInfo": ANY_PEER,
    **{_LOCAL + name: LOCAL for name in (
        "ListRequests", "Approve", "Deny", "Revoke", "ListGrants", "Status",
        "ListEngineerKeys", "ForgetEngineerKeys", "ListShells", "WatchShell", "KillShell",
        "ListChanges", "ApproveChange", "DenyChange", "Sync")},
}

_log = logging.getLogger("agent.authz")


class Refusal(Exception):
    """Why a call is refused: the outward status, and the precise reason for the log."""

    def __init__(self, code: grpc.StatusCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


IDENTITIES_KEPT = 1024  # distinct peer certificates remembered; then start over
_identities: dict[bytes, Identity | None] = {}
_identities_lock = threading.Lock()


def caller_identity(context: grpc.aio.ServicerContext) -> Identity | None:
    """``pki.tls.peer_identity(context)``, parsed once per distinct certificate."""
    pems = context.auth_context().get("x509_pem_cert") or []
    if len(pems) != 1:
        return None
    pem = pems[0]
    try:
        return _identities[pem]
    except KeyError:
        pass
    identity = peer_identity(context)
    with _identities_lock:
        if len(_identities) >= IDENTITIES_KEPT:
            _identities.clear()
        _identities[pem] = identity
    return identity


def check(rule: Rule | None, *, transport: str, context: grpc.aio.ServicerContext,
          trust_domain: str) -> str:
    """The caller's name for the log if ``rule`` admits it; raise Refusal otherwise."""
    if rule is None:
        raise Refusal(grpc.StatusCode.PERMISSION_DENIED, "method not in the authorization table")
    if transport == LOCAL:
        if rule == LOCAL or rule == ANY_PEER:
            return "local"
        raise Refusal(grpc.StatusCode.PERMISSION_DENIED, "not served on the local socket")
    if rule == LOCAL:
        raise Refusal(grpc.StatusCode.PERMISSION_DENIED, "local-only method over the network")
    identity = caller_identity(context)
    if identity is None:
        raise Refusal(grpc.StatusCode.UNAUTHENTICATED, "no verified SPIFFE identity")
    if identity.trust_domain != trust_domain:
        raise Refusal(grpc.StatusCode.UNAUTHENTICATED,
                      f"trust domain {identity.trust_domain} is not {trust_domain}")
    if identity.role not in rule:
        raise Refusal(grpc.StatusCode.PERMISSION_DENIED, f"role {identity.role} not allowed")
    return identity.uri


class Authorizer(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Checks every call against TABLE before its handler runs.

    ``transport`` is ``"mtls"`` for the network server or ``LOCAL`` for the Unix socket.
    """

    def __init__(self, *, trust_domain: str, transport: str,
                 table: Mapping[str, Rule] = TABLE) -> None:
        self._trust_domain = trust_domain
        self._transport = transport
        self._table = table
        # method -> (the server's handler, its guarded wrapper); the server hands out the
        # same handler object for a method every time, so the wrapper is built once.
        self._guarded: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = details.method
        handler = await continuation(details)
        rule = self._table.get(method)
        if handler is None or rule is None:
            return _refusing_handler(method)
        cached = self._guarded.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        guarded = handlers.guarded(handler, self._guard(method, rule))
        self._guarded[method] = (handler, guarded)
        return guarded

    def _guard(self, method: str, rule: Rule) -> Callable[[Any], Awaitable[None]]:
        async def guard(context: grpc.aio.ServicerContext) -> None:
            try:
                caller = check(rule, transport=self._transport, context=context,
                               trust_domain=self._trust_domain)
            except Refusal as refusal:
                await _refuse(context, method, refusal)
            else:
                if _log.isEnabledFor(logging.DEBUG):
                    _log.debug("call authorized", extra={"fields": {"method": method,
                                                                    "caller": caller}})
        return guard


MAX_LOGGED_METHOD = 200  # a name any caller picks: a long one must not fill the log's disk


async def _refuse(context: grpc.aio.ServicerContext, method: str, refusal: Refusal) -> None:
    identity = caller_identity(context)
    _log.warning("call refused", extra={"fields": {
        "method": method[:MAX_LOGGED_METHOD], "reason": refusal.reason,
        "caller": identity.uri if identity else None, "peer": context.peer()}})
    text = UNAUTHENTICATED_TEXT if refusal.code == grpc.StatusCode.UNAUTHENTICATED \
        else REFUSED_TEXT
    await context.abort(refusal.code, text)


def _refusing_handler(method: str) -> grpc.RpcMethodHandler:
    async def refuse(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await _refuse(context, method, Refusal(grpc.StatusCode.PERMISSION_DENIED,
                                               "method not in the authorization table"))
        return b""
    return grpc.unary_unary_rpc_method_handler(refuse)
