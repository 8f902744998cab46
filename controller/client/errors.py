"""Exceptions of the client library, and the one table that turns gRPC statuses into them.

    ClientError                 every error a command reports as one line
    ├── ConfigError             the home is missing, unreadable or damaged
    ├── SessionStateError       no current session, or a damaged session state file
    ├── InputError              a value given by the user that cannot be sent
    ├── LoginError              enrollment was refused or its answer is unusable
    ├── BadAnswer               no receipt, a receipt for something else, or a result not JSON
    └── RpcError                the controller answered a call with an error status
        ├── Unreachable         UNAVAILABLE: no connection (or the agent is unreachable)
        ├── TimedOut            DEADLINE_EXCEEDED
        ├── Unauthenticated     UNAUTHENTICATED
        ├── PermissionDenied    PERMISSION_DENIED (uniform; the reason is in the server's logs)
        ├── InvalidArgument     INVALID_ARGUMENT
        ├── NotFound            NOT_FOUND
        ├── AlreadyExists       ALREADY_EXISTS
        ├── Refused             FAILED_PRECONDITION (e.g. outside the service contract)
        └── ServerError         anything else

The message of every exception is written for the person at the terminal: the CLI prints
``error: <message>`` and nothing else. This module does not import grpc: the table is
keyed by status code names, so it can be checked without a channel.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


class ClientError(Exception):
    """Base of every error raised by ``controller.client``."""


class ConfigError(ClientError):
    """The home directory or its rmctl.toml cannot be used."""


class SessionStateError(ClientError):
    """The local session state is missing or damaged."""


class InputError(ClientError):
    """A value given by the user is invalid before anything is sent."""


class LoginError(ClientError):
    """``rmctl login`` could not obtain a usable certificate."""


class BadAnswer(ClientError):
    """The answer to an operation cannot be trusted as the agent's account of it."""


class RpcError(ClientError):
    """The controller answered with an error status; ``code`` is the status name."""

    def __init__(self, message: str, *, code: str, method: str, details: str) -> None:
        super().__init__(message)
        self.code = code
        self.method = method
        self.details = details


class Unreachable(RpcError):
    """UNAVAILABLE."""


class TimedOut(RpcError):
    """DEADLINE_EXCEEDED."""


class Unauthenticated(RpcError):
    """UNAUTHENTICATED."""


class PermissionDenied(RpcError):
    """PERMISSION_DENIED."""


class InvalidArgument(RpcError):
    """INVALID_ARGUMENT."""


class NotFound(RpcError):
    """NOT_FOUND."""


class AlreadyExists(RpcError):
    """ALREADY_EXISTS."""


class Refused(RpcError):
    """FAILED_PRECONDITION."""


class ServerError(RpcError):
    """Any other status."""


RUN_OPERATION = "RunOperation"
# Messages the controller sends on purpose with UNAVAILABLE or DEADLINE_EXCEEDED (about an
# agent or its own database); anything else under these codes comes from the transport and
# means the controller itself could not be reached or did not answer.
_FROM_CONTROLLER = re.compile(r"(agent \S+ |operation refused: |the controller's ).+")


@dataclass(frozen=True)
class Call:
    """What is known about a failed call: status name, server details, method, address."""

    code: str
    details: str
    method: str
    address: str


def _unavailable(call: Call) -> str:
    if _FROM_CONTROLLER.fullmatch(call.details):
        return call.details
    return f"controller at {call.address} is unreachable"


def _denied(call: Call) -> str:
    # Not who refused: the controller refuses some operations itself (locks) before the
    # agent sees them, and outward every refusal reads the same; the logs say which.
    return "permission denied"


def _timed_out(call: Call) -> str:
    if _FROM_CONTROLLER.fullmatch(call.details):
        return call.details
    if call.method == RUN_OPERATION:
        return "the operation did not finish in time"
    return f"controller at {call.address} did not answer in time"


def _unauthenticated(call: Call) -> str:
    return ("unauthenticated: the controller did not accept this identity "
            "(ask for a new token and run 'rmctl login --token T')")


def _details(fallback: str) -> Callable[[Call], str]:
    return lambda call: call.details or fallback


def _other(call: Call) -> str:
    detail = f": {call.details}" if call.details else ""
    return f"controller error {call.code}{detail}"


# The one translation of gRPC statuses into client exceptions and messages.
TABLE: dict[str, tuple[type[RpcError], Callable[[Call], str]]] = {
    "UNAVAILABLE": (Unreachable, _unavailable),
    "DEADLINE_EXCEEDED": (TimedOut, _timed_out),
    "UNAUTHENTICATED": (Unauthenticated, _unauthenticated),
    "PERMISSION_DENIED": (PermissionDenied, _denied),
    "INVALID_ARGUMENT": (InvalidArgument, _details("invalid request")),
    "NOT_FOUND": (NotFound, _details("not found")),
    "ALREADY_EXISTS": (AlreadyExists, _details("already exists")),
    "FAILED_PRECONDITION": (Refused, _details("refused by the controller")),
    "ABORTED": (ServerError, _details("a concurrent change collided; retry")),
    "CANCELLED": (ServerError, lambda call: "the call was cancelled"),
    "INTERNAL": (ServerError, lambda call: "internal error in the controller (see its log)"),
    "UNIMPLEMENTED": (ServerError, lambda call: (
        f"the controller at {call.address} does not offer {call.method} "
        "(is it an older version?)")),
}


def translate(call: Call) -> RpcError:
    """The client exception for a failed call; unknown statuses become ServerError."""
    kind, message = TABLE.get(call.code, (ServerError, _other))
    return kind(message(call), code=call.code, method=call.method, details=call.details)
