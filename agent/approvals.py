"""Customer-side signing: approver keys and the grants, denials and revocations they sign.

Approver keys are Ed25519, made on this host, written 0600 to ``<home>/approvers/<name>.key``
and pinned (public half only) in agent.toml. Signing happens here, never in the daemon.

    ApprovalError               a decision cannot be signed as asked
    ├── ApproverUnavailable     no usable approver: none pinned, ambiguous, key missing or foreign
    └── Widening                an approval asked for more than the request (scopes or duration)
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from agent.config import AgentPaths, PinnedApprover, pin_approver
from permissions import (
    AccessRequest,
    Denial,
    Envelope,
    Grant,
    MalformedStatement,
    NarrowingError,
    Revocation,
    approve,
    deny,
    format_duration,
    key_id,
    parse_scopes,
    revoke,
)
from pki.files import read_ed25519_key, reason, write_key

DEFAULT_APPROVER = "default"


class ApprovalError(Exception):
    """A consent decision cannot be signed as asked; the message says why."""


class ApproverUnavailable(ApprovalError):
    """No approver key can be used for signing."""


class Widening(ApprovalError):
    """The approval would grant more than was requested."""


def new_grant_id(token_hex: Callable[[int], str] = secrets.token_hex) -> str:
    """A fresh grant id: ``G-`` and 12 random hex digits."""
    return "G-" + token_hex(6)


def create_approver(paths: AgentPaths, name: str) -> tuple[PinnedApprover, Path]:
    """Make an Ed25519 key, write it 0600 and pin its public key in agent.toml.

    Refuses to replace an existing key file; if pinning fails the new file is removed, so
    no unpinned key is left behind.
    """
    path = paths.approver_key(name)
    if path.exists():
        raise ApproverUnavailable(f"{path} already exists: choose another --name")
    key = ed25519.Ed25519PrivateKey.generate()
    write_key(path, key)
    try:
        return pin_approver(paths.home, name, key.public_key()), path
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def choose_approver(pinned: Sequence[PinnedApprover], name: str | None) -> PinnedApprover:
    """The approver named ``name``, or the only one pinned when no name is given."""
    names = ", ".join(a.name for a in pinned)
    if not pinned:
        raise ApproverUnavailable(
            "no approver is pinned: create one with 'rmagent approver init'")
    if name is None:
        if len(pinned) > 1:
            raise ApproverUnavailable(f"several approvers are pinned ({names}): "
                                      "choose one with --approver")
        return pinned[0]
    for approver in pinned:
        if approver.name == name:
            return approver
    raise ApproverUnavailable(f"no approver named {name!r} is pinned (pinned: {names})")


def load_approver_key(paths: AgentPaths, approver: PinnedApprover) -> ed25519.Ed25519PrivateKey:
    """The private key of ``approver``, checked against the public key pinned for it."""
    path = paths.approver_key(approver.name)
    try:
        key = read_ed25519_key(path)
    except FileNotFoundError:
        raise ApproverUnavailable(
            f"approver {approver.name!r} is pinned but its key {path} is not on this host"
        ) from None
    except (OSError, ValueError) as exc:
        raise ApproverUnavailable(f"cannot read approver key {path}: "
                                  f"{reason(exc, with_file=False)}") from exc
    if key_id(key.public_key()) != approver.key_id:
        raise ApproverUnavailable(
            f"{path} does not hold the key pinned for approver {approver.name!r}")
    return key


@dataclass(frozen=True)
class GrantPlan:
    """What an approval will grant: ``request`` narrowed to ``scopes`` for ``duration_seconds``.

    Built by :func:`plan_grant`, so a plan never widens its request. The window starts
    when :meth:`sign` is called, i.e. after the customer confirmed.
    """

    request: AccessRequest
    scopes: tuple[str, ...]
    duration_seconds: int

    def sign(self, key: ed25519.Ed25519PrivateKey, *, now: int,
             grant_id: str | None = None) -> Envelope:
        """The signed grant; the trust kernel checks the narrowing once more."""
        try:
            return approve(self.request, key, grant_id=grant_id or new_grant_id(), now=now,
                           scopes=self.scopes, duration_seconds=self.duration_seconds)
        except NarrowingError as exc:
            raise Widening(str(exc)) from exc


def plan_grant(request: AccessRequest, *, scopes: Sequence[str] = (),
               duration_seconds: int | None = None) -> GrantPlan:
    """The grant for ``request``, narrowed to ``scopes`` and ``duration_seconds`` if given.

    Raises Widening naming what was not asked for, and MalformedStatement (from
    ``permissions``) for unknown scope names.
    """
    granted = parse_scopes(scopes) if scopes else request.scopes
    extra = sorted(set(granted) - set(request.scopes))
    if extra:
        raise Widening(f"cannot grant scopes the request did not ask for: {', '.join(extra)} "
                       f"(asked: {', '.join(request.scopes)})")
    duration = request.duration_seconds if duration_seconds is None else duration_seconds
    if duration <= 0:
        raise Widening("the grant's duration must be positive")
    if duration > request.duration_seconds:
        raise Widening(f"cannot grant {format_duration(duration)}: the request asked for "
                       f"{format_duration(request.duration_seconds)}")
    return GrantPlan(request, granted, duration)


def sign_denial(request: AccessRequest, key: ed25519.Ed25519PrivateKey, *, reason: str,
                now: int) -> Envelope:
    """A signed denial of ``request``; a reason is required."""
    if not reason.strip():
        raise ApprovalError("a reason is required to deny a request")
    return _checked(deny(request, key, reason=reason.strip(), now=now), Denial)


def sign_revocation(grant: Grant, key: ed25519.Ed25519PrivateKey, *, reason: str,
                    now: int) -> Envelope:
    """A signed revocation of ``grant``."""
    envelope = revoke(grant, key, reason=reason.strip() or "revoked by the customer", now=now)
    return _checked(envelope, Revocation)


def _checked(envelope: Envelope, kind: type[Denial] | type[Revocation]) -> Envelope:
    # Read back what was signed, so a statement receivers would refuse is refused here.
    try:
        kind.from_payload(envelope.payload)
    except MalformedStatement as exc:
        raise ApprovalError(str(exc)) from exc
    return envelope
