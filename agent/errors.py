"""The agent's exceptions, and the one table that turns them into gRPC statuses.

    AgentError
    ├── Refused               the agent will not run it (outward: "permission denied")
    │   └── Cancelled         it was running when its grant was revoked
    ├── LogUnavailable        the operation log cannot be written: fail closed
    ├── StateUnavailable      the local state database cannot be used
    ├── RevocationNotSaved    a revocation in force in memory, its durable write still pending
    ├── BadInput              malformed envelope or parameters (message is shown)
    │   └── InvalidParams     parameters an operation does not accept
    ├── OperationFailed       the operation ran and failed, or overran its limits
    │   └── NotPossibleNow    not in the state things are in now (FAILED_PRECONDITION)
    ├── ConsentRejected       a local approve/deny/revoke that cannot be accepted
    ├── NotFound              a local call names something the agent does not know
    └── StartupError          the daemon cannot start (certificates, socket in use, ...)

Refusals look the same from outside; their precise reason travels in ``reason``
and ``detail`` for the agent's own log.
"""

from __future__ import annotations

import grpc

REFUSED_TEXT = "permission denied"
UNRECORDABLE_TEXT = "operation refused: the agent cannot record it"


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class Refused(AgentError):
    """The operation is refused; ``reason`` is the audit reason (e.g. ``grant-expired``)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Cancelled(Refused):
    """The operation was cancelled because its grant was revoked."""

    def __init__(self, detail: str = "grant revoked while running") -> None:
        super().__init__("cancelled", detail)


class LogUnavailable(AgentError):
    """The operation log cannot be written; nothing may run."""


class StateUnavailable(AgentError):
    """The local state database cannot be read or written."""


class RevocationNotSaved(AgentError):
    """A revocation took effect now but could not be stored yet; the agent keeps retrying.

    The message says exactly that to the customer: until it is saved, a restart of the
    agent would forget it.
    """


class BadInput(AgentError):
    """Input that is not well-formed; the message is safe to show the caller."""


class InvalidParams(BadInput):
    """Parameters an operation does not accept."""


class OperationFailed(AgentError):
    """The operation ran and failed; the message is safe to show the caller."""


class NotPossibleNow(OperationFailed):
    """The operation cannot run in the state things are in now (a change that is not
    pending, rows changed since the preview); nothing was done. Not the agent's fault."""


class ConsentRejected(AgentError):
    """A local consent decision that the agent cannot accept; the message says why."""


class NotFound(AgentError):
    """A local call names a request or grant the agent does not know."""


class StartupError(AgentError):
    """The daemon cannot start; the message says what to fix."""


# Outward status and text per error; ``None`` text means "show the error's own message".
# Order matters: subclasses come before their bases.
STATUS_TABLE: tuple[tuple[type[AgentError], grpc.StatusCode, str | None], ...] = (
    (Refused, grpc.StatusCode.PERMISSION_DENIED, REFUSED_TEXT),
    (LogUnavailable, grpc.StatusCode.UNAVAILABLE, UNRECORDABLE_TEXT),
    (StateUnavailable, grpc.StatusCode.UNAVAILABLE, "the agent's state is unavailable"),
    (RevocationNotSaved, grpc.StatusCode.UNAVAILABLE, None),
    (BadInput, grpc.StatusCode.INVALID_ARGUMENT, None),
    (NotPossibleNow, grpc.StatusCode.FAILED_PRECONDITION, None),
    (OperationFailed, grpc.StatusCode.INTERNAL, None),
    (ConsentRejected, grpc.StatusCode.FAILED_PRECONDITION, None),
    (NotFound, grpc.StatusCode.NOT_FOUND, None),
)


def status_of(error: AgentError) -> tuple[grpc.StatusCode, str]:
    """The gRPC status code and message for ``error``."""
    for kind, code, text in STATUS_TABLE:
        if isinstance(error, kind):
            return code, text if text is not None else str(error)
    return grpc.StatusCode.INTERNAL, "internal error"
