"""Exceptions of the controller, and the one table that turns them into gRPC statuses.

    ControllerError                 base of everything the controller raises on purpose
    ├── ConfigError                 rmctl.toml's [controller] section is missing or wrong
    ├── DeploymentExists            init refused: the home (or database) already holds one
    ├── InvalidArgument             malformed input in an RPC             INVALID_ARGUMENT
    ├── NotFound                    a named customer, case, session...    NOT_FOUND
    ├── AlreadyExists               an id that is already taken           ALREADY_EXISTS
    ├── FailedPrecondition          refused by a business rule            FAILED_PRECONDITION
    ├── PermissionDenied            a security refusal, detail logged     PERMISSION_DENIED
    ├── EnrollmentRefused           unknown, used or expired join token   UNAUTHENTICATED
    ├── AgentUnreachable            the agent could not be reached        UNAVAILABLE
    ├── AgentTimedOut               the agent did not answer in time      DEADLINE_EXCEEDED
    ├── AgentFailed                 the agent answered with an error      UNAVAILABLE
    └── StoreError                  the database failed
        ├── StoreUnavailable        cannot connect, locked, I/O error     UNAVAILABLE
        └── StoreConflict           a concurrent change collided          ABORTED

Security refusals look the same from outside (``"permission denied"``, ``"enrollment
refused"``); the exception's own message is the precise reason, for the logs only.
"""

from __future__ import annotations

import grpc


class ControllerError(Exception):
    """Base of every error the controller raises on purpose."""


class ConfigError(ControllerError):
    """The controller's configuration is missing or holds a bad value."""


class DeploymentExists(ControllerError):
    """``init_deployment`` found an existing deployment and touched nothing."""


class InvalidArgument(ControllerError):
    """A request field that is malformed; the message says which and why."""


class NotFound(ControllerError):
    """A referenced object does not exist."""


class AlreadyExists(ControllerError):
    """An object with that id exists already."""


class FailedPrecondition(ControllerError):
    """The request is well-formed but a business rule refuses it now."""


class PermissionDenied(ControllerError):
    """A security refusal; the message is the precise reason and is never sent."""


class EnrollmentRefused(ControllerError):
    """A join token that is unknown, used or expired; the reason is never sent."""


class AgentUnreachable(ControllerError):
    """The agent's server could not be reached; the message names the agent."""


class AgentTimedOut(ControllerError):
    """The agent did not answer within the relay deadline."""


class AgentFailed(ControllerError):
    """The agent answered with an unexpected error; the message names the agent."""


class StoreError(ControllerError):
    """The database failed."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or is locked."""


class StoreConflict(StoreError):
    """A concurrent change violated a constraint; retrying may succeed."""


# Public message None: the exception's own message is safe and useful to send.
STATUS: dict[type[ControllerError], tuple[grpc.StatusCode, str | None]] = {
    InvalidArgument: (grpc.StatusCode.INVALID_ARGUMENT, None),
    NotFound: (grpc.StatusCode.NOT_FOUND, None),
    AlreadyExists: (grpc.StatusCode.ALREADY_EXISTS, None),
    FailedPrecondition: (grpc.StatusCode.FAILED_PRECONDITION, None),
    PermissionDenied: (grpc.StatusCode.PERMISSION_DENIED, "permission denied"),
    EnrollmentRefused: (grpc.StatusCode.UNAUTHENTICATED, "enrollment refused"),
    AgentUnreachable: (grpc.StatusCode.UNAVAILABLE, None),
    AgentTimedOut: (grpc.StatusCode.DEADLINE_EXCEEDED, None),
    AgentFailed: (grpc.StatusCode.UNAVAILABLE, None),
    StoreUnavailable: (grpc.StatusCode.UNAVAILABLE, "the controller's database is unavailable"),
    StoreConflict: (grpc.StatusCode.ABORTED, "a concurrent change collided; retry"),
}
_FALLBACK = (grpc.StatusCode.INTERNAL, "internal error")


def status_of(exc: ControllerError) -> tuple[grpc.StatusCode, str]:
    """The status code and the message a caller may see for ``exc``."""
    for kind, (code, public) in STATUS.items():
        if isinstance(exc, kind):
            return code, str(exc) if public is None else public
    return _FALLBACK
