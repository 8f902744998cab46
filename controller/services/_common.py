"""What every service needs (:class:`Deps`), and strict readers of request fields.

Readers raise InvalidArgument with a message naming the field, so malformed input gets
a clear INVALID_ARGUMENT and never reaches the store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from controller.authz import Caller, current_caller
from controller.ca import Authority
from controller.config import Address
from controller.errors import ConfigError, InvalidArgument, PermissionDenied
from controller.gateway.reverse import ReverseShells
from controller.gateway.userca import IssuingCA
from controller.relay import Relay
from controller.store import Store
from permissions import Envelope, MalformedStatement, is_plain_text
from pki.identity import IdentityError, check_name
from rmaint.envelopes import from_wire
from rmaint.v1 import common_pb2

if TYPE_CHECKING:
    from controller.locks import LockBroker

MAX_TEXT = 2000


@dataclass(frozen=True)
class Deps:
    """The controller's collaborators, shared by its services."""

    store: Store
    clock: Callable[[], float]
    trust_domain: str
    authority: Authority
    relay: Relay
    controller_address: str  # the mutual-TLS API, as clients should dial it
    enroll_address: str  # the enrollment port, as join tokens name it
    locks: LockBroker | None = None  # pushes lock changes to agents (None: nobody to push to)
    # Shell streams of dial-out agents waiting for their login (controller.gateway.reverse).
    reverse_shells: ReverseShells = field(default_factory=ReverseShells)
    # The running gateway's user CA, for shell certificates (controller.gateway.userca).
    shell_ca: IssuingCA = field(default_factory=IssuingCA)


def caller_as(role: str) -> Caller:
    """The current caller, who the authz table already admitted; asserted to hold ``role``."""
    caller = current_caller()
    if caller.role != role:
        raise PermissionDenied(f"{caller} is not an {role}")
    return caller


def name(value: str, what: str) -> str:
    try:
        return check_name(value, what)
    except IdentityError as exc:
        raise InvalidArgument(str(exc)) from exc


def text(value: str, what: str, *, required: bool = True, limit: int = MAX_TEXT) -> str:
    value = value.strip()
    if required and not value:
        raise InvalidArgument(f"{what} is required")
    if len(value) > limit:
        raise InvalidArgument(f"{what} is longer than {limit} characters")
    if not is_plain_text(value):  # NUL too: PostgreSQL refuses it in text
        raise InvalidArgument(f"{what} must not contain control characters (line breaks, "
                              "terminal escapes, bidirectional controls)")
    return value


def choice(value: str, what: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidArgument(f"{what} must be one of {', '.join(a or '(empty)' for a in allowed)}")
    return value


def date(value: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidArgument(f"{what} must be a date YYYY-MM-DD, got {value!r}") from exc


def address(value: str, what: str) -> str:
    try:
        parsed = Address.parse(value, what)
    except ConfigError as exc:
        raise InvalidArgument(str(exc)) from exc
    if parsed.is_wildcard or parsed.port == 0:
        raise InvalidArgument(f"{what} must be an address others can dial, got {value!r}")
    return str(parsed)


def envelope(message: common_pb2.Envelope, what: str) -> Envelope:
    try:
        return from_wire(message)
    except MalformedStatement as exc:
        raise InvalidArgument(f"{what}: {exc}") from exc
