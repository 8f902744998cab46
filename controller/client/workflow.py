"""An engineer's work through the controller: request access, open sessions, run operations.

Combines the controller client, this home's identity key and its session state. The key
signs; the controller only relays; the agent's signed receipt is checked against the exact
operation sent and the exact result received before anything is shown.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import permissions
from controller.client.api import ControllerClient
from controller.client.config import ClientConfig
from controller.client.engineer import (
    SessionState,
    SessionStore,
    check_session_id,
    sign_access_request,
    sign_operation,
)
from controller.client.errors import (
    BadAnswer,
    ConfigError,
    InputError,
    NotFound,
    Refused,
    SessionStateError,
)
from pki.files import read_ec_key
from rmaint.envelopes import from_wire
from rmaint.v1 import agent_pb2
from rmaint.v1 import controller_pb2 as pb

NO_SESSION = "no current session: run 'rmctl session open --case C --agent A' first"


@dataclass(frozen=True)
class OperationResult:
    """An operation's result, with the agent's receipt that binds it to what was signed."""

    session_id: str
    seq: int
    operation: str
    result: Any
    receipt: permissions.Receipt
    receipt_digest: str
    event_id: int
    # Id of the agent's enrolled key whose signature on the receipt verified; None when
    # this session's state has no agent key (opened by an older rmctl or controller).
    agent_key_id: str | None = None


@dataclass(frozen=True)
class OpenedSession:
    state: SessionState
    session: pb.Session
    grant_not_after: int
    scopes: tuple[str, ...]


def load_identity_key(config: ClientConfig) -> ec.EllipticCurvePrivateKey:
    """This home's private key; ConfigError if it is unreadable or not ECDSA P-256."""
    try:
        return read_ec_key(config.key)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot use the identity key {config.key}: {exc}") from exc


class EngineerWorkflow:
    """The engineer commands' logic; needs a home whose identity has the engineer role."""

    def __init__(self, config: ClientConfig, client: ControllerClient, *,
                 clock: Callable[[], float] = time.time) -> None:
        if config.role != "engineer":
            raise ConfigError(f"this home ({config.home}) is the {config.role} '{config.name}': "
                              "access requests and sessions need an engineer identity "
                              "('rmctl login --token T --home H')")
        self.config = config
        self.client = client
        self.store = SessionStore(config.home)
        self._clock = clock
        self._key = load_identity_key(config)

    def _now(self) -> int:
        return int(self._clock())

    async def request_access(self, *, case_id: str, agent_id: str, scopes: Iterable[str],
                             duration_seconds: int, reason: str) -> pb.AccessRequest:
        """File an access request signed by this home's key."""
        envelope = sign_access_request(
            self._key, engineer=self.config.name, case_id=case_id, agent_id=agent_id,
            scopes=scopes, duration_seconds=duration_seconds, reason=reason, now=self._now())
        return await self.client.request_access(envelope)

    async def open_session(self, case_id: str, agent_id: str,
                           grant_id: str = "") -> OpenedSession:
        """Open a session and make it this home's current one."""
        reply = await self.client.open_session(case_id, agent_id, grant_id)
        session = reply.session
        agent_key = bytes(reply.agent_public_key) or None  # empty: an older controller
        if agent_key is not None:
            try:
                permissions.load_public_key(agent_key)
            except permissions.MalformedStatement as exc:
                raise BadAnswer(f"the controller sent an unusable key for agent "
                                f"{session.agent_id}: {exc}") from exc
        state = SessionState(session.session_id, session.case_id, session.agent_id,
                             session.grant_id, agent_public_key=agent_key)
        self.store.add(state)
        return OpenedSession(state, session, reply.grant_not_after, tuple(reply.scopes))

    async def close_session(self, session_id: str | None = None) -> pb.Session:
        """Close ``session_id`` (default: the current session) and forget its local state."""
        target = check_session_id(session_id) if session_id else self.store.current_id()
        if target is None:
            raise SessionStateError("no current session to close: give a session id")
        try:
            session = await self.client.close_session(target)
        except (NotFound, Refused):
            self.store.forget(target)  # gone or already ended there: nothing left to use here
            raise
        self.store.forget(target)
        return session

    async def session_for(self, session_id: str | None = None, case_id: str | None = None,
                          agent_id: str | None = None) -> SessionState:
        """The session to work in: the one named, the current one, or a new one on case+agent."""
        if session_id:
            return self.store.get(session_id)
        if bool(case_id) != bool(agent_id):
            raise InputError("give both --case and --agent to open a session")
        current = self.store.current()
        if case_id and agent_id:
            if current and (current.case_id, current.agent_id) == (case_id, agent_id):
                return current
            return (await self.open_session(case_id, agent_id)).state
        if current is None:
            raise SessionStateError(NO_SESSION)
        return current

    async def run(self, state: SessionState, operation: str,
                  params: dict[str, Any]) -> OperationResult:
        """Sign and run one operation; its sequence number is consumed even if it fails."""
        state, seq = self.store.reserve_seq(state.session_id)
        envelope = sign_operation(self._key, state, seq=seq, operation=operation,
                                  params=params, now=self._now())
        reply = await self.client.run_operation(envelope)
        return check_answer(envelope, reply, state=state, seq=seq, operation=operation)


    async def shell_certificate(self, state: SessionState, ticket: str, expires_at: float, *,
                                valid_seconds: int = 0) -> pb.IssueShellCertificateResponse:
        """An OpenSSH certificate on this home's key carrying ``ticket`` (from
        ``shell.open`` in ``state``), checked to be for that key and the session's agent."""
        from controller.gateway.usercert import CertificateInvalid, parse_line, ssh_public_blob

        public = self._key.public_key()
        reply = await self.client.issue_shell_certificate(pb.IssueShellCertificateRequest(
            session_id=state.session_id, ticket=ticket, ticket_expires_at=expires_at,
            public_key=public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
            valid_seconds=valid_seconds))
        try:
            cert = parse_line(reply.certificate)
        except CertificateInvalid as exc:
            raise BadAnswer(f"the controller sent an unusable certificate: {exc}") from exc
        if cert.subject != ssh_public_blob(public) or cert.principals != (state.agent_id,):
            raise BadAnswer("the controller's certificate is not for this key and agent")
        return reply

    async def run_stream(self, state: SessionState, operation: str, params: dict[str, Any],
                         on_part: Callable[[bytes], Awaitable[None]]) -> OperationResult:
        """Sign and run one streaming operation, handing each part to ``on_part`` as it
        comes; the result once the receipt checks and its ``stream`` names exactly the
        parts received (count, size, SHA-256)."""
        state, seq = self.store.reserve_seq(state.session_id)
        envelope = sign_operation(self._key, state, seq=seq, operation=operation,
                                  params=params, now=self._now())
        received = hashlib.sha256()
        count = size = 0
        done: agent_pb2.ExecuteResponse | None = None
        async for part in self.client.run_operation_stream(envelope):
            if part.WhichOneof("kind") == "done":
                done = part.done
                break
            count, size = count + 1, size + len(part.data)
            received.update(part.data)
            await on_part(part.data)
        if done is None:
            raise BadAnswer("the stream ended without the agent's result")
        result = check_answer(envelope, done, state=state, seq=seq, operation=operation)
        stream = result.result.get("stream") if isinstance(result.result, dict) else None
        if stream != {"parts": count, "bytes": size, "sha256": received.hexdigest()}:
            raise BadAnswer("the parts received do not match the agent's receipt-signed result")
        return result


def check_answer(envelope: permissions.Envelope, reply: agent_pb2.ExecuteResponse, *,
                 state: SessionState, seq: int, operation: str) -> OperationResult:
    """The result, if the receipt is signed by the session's agent (when its key is known)
    and names this operation, this result and this session."""
    if not reply.HasField("receipt"):
        raise BadAnswer("the agent's answer carries no receipt")
    try:
        receipt_envelope = from_wire(reply.receipt)
        signer = _check_receipt_signature(receipt_envelope, state.agent_public_key)
        receipt = permissions.Receipt.from_payload(receipt_envelope.payload)
        result = json.loads(reply.result_json)
    except (permissions.PermissionsError, ValueError) as exc:
        raise BadAnswer(f"the agent's answer is unusable: {exc}") from exc
    expected = {
        "operation_digest": permissions.digest(envelope),
        "result_digest": "sha256:" + hashlib.sha256(reply.result_json).hexdigest(),
        "session_id": state.session_id, "seq": seq, "operation": operation,
        "agent_id": state.agent_id,
    }
    wrong = [name for name, value in expected.items() if getattr(receipt, name) != value]
    if wrong:
        raise BadAnswer(f"the agent's receipt does not match what was exchanged: "
                        f"{', '.join(wrong)}")
    return OperationResult(state.session_id, seq, operation, result, receipt,
                           permissions.digest(receipt_envelope), reply.event_id, signer)


def _check_receipt_signature(receipt: permissions.Envelope,
                             agent_key: bytes | None) -> str | None:
    """The id of the agent key whose signature on ``receipt`` verifies; None if no key is
    known; BadAnswer if the receipt is not signed by that key."""
    if agent_key is None:
        return None
    key = permissions.load_public_key(agent_key)
    kid = permissions.key_id(key)
    try:
        permissions.verify(receipt, permissions.RECEIPT, {kid: key})
    except permissions.BadSignature as exc:
        raise BadAnswer("the agent's receipt signature does not verify") from exc
    return kid
