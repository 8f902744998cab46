"""The engineer's side of the trust model: signed access requests, session state, signed operations.

Everything the agent checks is signed here with the identity key of this home: the access
request (``permissions.request_access``) and each operation (``permissions.sign`` over an
``Operation`` naming session, grant, case, agent and a sequence number). Sequence numbers
are taken under an exclusive file lock, so concurrent commands in the same home never sign
two operations with the same number, and they keep increasing across a crash of this
machine (see :class:`SessionStore`).
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import functools
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

import permissions
from controller.client.errors import InputError, SessionStateError
from pki.files import reason, write_private

REQUEST_PREFIX = "R-"
SESSIONS_DIR = "sessions"
CURRENT_FILE = "current-session"
# How many sequence numbers one fsync'd write of the state file covers.
SEQ_LEASE = 1000
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
_COUNTER = re.compile(r"([0-9a-f-]{8,64}) ([0-9]{19}) ([0-9]{19})\n")


@functools.cache
def boot_id() -> str | None:
    """This boot of the machine (Linux: a random UUID made at boot), or None if unknown."""
    try:
        text = _BOOT_ID_FILE.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if re.fullmatch(r"[0-9a-f-]{8,64}", text) else None


def new_request_id() -> str:
    """``R-`` followed by 12 random hex digits."""
    return REQUEST_PREFIX + secrets.token_hex(6)


def sign_access_request(
    key: ec.EllipticCurvePrivateKey, *, engineer: str, case_id: str, agent_id: str,
    scopes: Iterable[str], duration_seconds: int, reason: str, now: int,
    request_id: str | None = None,
) -> permissions.Envelope:
    """An access request signed by ``key``; InputError for values the agent would refuse."""
    try:
        return permissions.request_access(
            key, request_id=request_id or new_request_id(), case_id=case_id,
            agent_id=agent_id, engineer=engineer, scopes=scopes,
            duration_seconds=duration_seconds, reason=reason, now=now,
        )
    except permissions.MalformedStatement as exc:
        raise InputError(str(exc)) from exc


@dataclass(frozen=True)
class SessionState:
    """What this home knows about one open session; ``next_seq`` is the next unused number.

    In the state file, ``next_seq`` is the durable bound: no number from it upward has
    been handed out (:class:`SessionStore` reads the exact next number from the counter).

    ``agent_public_key`` is the agent's enrolled key (SubjectPublicKeyInfo DER, base64 in
    the file) as the controller gave it when the session was opened; the agent's receipts
    are checked against it. None when unknown (a state file written by an older rmctl, or
    a controller that does not send it): then receipts cannot be signature-checked.
    """

    session_id: str
    case_id: str
    agent_id: str
    grant_id: str
    next_seq: int = 1
    agent_public_key: bytes | None = None

    def to_json(self) -> bytes:
        obj: dict[str, Any] = asdict(self)
        if self.agent_public_key is None:
            del obj["agent_public_key"]
        else:
            obj["agent_public_key"] = base64.b64encode(self.agent_public_key).decode("ascii")
        return json.dumps(obj, indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> SessionState:
        """Raise ValueError unless ``data`` is a complete, well-typed state."""
        obj = json.loads(data)
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        texts = ("session_id", "case_id", "agent_id", "grant_id")
        if not all(isinstance(obj.get(k), str) and obj[k] for k in texts):
            raise ValueError(f"needs non-empty {', '.join(texts)}")
        seq = obj.get("next_seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
            raise ValueError("next_seq must be a positive integer")
        return cls(session_id=obj["session_id"], case_id=obj["case_id"],
                   agent_id=obj["agent_id"], grant_id=obj["grant_id"], next_seq=seq,
                   agent_public_key=_agent_key(obj.get("agent_public_key")))


def _agent_key(value: object) -> bytes | None:
    """The stored agent key: None if absent (older state files have none)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError("agent_public_key must be non-empty base64 text")
    try:
        raw = base64.b64decode(value, validate=True)
        permissions.load_public_key(raw)
    except binascii.Error as exc:
        raise ValueError(f"agent_public_key is not base64: {exc}") from exc
    except permissions.MalformedStatement as exc:
        raise ValueError(f"agent_public_key: {exc}") from exc
    return raw


def check_session_id(session_id: str) -> str:
    """The id, if it can name a state file; InputError otherwise."""
    if not _SESSION_ID.fullmatch(session_id):
        raise InputError(f"invalid session id {session_id!r}")
    return session_id


@dataclass(frozen=True)
class SessionStore:
    """Session state files of one home: ``sessions/<id>.json``, ``sessions/<id>.seq`` and
    ``current-session``.

    Every read-modify-write holds an exclusive ``flock`` on ``sessions/.lock``, across
    threads and processes alike. ``<id>.json`` is replaced atomically and durably (write,
    fsync, rename, fsync of the directory). Sequence numbers cost no fsync each:

    - ``<id>.json`` holds a durable bound: every number handed out is below it. Before a
      number at or past the bound is handed out, the bound moves :data:`SEQ_LEASE` ahead,
      durably.
    - ``<id>.seq`` holds the exact next number, the machine's boot id and the bound it was
      written under, without fsync. A process that dies leaves it intact in the page cache;
      a crash of the machine may lose or damage it, but then the boot id differs (or it does
      not parse), and numbering resumes at the durable bound, above every number handed
      out. So it does when the state file's bound is not the one the counter names (the
      file was rewritten by something else, e.g. an older rmctl that fsyncs every number).

    So numbers stay strictly increasing per session across crashes without trusting the
    clock; after a crash of the machine they skip ahead by at most :data:`SEQ_LEASE`.
    Where the boot id is unknown, every number is written durably.
    """

    home: Path
    boot: Callable[[], str | None] = field(default=boot_id, compare=False, repr=False)

    @property
    def directory(self) -> Path:
        return self.home / SESSIONS_DIR

    def _path(self, session_id: str) -> Path:
        return self.directory / f"{check_session_id(session_id)}.json"

    def _counter_path(self, session_id: str) -> Path:
        return self.directory / f"{check_session_id(session_id)}.seq"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        lock = self.directory / ".lock"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def add(self, state: SessionState, *, make_current: bool = True) -> None:
        """Store a newly opened session and, by default, make it the current one."""
        with self._locked():
            self._counter_path(state.session_id).unlink(missing_ok=True)
            write_private(self._path(state.session_id), state.to_json())
            if make_current:
                write_private(self.home / CURRENT_FILE, state.session_id.encode() + b"\n")

    def get(self, session_id: str) -> SessionState:
        """The stored state with the exact next number; SessionStateError if this home has
        none or it is damaged."""
        with self._locked():
            state = self._read(session_id)
            return replace(state, next_seq=self._next(state))

    def current_id(self) -> str | None:
        """The id named by ``current-session``, if any."""
        try:
            text = (self.home / CURRENT_FILE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise SessionStateError(f"cannot read {self.home / CURRENT_FILE}: "
                                   f"{reason(exc, with_file=False)}") from exc
        if text and not _SESSION_ID.fullmatch(text):
            raise SessionStateError(f"{self.home / CURRENT_FILE} is damaged: run "
                                    "'rmctl session open --case C --agent A' to replace it")
        return text or None

    def current(self) -> SessionState | None:
        """The current session's state; None when there is none or its file is gone."""
        session_id = self.current_id()
        if session_id is None or not self._path(session_id).exists():
            return None
        return self.get(session_id)

    def reserve_seq(self, session_id: str) -> tuple[SessionState, int]:
        """Take the next sequence number for good: it is never handed out again, even after
        a crash of this process or this machine. Returns the state as it was before."""
        with self._locked():
            durable = self._read(session_id)
            seq = self._next(durable)
            boot = self.boot()
            bound = durable.next_seq
            if seq >= bound:
                bound = seq + (SEQ_LEASE if boot is not None else 1)
                write_private(self._path(session_id),
                              replace(durable, next_seq=bound).to_json())
            if boot is not None:
                _write_counter(self._counter_path(session_id), boot, seq + 1, bound)
            return replace(durable, next_seq=seq), seq

    def forget(self, session_id: str) -> None:
        """Remove a session's state, and the current-session pointer if it names it."""
        with self._locked():
            self._path(session_id).unlink(missing_ok=True)
            self._counter_path(session_id).unlink(missing_ok=True)
            if self.current_id() == session_id:
                (self.home / CURRENT_FILE).unlink(missing_ok=True)

    def _next(self, durable: SessionState) -> int:
        """The next number: the counter's, if this boot wrote it under the state file's
        current bound, else the durable bound."""
        boot = self.boot()
        if boot is None:
            return durable.next_seq
        try:
            text = self._counter_path(durable.session_id).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError):
            return durable.next_seq
        match = _COUNTER.fullmatch(text)
        if match is None or match[1] != boot or int(match[3]) != durable.next_seq \
                or not 1 <= int(match[2]) <= durable.next_seq:
            return durable.next_seq  # written before a crash, under another bound, or damaged
        return int(match[2])

    def _read(self, session_id: str) -> SessionState:
        path = self._path(session_id)
        try:
            state = SessionState.from_json(path.read_bytes())
        except FileNotFoundError as exc:
            raise SessionStateError(
                f"no local state for session {session_id} in {self.home}: a session can "
                "only be used from the home that opened it") from exc
        except (OSError, ValueError) as exc:
            raise SessionStateError(f"{path} is damaged ({exc}): close the session with "
                                    f"'rmctl session close {session_id}'") from exc
        if state.session_id != session_id:
            raise SessionStateError(f"{path} names another session ({state.session_id})")
        return state


def _write_counter(path: Path, boot: str, next_seq: int, bound: int) -> None:
    """Overwrite the counter in place, without fsync (see :class:`SessionStore`).

    Not truncated first: ext4 flushes a file rewritten after truncation when it is closed,
    which costs as much as the rest of a reservation. The number has a fixed width, so a
    new record covers the old one exactly; a write cut short raises before the number is
    handed out, and what it leaves reads as no number, or one not below the old one under
    a bound not above the state file's.
    """
    data = f"{boot} {next_seq:019d} {bound:019d}\n".encode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        if os.pwrite(fd, data, 0) != len(data):
            raise OSError(f"short write to {path}")
        if os.fstat(fd).st_size != len(data):
            os.ftruncate(fd, len(data))  # a new file, or one a foreign boot id wrote
    finally:
        os.close(fd)


def sign_operation(
    key: ec.EllipticCurvePrivateKey, state: SessionState, *, seq: int, operation: str,
    params: dict[str, Any], now: int,
) -> permissions.Envelope:
    """The signed Operation statement for ``seq`` in ``state``'s session."""
    statement = permissions.Operation(
        session_id=state.session_id, seq=seq, grant_id=state.grant_id,
        agent_id=state.agent_id, case_id=state.case_id, operation=operation,
        params=dict(params), issued_at=now,
    )
    payload = statement.to_payload()
    try:
        # Read it back as the agent will, so a statement it would refuse is never signed.
        permissions.Operation.from_payload(payload)
    except permissions.MalformedStatement as exc:
        raise InputError(str(exc)) from exc
    return permissions.sign(permissions.OPERATION, payload, key)
